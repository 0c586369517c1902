"""DeepFool: the minimal perturbation that changes a classifier's decision, batched over images.

For a classifier with logits ``f(x) in R^K`` and decision ``k(x) = argmax_k f_k(x)``, the
*minimal adversarial perturbation* of an input ``x`` is

    r*(x) = argmin ||r||_2  subject to  k(x + r) != k(x),

and Moosavi-Dezfooli, Fawzi & Frossard (CVPR 2016) approximate it by linearising ``f``
around the current iterate. For an affine classifier ``f(x) = W x + b`` the decision region
of class ``c = k(x)`` is the polyhedron ``{z : f_c(z) >= f_j(z) for all j}``, so the distance
to its complement is the distance to the nearest of the hyperplanes ``f_j = f_c``:

    r*(x) = |f'_l| / ||w'_l||^2  w'_l,   l = argmin_{j != c} |f'_j| / ||w'_j||,
    f'_j = f_j(x) - f_c(x),  w'_j = w_j - w_c     (the paper's affine multi-class case).

For a general (differentiable) classifier, DeepFool applies this step to the first-order
Taylor expansion at the iterate ``x_i`` (``w'_j = grad f_j(x_i) - grad f_c(x_i)``),
``x_{i+1} = x_i + r_i``, and stops once the decision changes. Because the iterate can stop on
the boundary itself, the accumulated perturbation is scaled by ``1 + overshoot`` (the
paper's eta = 0.02). Here the stopping test is made at the point that is returned,
``x + (1 + overshoot) sum_i r_i``, so a perturbation reported as successful does change the
decision; with ``overshoot = 0`` the iteration is exactly Algorithm 2. A point where another
logit ties with the decision's lies on the boundary and counts as changed: an input with
tied top logits is the least robust point there is, fooled at distance 0 in 0 steps
(whichever way ``argmax`` happens to break the tie).

Papyan, Han & Donoho (PNAS 2020) measure robustness through the terminal phase with the
paper's normalised measure, the mean over (test) images of

    rho(x) = ||r(x)||_2 / ||x||_2,

the norms over all input coordinates of the input *as the network sees it* (here the
normalised images). :func:`robustness` computes it on a fixed, seeded subset of images,
over the images where the attack changed the decision within ``max_steps`` iterations, and
reports the fraction where it did not.

Implementation notes. The Jacobian rows of all K logits are obtained in one batched
backward pass (``torch.autograd.grad(..., is_grads_batched=True)``; a loop over classes
when an operator has no batched rule), with respect to the input only, so no parameter
``.grad`` is touched. Images that have been fooled leave the working batch. The model runs in
eval mode (BatchNorm with running statistics, so images do not interact); each submodule's
own mode is restored afterwards.

References
----------
S.-M. Moosavi-Dezfooli, A. Fawzi, P. Frossard, "DeepFool: a simple and accurate method to
fool deep neural networks", CVPR 2016.
V. Papyan, X. Y. Han, D. L. Donoho, "Prevalence of neural collapse during the terminal
phase of deep learning training", PNAS 2020 (robustness through training).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from neuralcollapse import schema
from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.capture import eval_mode

#: the paper's overshoot eta
DEFAULT_OVERSHOOT = 0.02
#: the step limit of the paper's reference code; networks in the terminal phase need few steps
DEFAULT_MAX_STEPS = 50
#: images attacked together (the Jacobian of a batch is batch x K x input size)
DEFAULT_BATCH_SIZE = 128

#: keys of :meth:`RobustnessResult.to_row` (columns of a per-epoch log): the schema's
#: robustness columns
ROW_KEYS: tuple[str, ...] = schema.ROBUSTNESS_KEYS

Model = Callable[[torch.Tensor], torch.Tensor]


# ----------------------------------------------------------------------------- validation


def _check_images(images: torch.Tensor) -> None:
    if not isinstance(images, torch.Tensor):
        raise ValueError(
            f"images must be a torch.Tensor of shape (N, ...); got {type(images).__name__}"
        )
    if images.ndim < 2 or images.shape[0] < 1:
        raise ValueError(
            f"images must have a leading batch dimension with N >= 1 and at least one input "
            f"dimension, shape (N, ...); got shape {tuple(images.shape)}"
        )
    if not images.is_floating_point():
        raise ValueError(
            f"images must be floating point (DeepFool differentiates with respect to them); "
            f"got dtype {images.dtype}. Convert with images.float()"
        )
    finite = torch.isfinite(images.reshape(len(images), -1)).all(dim=1)
    if not bool(finite.all()):
        bad = torch.nonzero(~finite).flatten()[:5].tolist()
        raise ValueError(
            f"images hold NaN or infinite values ({int((~finite).sum())} image(s), first at "
            f"index {bad}); DeepFool needs finite inputs: fix or drop those images"
        )


def _check_settings(
    overshoot: object, max_steps: object, batch_size: object
) -> tuple[float, int, int]:
    """The attack's settings as Python numbers (a NumPy step count drives ``range`` too)."""
    return (
        check_float(
            "overshoot (eta)",
            overshoot,
            minimum=0.0,
            hint="The paper uses 0.02; 0 is Algorithm 2 exactly",
        ),
        check_int("max_steps", max_steps, minimum=1, meaning="linearisation steps per image"),
        check_int("batch_size", batch_size, minimum=1, meaning="images attacked together"),
    )


