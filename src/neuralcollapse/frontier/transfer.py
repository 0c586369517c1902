"""Collapse in transfer and few-shot learning (Galanti, György & Hutter, ICLR 2022).

Their claim: a feature map trained on some classes collapses, in the sense of a small
class-distance normalised variance (CDNV), on *new* classes drawn from the same population,
and a small CDNV on new classes makes a nearest-class-centre (NCC) classifier built from a
few samples per class accurate.

- CDNV of a set of classes with means mu_k and variances ``V_k = E ||h - mu_k||^2``:
  ``mean_{i != j} (V_i + V_j) / (2 ||mu_i - mu_j||^2)`` (the engine's tiled reducer,
  :class:`neuralcollapse.metrics.pairwise.ClassDistanceVariance`), here on classes the
  classifier never saw (:func:`class_distance_variance`);
- the few-shot NCC error (:func:`few_shot_error`): in each random episode, ``ways`` new
  classes, ``shots`` = m support samples per class whose mean is the class centre, every
  other sample of those classes a query classified by its nearest centre; mean error over
  episodes and its standard error;
- the bound (:func:`few_shot_bound`): for a query x of class i, misclassification in favour
  of j needs ``2||x - mu_i|| + ||c_i - mu_i|| + ||c_j - mu_j|| >= ||mu_i - mu_j||`` (triangle
  inequality; c the m-shot centres), whose probability is at most
  ``3 (4 V_i + (V_i + V_j)/m) / ||mu_i - mu_j||^2`` (Markov on the square, ``(a+b+c)^2 <=
  3(a^2+b^2+c^2)``, ``E||c_i - mu_i||^2 = V_i/m``). A union bound over j and the average over
  the k = ``ways`` classes give

      E[error] <= (k - 1) (12 + 6/m) CDNV,

  with constants derived here; Galanti et al.'s bound has this form, (k - 1) times the
  average CDNV of the classes times a factor falling with m (their Proposition 5; its
  published constant is not reproduced here). Nothing in the proof needs independence of the
  query and the support, or Gaussian classes: only E||x - mu_i||^2 = V_i and
  E||c_i - mu_i||^2 <= V_i/m. Both hold for :func:`few_shot_error`'s episodes drawn from a
  finite set of samples (every sample is equally likely to be a query; drawing without
  replacement only lowers the second), so with the CDNV of those same samples
  (:func:`class_distance_variance`, variances over n, not n - 1) the bound holds exactly for
  the expected episode error, for any k-subset of the classes (an ordered pair is in an
  episode with the same probability as any other). tests/frontier/test_transfer.py checks it
  by enumerating every episode of small adversarial sets.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.pairwise import ClassDistanceVariance, reduce_frame
from neuralcollapse.metrics.stats import ClassStats
from neuralcollapse.metrics.validation import check_features, check_labels

__all__ = [
    "ClassVariance",
    "FewShotError",
    "class_distance_variance",
    "few_shot_bound",
    "few_shot_error",
]

Source = tuple[object, object] | Callable[[], Iterable[tuple[object, object]]]


def _batches(source: Source) -> Callable[[], Iterable[tuple[object, object]]]:
    if callable(source):
        return source
    if isinstance(source, tuple) and len(source) == 2:
        return lambda: [source]
    raise TypeError(
        "pass (features, labels) arrays or a function returning an iterable of "
        f"(features, labels) batches; got {type(source).__name__}"
    )


def _relabel(labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels of any integer values as 0..C-1, and the original value of each."""
    values, inverse = torch.unique(labels, return_inverse=True)
    return inverse, values


@dataclass(frozen=True)
class ClassVariance:
    """CDNV of a set of classes: ``value``, ``per_class`` (each class's mean over the others),
    ``variances`` V_k (K,), ``counts`` (K,), ``classes`` the original label of each row."""

    value: float
    per_class: torch.Tensor
    variances: torch.Tensor
    counts: torch.Tensor
    classes: torch.Tensor


def class_distance_variance(
    source: Source, *, classes: Iterable[int] | None = None, tile_size: int | None = None
) -> ClassVariance:
    """CDNV of the classes present in ``source`` (e.g. held-out classes), streaming.

    ``source``: ``(features, labels)`` or a function returning a fresh iterable of batches
    (two passes: class means, then within-class sums of squares, centred on the means). Labels
    may be any integers (the new classes 5..9 stay 5..9); ``classes`` restricts to some of
    them (default: every label seen). Memory O(K d + tile^2): the tiled reducer of the engine.
    """
    make_batches = _batches(source)
    seen: list[torch.Tensor] = []
    for _, labels in make_batches():
        seen.append(torch.unique(torch.as_tensor(labels).long().reshape(-1)))
    if not seen:
        raise ValueError("the source yielded no batches")
    present = torch.unique(torch.cat(seen))
    wanted = present if classes is None else torch.tensor(sorted({int(c) for c in classes}))
    missing = sorted(set(wanted.tolist()) - set(present.tolist()))
    if missing:
        raise ValueError(f"classes {missing} have no samples in the source")
    if wanted.numel() < 2:
        raise ValueError(f"the CDNV compares classes: need at least 2, got {wanted.tolist()}")
    lookup = {int(c): i for i, c in enumerate(wanted.tolist())}
    if int(wanted.min()) < 0:
        raise ValueError(f"labels must be >= 0; got {int(wanted.min())}")
    table = torch.full((int(present.max()) + 1,), -1, dtype=torch.int64)
    table[wanted] = torch.arange(len(lookup))

    def mapped():
        for features, labels in make_batches():
            h = check_features(features)
            y = torch.as_tensor(labels).long().reshape(-1)
            check_labels(y, h.shape[0], None, h.device)
            inside = (y >= 0) & (y < table.numel())
            index = torch.where(inside, table[y.clamp(0, table.numel() - 1)], -1)
            keep = index >= 0
            yield h[keep.to(h.device)], index[keep]

    stats = ClassStats(len(lookup))
    for h, y in mapped():
        if h.shape[0]:
            stats.update(h, y)
    means = stats.sums / stats.counts.clamp_min(1).unsqueeze(1).to(torch.float64)
    within = torch.zeros(len(lookup), dtype=torch.float64)
    for h, y in mapped():
        if h.shape[0]:
            residual = h.to(torch.float64).cpu() - means[y]
            within.index_add_(0, y, residual.pow(2).sum(dim=1))
    variances = within / stats.counts.to(torch.float64)
    reducer = ClassDistanceVariance(variances)
    reduce_frame(means - means.mean(dim=0), [reducer], tile_size=tile_size)
    return ClassVariance(
        value=float(reducer.value),
        per_class=reducer.per_row,
        variances=variances,
        counts=stats.counts.clone(),
        classes=wanted,
    )