def subset_indices(num_images: int, subset: int | None, seed: int = 0) -> torch.Tensor:
    """Indices of a fixed, seeded subset of ``subset`` distinct images out of ``num_images``.

    The same ``(num_images, subset, seed)`` always gives the same indices (a CPU generator
    seeded with ``seed``), so a measurement repeated over epochs attacks the same images.
    ``subset=None`` means all images, in order.

    Raises
    ------
    ValueError : ``subset`` is not an integer in ``[1, num_images]``.
    """
    if subset is None:
        return torch.arange(num_images)
    subset = check_int(
        "subset",
        subset,
        minimum=1,
        meaning="images to attack",
        alternative="or None (all images)",
        hint="To switch the measurement off, do not call it (the training option "
        "--robustness 0 means off)",
    )
    seed = check_int("seed", seed)
    if subset > num_images:
        raise ValueError(
            f"subset={subset} is larger than the split, which has {num_images} images; "
            f"choose at most {num_images}"
        )
    generator = torch.Generator().manual_seed(seed)
    return torch.randperm(num_images, generator=generator)[:subset].sort().values


# ----------------------------------------------------------------------------- the attack


@dataclass
class DeepFoolResult:
    """Per-image outcome of :func:`deepfool`.

    Attributes
    ----------
    perturbations : r(x), same shape as the images: the returned perturbation
        ``(1 + overshoot) sum_i r_i`` (for a failed image, the last one tried).
    success : (N,) bool, whether ``x + r(x)`` has another decision than ``x``: some other
        logit is at least the decision's (a tie is on the boundary, so it counts).
    steps : (N,) int, linearisation steps taken (``max_steps`` for a failure that ran out;
        0 for an input already on a decision boundary, fooled with ``r = 0``).
    original : (N,) the decision ``k(x)``; ``perturbed`` : (N,) the decision ``k(x + r)``.
    norms : (N,) float64 ``||r(x)||_2``; ``input_norms`` : (N,) float64 ``||x||_2``.
    num_classes : K, the number of logits.
    """

    perturbations: torch.Tensor
    success: torch.Tensor
    steps: torch.Tensor
    original: torch.Tensor
    perturbed: torch.Tensor
    norms: torch.Tensor
    input_norms: torch.Tensor
    num_classes: int

    @property
    def ratios(self) -> torch.Tensor:
        """``||r(x)|| / ||x||`` per image (float64; meaningful where ``success``)."""
        return self.norms / self.input_norms


def _class_gradients(model: Model, points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits (B, K) and their input gradients (B, K, D) at ``points`` (B, ...).

    Images are independent in eval mode, so the gradient of ``sum_b f_k(x_b)`` with respect
    to the batch holds every image's gradient of ``f_k``: K backward passes (batched into
    one where autograd can) instead of B K.
    """
    points = points.detach().requires_grad_(True)
    with torch.enable_grad():  # a caller's no_grad must not switch the attack's gradients off
        logits = model(points)  # shape (B, K), checked by _num_classes before the attack
    if not logits.requires_grad:
        raise ValueError(
            "the model's logits carry no gradient with respect to its input (its forward runs "
            "under torch.no_grad(), or detaches): DeepFool linearises the logits, so remove "
            "no_grad / detach from forward() (it leaves parameter .grad untouched)"
        )
    k = logits.shape[1]
    selectors = torch.eye(k, dtype=logits.dtype, device=logits.device)
    selectors = selectors.unsqueeze(1).expand(k, *logits.shape)  # (K, B, K)
    try:
        (grads,) = torch.autograd.grad(
            logits, points, grad_outputs=selectors, is_grads_batched=True
        )
    except RuntimeError:
        # an operator without a batched backward rule: one backward pass per class
        grads = torch.stack(
            [
                torch.autograd.grad(logits, points, selectors[c], retain_graph=c < k - 1)[0]
                for c in range(k)
            ]
        )
    grads = grads.reshape(k, points.shape[0], -1).transpose(0, 1)  # (B, K, D)
    return logits.detach(), grads


def _logits(model: Model, points: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        return model(points)


def _changed(logits: torch.Tensor, label: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Whether the decision ``label`` no longer wins outright, and the class that took over.

    A point where another logit ties with the label's lies on the decision boundary: it is
    counted as changed (the least robust point there is), whatever way ``argmax`` breaks the
    tie. The class reported is the best of the others.
    """
    rows = torch.arange(logits.shape[0], device=logits.device)
    others = logits.clone()
    others[rows, label] = -math.inf
    rival = others.argmax(dim=1)
    return others[rows, rival] >= logits[rows, label], rival


def _attack_batch(
    model: Model, x0: torch.Tensor, overshoot: float, max_steps: int
) -> tuple[torch.Tensor, ...]:
    count = x0.shape[0]
    flat0 = x0.reshape(count, -1)
    start = _logits(model, x0)
    original = start.argmax(dim=1)
    total = torch.zeros_like(flat0)  # sum_i r_i
    returned = torch.zeros_like(flat0)  # (1 + overshoot) sum_i r_i
    # an input with tied top logits is on the boundary already: fooled at distance 0
    success, rival = _changed(start, original)
    perturbed = torch.where(success, rival, original)
    steps = torch.where(success, 0, max_steps).to(torch.long)
    active = torch.nonzero(~success).flatten()
    for step in range(1, max_steps + 1):
        if active.numel() == 0:
            break
        current = flat0[active] + total[active]  # the iterate x_i (not overshot)
        logits, grads = _class_gradients(model, current.reshape(-1, *x0.shape[1:]))
        label = original[active]
        rows = torch.arange(active.numel(), device=x0.device)
        f_diff = logits - logits[rows, label].unsqueeze(1)  # f'_j, (B, K)
        w_diff = grads - grads[rows, label].unsqueeze(1)  # w'_j, (B, K, D)
        w_norm = torch.linalg.vector_norm(w_diff, dim=2)
        distance = f_diff.abs() / w_norm
        # the own class, and classes whose boundary has no direction, are no way out
        distance[rows, label] = math.inf
        distance = torch.where(w_norm > 0, distance, torch.full_like(distance, math.inf))
        best = distance.argmin(dim=1)
        stuck = torch.isinf(distance[rows, best])
        scale = f_diff[rows, best].abs() / w_norm[rows, best].pow(2)
        step_r = torch.where(stuck, 0.0, scale).unsqueeze(1) * w_diff[rows, best]
        total[active] += step_r
        returned[active] = (1 + overshoot) * total[active]
        candidate = flat0[active] + returned[active]
        fooled, rival = _changed(_logits(model, candidate.reshape(-1, *x0.shape[1:])), label)
        perturbed[active] = torch.where(fooled, rival, label)
        success[active[fooled]] = True
        steps[active[fooled]] = step
        # an image without any usable direction cannot get further: it fails now
        steps[active[stuck & ~fooled]] = step
        active = active[~fooled & ~stuck]
    norms = torch.linalg.vector_norm(returned.to(torch.float64), dim=1)
    return returned.reshape(x0.shape), success, steps, original, perturbed, norms