@dataclass(frozen=True)
class FewShotError:
    """Few-shot NCC error over random episodes: ``mean``, ``stderr`` (std / sqrt(episodes),
    ddof = 1), ``errors`` (one per episode), ``shots`` m, ``ways`` k."""

    mean: float
    stderr: float
    errors: torch.Tensor
    shots: int
    ways: int

    def to_dict(self) -> dict:
        return {
            "mean": self.mean,
            "stderr": self.stderr,
            "shots": self.shots,
            "ways": self.ways,
            "episodes": int(self.errors.numel()),
        }


def few_shot_error(
    features: object,
    labels: object,
    *,
    shots: int = 1,
    ways: int | None = None,
    episodes: int = 200,
    queries: int | None = None,
    seed: int = 0,
) -> FewShotError:
    """Nearest-class-centre error on new classes from ``shots`` samples per class.

    Each episode draws ``ways`` classes (default: all), ``shots`` support samples per class
    (without replacement) whose mean is the class centre, and ``queries`` other samples per
    class (default: all the rest); a query is correct when its nearest centre (Euclidean) is
    its class's. Ties go to the lower class index. The episode's error is the mean over its
    classes of the fraction of that class's queries misclassified (with equal query counts,
    the fraction of all its queries; with unequal classes each still counts once, the
    average :func:`few_shot_bound` bounds); returns the mean over episodes and its standard
    error.
    """
    h = check_features(features).to(torch.float64).cpu()
    y = torch.as_tensor(labels).long().reshape(-1).cpu()
    check_labels(y, h.shape[0], None, h.device)
    y, _ = _relabel(y)
    num_classes = int(y.max()) + 1
    if num_classes < 2:
        raise ValueError("few-shot classification needs at least 2 classes")
    shots = check_int("shots (m)", shots, minimum=1, meaning="support samples per class")
    ways = (
        num_classes
        if ways is None
        else check_int(
            "ways (k)", ways, minimum=2, maximum=num_classes, meaning="classes per episode"
        )
    )
    episodes = check_int("episodes", episodes, minimum=2, meaning="random episodes averaged")
    members = [torch.nonzero(y == c).flatten() for c in range(num_classes)]
    smallest = min(len(m) for m in members)
    if smallest <= shots:
        raise ValueError(
            f"shots={shots} leaves no query: the smallest class has {smallest} samples; use "
            f"shots <= {smallest - 1}"
        )
    if queries is not None:
        queries = check_int("queries", queries, minimum=1, maximum=smallest - shots)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    errors = torch.empty(episodes, dtype=torch.float64)
    for episode in range(episodes):
        chosen = torch.randperm(num_classes, generator=generator)[:ways]
        centres, query_rows, query_labels = [], [], []
        for position, c in enumerate(chosen.tolist()):
            order = members[c][torch.randperm(len(members[c]), generator=generator)]
            centres.append(h[order[:shots]].mean(dim=0))
            rest = order[shots:] if queries is None else order[shots : shots + queries]
            query_rows.append(rest)
            query_labels.append(torch.full((len(rest),), position))
        centre = torch.stack(centres)
        query = h[torch.cat(query_rows)]
        truth = torch.cat(query_labels)
        wrong = (torch.cdist(query, centre).argmin(dim=1) != truth).double()
        per_class = torch.zeros(ways, dtype=torch.float64).index_add_(0, truth, wrong)
        errors[episode] = float((per_class / torch.bincount(truth, minlength=ways)).mean())
    return FewShotError(
        mean=float(errors.mean()),
        stderr=float(errors.std() / math.sqrt(episodes)),
        errors=errors,
        shots=shots,
        ways=ways,
    )


def few_shot_bound(cdnv: float, ways: int, shots: int) -> float:
    """``min(1, (k - 1)(12 + 6/m) CDNV)``: the bound on the expected k-way m-shot NCC error
    derived in the module docstring (form of Galanti et al.'s Proposition 5)."""
    cdnv = check_float("cdnv", cdnv, minimum=0.0, finite=False)
    ways = check_int("ways (k)", ways, minimum=2)
    shots = check_int("shots (m)", shots, minimum=1)
    return min(1.0, (ways - 1) * (12.0 + 6.0 / shots) * cdnv)