def _num_classes(model: Model, sample: torch.Tensor) -> int:
    with torch.no_grad():
        logits = model(sample)
    if logits.ndim != 2 or logits.shape[0] != sample.shape[0] or logits.shape[1] < 2:
        raise ValueError(
            f"the model must return logits of shape (batch, K) with K >= 2; got "
            f"{tuple(logits.shape)} for a batch of {sample.shape[0]}"
        )
    if not bool(torch.isfinite(logits).all()):
        raise ValueError(
            "the model returns NaN or infinite logits on these images; DeepFool needs finite "
            "logits (check the model's weights and the input normalisation)"
        )
    return int(logits.shape[1])


def deepfool(
    model: Model,
    images: torch.Tensor,
    *,
    overshoot: float = DEFAULT_OVERSHOOT,
    max_steps: int = DEFAULT_MAX_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> DeepFoolResult:
    """Multi-class DeepFool (Moosavi-Dezfooli et al. 2016, Algorithm 2), batched over images.

    Parameters
    ----------
    model : maps a batch ``(B, ...)`` to logits ``(B, K)``; an ``nn.Module`` is put in eval
        mode for the attack and its modes restored afterwards. Its parameters' ``.grad``
        are left untouched (gradients are taken with respect to the input only).
    images : ``(N, ...)`` floating-point inputs on the model's device, as the model sees
        them (normalised); the attack runs in their dtype.
    overshoot : eta >= 0; the returned perturbation is ``(1 + eta) sum_i r_i`` and the
        decision is tested there.
    max_steps : linearisation steps at most; an image not fooled by then is a failure.
    batch_size : images attacked together.

    Returns
    -------
    :class:`DeepFoolResult`. For an affine classifier one step gives the exact minimal
    perturbation times ``1 + eta`` (distance to the nearest decision hyperplane).

    Raises
    ------
    ValueError : non-finite or non-float images, bad settings, a model not returning
        ``(B, K)`` logits.
    """
    _check_images(images)
    overshoot, max_steps, batch_size = _check_settings(overshoot, max_steps, batch_size)
    pieces: list[tuple[torch.Tensor, ...]] = []
    context = eval_mode(model) if isinstance(model, nn.Module) else _nothing()
    with context, torch.enable_grad():
        num_classes = _num_classes(model, images[: min(batch_size, images.shape[0])].detach())
        for start in range(0, images.shape[0], batch_size):
            batch = images[start : start + batch_size].detach()
            pieces.append(_attack_batch(model, batch, overshoot, max_steps))
    perturbations, success, steps, original, perturbed, norms = (
        torch.cat(part) for part in zip(*pieces, strict=True)
    )
    input_norms = torch.linalg.vector_norm(
        images.detach().reshape(images.shape[0], -1).to(torch.float64), dim=1
    )
    return DeepFoolResult(
        perturbations,
        success,
        steps,
        original,
        perturbed,
        norms,
        input_norms.to(norms.device),
        num_classes,
    )


@contextmanager
def _nothing() -> Iterator[None]:
    yield


# ----------------------------------------------------------------------------- the measure


@dataclass
class RobustnessResult:
    """Papyan et al.'s robustness measure on a subset of images.

    Attributes
    ----------
    count : images attacked. ``succeeded`` : of them, fooled within the step limit.
    failed_fraction : ``(count - succeeded) / count``, not fooled within ``max_steps``.
    mean_ratio : mean of ``||r(x)|| / ||x||`` over the fooled images; None when none was
        fooled (see ``not_computed``).
    mean_ratio_correct : the same over the fooled images the model classified correctly
        (None without labels, or when there is none).
    accuracy : the model's accuracy on the subset (None without labels).
    mean_steps : mean DeepFool steps over the fooled images (None when none).
    seconds : wall time of the attack.
    overshoot, max_steps, seed : the settings.
    indices : the attacked images' indices in the given split.
    not_computed : value key -> why it is None.
    """

    count: int
    succeeded: int
    failed_fraction: float
    mean_ratio: float | None
    mean_ratio_correct: float | None
    accuracy: float | None
    mean_steps: float | None
    seconds: float
    overshoot: float
    max_steps: int
    seed: int
    indices: list[int] = field(repr=False, default_factory=list)
    not_computed: dict[str, str] = field(default_factory=dict)

    @property
    def seconds_per_image(self) -> float:
        return self.seconds / self.count

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict (no NaN or infinity; None = not computed, with the reason)."""
        out = {
            "count": self.count,
            "succeeded": self.succeeded,
            "failed_fraction": self.failed_fraction,
            "mean_ratio": self.mean_ratio,
            "mean_ratio_correct": self.mean_ratio_correct,
            "accuracy": self.accuracy,
            "mean_steps": self.mean_steps,
            "seconds": self.seconds,
            "overshoot": self.overshoot,
            "max_steps": self.max_steps,
            "seed": self.seed,
        }
        if self.not_computed:
            out["not_computed"] = dict(self.not_computed)
        return out

    def to_row(self) -> dict[str, Any]:
        """The flat ``deepfool_*`` columns (:data:`ROW_KEYS`) of a per-epoch log row."""
        # the values in the order of :data:`ROW_KEYS` (schema.RUN_COLUMNS' robustness group)
        values = (
            self.mean_ratio,
            self.mean_ratio_correct,
            self.failed_fraction,
            self.count,
            self.succeeded,
            self.accuracy,
            self.mean_steps,
            self.seconds,
        )
        row: dict[str, Any] = dict(zip(ROW_KEYS, values, strict=True))
        if self.not_computed:
            row["deepfool_not_computed"] = {
                f"deepfool_{k}": v for k, v in self.not_computed.items()
            }
        return row


def empty_row() -> dict[str, None]:
    """``deepfool_*`` columns of an epoch without a measurement (all None)."""
    return dict.fromkeys(ROW_KEYS)


def _mean_or_none(values: torch.Tensor) -> float | None:
    return float(values.to(torch.float64).mean()) if values.numel() else None


def robustness(
    model: Model,
    images: torch.Tensor,
    labels: torch.Tensor | None = None,
    *,
    subset: int | None = None,
    seed: int = 0,
    overshoot: float = DEFAULT_OVERSHOOT,
    max_steps: int = DEFAULT_MAX_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> RobustnessResult:
    """Mean ``||r(x)|| / ||x||`` of DeepFool's minimal perturbation over a seeded subset.

    ``rho = (1/|S|) sum_{x in S} ||r(x)||_2 / ||x||_2`` over the set S of attacked images
    that DeepFool fooled within ``max_steps`` (Moosavi-Dezfooli et al. 2016, their rho_adv; the
    measure Papyan et al. 2020 follow through training). The attack changes the model's own
    decision ``k(x)``, so every image counts, also a misclassified one; with ``labels`` the
    mean over the correctly classified images and the subset's accuracy are reported too.

    Parameters
    ----------
    model : logits ``(B, K)`` from ``(B, ...)``; eval mode during the attack, modes restored.
    images : ``(N, ...)`` finite floating-point inputs (as the model sees them).
    labels : ``(N,)`` integer labels in ``[0, K)``, or None.
    subset : attack this many images, drawn once with ``seed`` (:func:`subset_indices`), so
        repeated measurements attack the same images; None: all images.
    seed : seed of the subset.
    overshoot, max_steps, batch_size : as in :func:`deepfool`.

    Returns
    -------
    :class:`RobustnessResult`. When no image was fooled the means are None and
    ``not_computed`` says why (never a division by zero).

    Raises
    ------
    ValueError : ``subset`` negative, zero or larger than the split; non-finite images; an
        image of norm 0 (the ratio is undefined); labels of the wrong shape or range.
    """
    _check_images(images)
    overshoot, max_steps, batch_size = _check_settings(overshoot, max_steps, batch_size)
    seed = check_int("seed", seed)
    indices = subset_indices(images.shape[0], subset, seed)
    chosen = images[indices.to(images.device)]
    chosen_labels = None
    if labels is not None:
        if not isinstance(labels, torch.Tensor) or labels.shape != (images.shape[0],):
            raise ValueError(
                f"labels must be a tensor of shape (N,) = ({images.shape[0]},), one per image; "
                f"got {getattr(labels, 'shape', type(labels).__name__)}"
            )
        if labels.is_floating_point() or labels.is_complex():
            raise ValueError(f"labels must be integers; got dtype {labels.dtype}")
        chosen_labels = labels[indices.to(labels.device)].to(images.device)
        with eval_mode(model) if isinstance(model, nn.Module) else _nothing():
            k = _num_classes(model, chosen[:1].detach())
        low, high = int(chosen_labels.min()), int(chosen_labels.max())
        if low < 0 or high >= k:
            raise ValueError(
                f"labels must lie in [0, K) = [0, {k}) for a model with {k} logits; "
                f"got values in [{low}, {high}]"
            )
    zero = torch.linalg.vector_norm(chosen.reshape(len(chosen), -1), dim=1) == 0
    if bool(zero.any()):
        bad = indices[zero.cpu()][:5].tolist()
        raise ValueError(f"image(s) {bad} have norm 0, so ||r(x)|| / ||x|| is undefined; drop them")
    started = time.perf_counter()
    result = deepfool(
        model, chosen, overshoot=overshoot, max_steps=max_steps, batch_size=batch_size
    )
    seconds = time.perf_counter() - started
    count = int(indices.numel())
    fooled = result.success
    succeeded = int(fooled.sum())
    reasons: dict[str, str] = {}
    ratios = result.ratios.to(fooled.device)
    mean_ratio = _mean_or_none(ratios[fooled])
    mean_steps = _mean_or_none(result.steps[fooled])
    if succeeded == 0:
        why = (
            f"DeepFool changed the decision of none of the {count} images within "
            f"max_steps={max_steps}; raise max_steps"
        )
        reasons["mean_ratio"] = reasons["mean_steps"] = why
    accuracy = mean_ratio_correct = None
    if chosen_labels is None:
        reasons["accuracy"] = reasons["mean_ratio_correct"] = "no labels given"
    else:
        correct = result.original == chosen_labels
        accuracy = float(correct.to(torch.float64).mean())
        mean_ratio_correct = _mean_or_none(ratios[fooled & correct])
        if mean_ratio_correct is None:
            reasons["mean_ratio_correct"] = (
                "no correctly classified image was fooled"
                if bool(correct.any())
                else "the model classifies none of the subset correctly"
            )
    return RobustnessResult(
        count=count,
        succeeded=succeeded,
        failed_fraction=(count - succeeded) / count,
        mean_ratio=mean_ratio,
        mean_ratio_correct=mean_ratio_correct,
        accuracy=accuracy,
        mean_steps=mean_steps,
        seconds=seconds,
        overshoot=overshoot,
        max_steps=max_steps,
        seed=seed,
        indices=indices.tolist(),
        not_computed=reasons,
    )


# ----------------------------------------------------------------------------- cost


def seconds_per_image(
    model: Model,
    images: torch.Tensor,
    *,
    probe: int = 16,
    seed: int = 0,
    overshoot: float = DEFAULT_OVERSHOOT,
    max_steps: int = DEFAULT_MAX_STEPS,
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> float:
    """Wall time of DeepFool per image, timed on ``probe`` images of ``images``.

    An estimate for the model as it is now: the number of DeepFool steps (and so the time)
    changes as training goes on, and a larger batch costs less per image. Use it to print
    what a per-epoch measurement will cost (:func:`describe_cost`).
    """
    probe = min(check_int("probe", probe, minimum=1, meaning="images timed"), images.shape[0])
    result = robustness(
        model,
        images,
        subset=probe,
        seed=seed,
        overshoot=overshoot,
        max_steps=max_steps,
        batch_size=batch_size,
    )
    return result.seconds_per_image


def describe_cost(seconds_each: float, subset: int, measurements: int) -> str:
    """One line for a CLI: the estimated cost of ``measurements`` DeepFool runs on ``subset``.

    >>> describe_cost(0.01, 100, 32)
    'DeepFool on 100 images: ~1 s per measurement, ~32 s for 32 measurements (estimate)'
    """
    each = seconds_each * subset
    return (
        f"DeepFool on {subset} images: ~{each:.2g} s per measurement, "
        f"~{each * measurements:.3g} s for {measurements} measurements (estimate)"
    )
