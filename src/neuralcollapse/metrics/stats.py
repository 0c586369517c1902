"""Mergeable sufficient statistics of (features, labels) for the neural-collapse metrics.

Every state here is a *sum* over samples, so statistics of disjoint shards add up
exactly (``merge``) and all-reduce across processes with ``torch.distributed``
(``all_reduce``). Sums are kept in float64 whatever the input precision.

Two passes (class means first):

- :class:`ClassStats` (pass 1) holds per-class counts and feature sums. One pass is
  enough for every metric that only needs the class means: equinorm, equiangularity,
  max-angle, the ETF / orthogonal-frame gaps, the global-mean ratio, self-duality.
- :class:`CentredStats` (pass 2) is accumulated once the means are known. It holds what
  needs each sample's distance to its own class mean: the within-class sums of squares
  ``sum_i ||h_i - mu_{y_i}||^2`` per class (NC1 trace ratio, CDNV), their projection onto
  the span of the centred class means (exact NC1 without any d x d matrix), and the
  counts behind accuracy and the NCC mismatch (NC4). Centring each sample on its own
  class mean before squaring (rather than expanding ``E||h||^2 - ||mu||^2``) keeps the
  within-class variance exact even when it is 1e-12 of the squared norms, which is
  exactly the regime neural collapse drives features into.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch

from neuralcollapse.atomic import atomic_write
from neuralcollapse.metrics.nearest_centre import NearestCentreRule
from neuralcollapse.metrics.validation import (
    ArrayLike,
    check_classifier,
    check_features,
    check_finite_chunk,
    check_labels,
    check_num_classes,
)

# index_put_(accumulate=True) is the scatter-add used throughout: on CPU it measured 3-10x
# faster than index_add_ for (8192 x d) float64 chunks (benchmarks/bench_metrics.py cases)

# float64 elements in one working chunk: ~4 MB on CPU, so the copy, the centring and the
# product of a chunk stay in cache; ~128 MB on a GPU, where big kernels are what is fast
_CPU_CHUNK_ELEMENTS = 2**19
_GPU_CHUNK_ELEMENTS = 2**24


def default_chunk_rows(dim: int, device: torch.device | str = "cpu") -> int:
    """Rows per float64 working chunk for features of dimension ``dim`` on ``device``.

    On CPU, 4 MB chunks ran the second pass 2-3x faster than 8192-row chunks at d = 2048
    (memory traffic, not arithmetic, bounds these passes; benchmarks/bench_metrics.py).
    """
    budget = _CPU_CHUNK_ELEMENTS if torch.device(device).type == "cpu" else _GPU_CHUNK_ELEMENTS
    return max(64, min(65536, budget // max(int(dim), 1)))


def _check_chunk_rows(chunk_rows: int | None) -> int | None:
    if chunk_rows is None:
        return None
    if not isinstance(chunk_rows, int) or isinstance(chunk_rows, bool) or chunk_rows < 1:
        raise ValueError(
            f"batch_size (rows per chunk) must be an integer >= 1 or None (automatic); "
            f"got {chunk_rows!r}"
        )
    return chunk_rows


def _float64_workspace(
    features: torch.Tensor, rows: int, device: torch.device, *, always: bool = False
) -> torch.Tensor | None:
    """One reusable (rows, d) float64 buffer, or None when the chunks can be used as they are.

    Reusing one buffer matters: a fresh multi-MB allocation per chunk page-faults, which
    measured ~5x slower than copying into memory already mapped.
    """
    if not always and features.dtype == torch.float64 and features.device == device:
        return None
    rows = min(rows, features.shape[0])
    return torch.empty(rows, features.shape[1], dtype=torch.float64, device=device)


def _distributed_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sum(tensor: torch.Tensor, group: object | None) -> torch.Tensor:
    """Sum ``tensor`` over all processes in place, on a device the backend supports."""
    backend = torch.distributed.get_backend(group)
    # gloo reduces CPU tensors, nccl CUDA tensors; move there and back when needed
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    staged = tensor.to(device)
    torch.distributed.all_reduce(staged, op=torch.distributed.ReduceOp.SUM, group=group)
    tensor.copy_(staged.to(tensor.device))
    return tensor


class _SumState:
    """Shared plumbing for states that are tuples of float64 / int64 sums."""

    _fields: tuple[str, ...] = ()

    def _tensors(self) -> list[torch.Tensor]:
        return [getattr(self, name) for name in self._fields]

    def _check_compatible(self, other: _SumState) -> None:
        if type(other) is not type(self):
            raise ValueError(f"cannot merge {type(other).__name__} into {type(self).__name__}")
        for name in self._fields:
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine.shape != theirs.shape:
                raise ValueError(
                    f"cannot merge statistics with different shapes: {name} is "
                    f"{tuple(mine.shape)} here and {tuple(theirs.shape)} in the other"
                )

    def merge(self, other: _SumState):
        """Add the statistics of a disjoint shard (exact: every state is a sum)."""
        self._check_compatible(other)
        for name in self._fields:
            getattr(self, name).add_(getattr(other, name).to(getattr(self, name).device))
        return self

    def all_reduce(self, group: object | None = None):
        """Sum the statistics over all ``torch.distributed`` processes (no-op if not initialised).

        Every rank must call it; afterwards each holds the statistics of all shards.
        """
        if _distributed_ready():
            for tensor in self._tensors():
                _all_reduce_sum(tensor, group)
        return self


class ClassStats(_SumState):
    """Pass-1 statistics: per-class sample counts and feature sums (float64).

    ``counts[k] = #{i : y_i = k}``, ``sums[k] = sum_{i: y_i = k} h_i``; the class means are
    ``sums[k] / counts[k]``. One pass over the data; mergeable and all-reducible exactly.

    Parameters
    ----------
    num_classes : K >= 2.
    dim : feature dimension d; inferred from the first batch when None.
    device : where the sums live (default: the device of the first batch).

    Examples
    --------
    >>> stats = ClassStats(num_classes=10)
    >>> for features, labels in batches:          # doctest: +SKIP
    ...     stats.update(features, labels)
    >>> means = stats.means()                     # doctest: +SKIP
    """

    _fields = ("counts", "sums")

    def __init__(
        self,
        num_classes: int,
        dim: int | None = None,
        device: torch.device | str | None = None,
        *,
        chunk_rows: int | None = None,
    ) -> None:
        self.num_classes = check_num_classes(num_classes)
        self.chunk_rows = _check_chunk_rows(chunk_rows)
        self.dim = dim
        self.device = torch.device(device) if device is not None else None
        self.counts: torch.Tensor
        self.sums: torch.Tensor
        if dim is not None:
            self._allocate(dim, self.device or torch.device("cpu"))

    def _allocate(self, dim: int, device: torch.device) -> None:
        self.dim = dim
        self.device = device
        self.counts = torch.zeros(self.num_classes, dtype=torch.int64, device=device)
        self.sums = torch.zeros(self.num_classes, dim, dtype=torch.float64, device=device)

    @property
    def initialised(self) -> bool:
        return hasattr(self, "sums")

    def _tensors(self) -> list[torch.Tensor]:
        self._require_data()
        return super()._tensors()

    def merge(self, other: ClassStats) -> ClassStats:
        """Add the statistics of a disjoint shard (exact: every state is a sum).

        An empty ``ClassStats`` adopts the other's dimension, so shards can be folded into
        ``ClassStats(K)`` one after another.
        """
        if isinstance(other, ClassStats) and other.initialised and not self.initialised:
            self._allocate(other.dim, self.device or other.device)
        if isinstance(other, ClassStats) and other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge statistics of {other.num_classes} classes into {self.num_classes}"
            )
        return super().merge(other)

    def _require_data(self) -> None:
        if not self.initialised:
            raise ValueError(
                "ClassStats has seen no data yet: call update(features, labels) first "
                "(or pass dim= to the constructor)"
            )

    def update(self, features: ArrayLike, labels: ArrayLike) -> ClassStats:
        """Add a batch: ``features`` (B, d), any float dtype / device; ``labels`` (B,) in [0, K)."""
        features = check_features(features, check_values=False)
        if not self.initialised:
            self._allocate(features.shape[1], self.device or features.device)
        elif features.shape[1] != self.dim:
            raise ValueError(
                f"features have dimension {features.shape[1]} but earlier batches had {self.dim}"
            )
        labels = check_labels(labels, features.shape[0], self.num_classes, self.device)
        rows = self.chunk_rows or default_chunk_rows(self.dim, self.device)
        workspace = _float64_workspace(features, rows, self.device)
        for start in range(0, features.shape[0], rows):
            part = features[start : start + rows]
            chunk = part if workspace is None else workspace[: part.shape[0]].copy_(part)
            check_finite_chunk(chunk, offset=start)
            self.sums.index_put_((labels[start : start + rows],), chunk, accumulate=True)
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        return self

    @property
    def num_samples(self) -> int:
        self._require_data()
        return int(self.counts.sum())

    def check_all_classes_present(self) -> None:
        """Raise if some declared class has no sample: its mean (and every metric) is undefined."""
        self._require_data()
        empty = torch.nonzero(self.counts == 0).flatten().tolist()
        if empty:
            shown = ", ".join(str(k) for k in empty[:10]) + (" ..." if len(empty) > 10 else "")
            raise ValueError(
                f"{len(empty)} of {self.num_classes} classes have no samples (class {shown}); "
                "every class needs at least one sample — drop those classes and remap the "
                "labels to 0..K'-1, or lower num_classes"
            )

    def means(self, *, overwrite: bool = False) -> torch.Tensor:
        """Class means, (K, d) float64. Raises if a class is empty.

        ``overwrite=True`` divides the sums in place and returns them: no K x d copy, but the
        statistics are spent afterwards (for a caller that owns them and needs only the means).
        """
        self.check_all_classes_present()
        counts = self.counts.unsqueeze(1).to(torch.float64)
        return self.sums.div_(counts) if overwrite else self.sums / counts

    def state_dict(self) -> dict:
        self._require_data()
        return {
            "kind": "ClassStats",
            "num_classes": self.num_classes,
            "counts": self.counts.cpu(),
            "sums": self.sums.cpu(),
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str | None = None) -> ClassStats:
        if state.get("kind") != "ClassStats":
            raise ValueError("not a ClassStats state (missing kind='ClassStats')")
        stats = cls(state["num_classes"])
        target = torch.device(device) if device is not None else torch.device("cpu")
        stats._allocate(state["sums"].shape[1], target)
        stats.counts.copy_(state["counts"])
        stats.sums.copy_(state["sums"])
        return stats

    def save(self, path: str | os.PathLike) -> None:
        """Serialise to ``path`` (atomically) with torch.save."""
        atomic_write(path, lambda stream: torch.save(self.state_dict(), stream))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str | None = None) -> ClassStats:
        return cls.from_state_dict(torch.load(path, weights_only=True), device)


@dataclass(frozen=True)
class MeanGeometry:
    """What pass 2 needs from pass 1: the centred means and the basis of their span.

    ``centred = means - mu_G`` (rows ``m_k``, K x d) has the thin SVD ``U_r S_r V_r^T`` restricted
    to its numerically non-zero singular values; ``basis = V_r`` (d x r, orthonormal columns
    spanning the centred means) and ``singular_values = S_r``. Since
    ``Sigma_B = centred^T centred / K``, its pseudo-inverse is ``K basis diag(S_r^-2) basis^T``.

    Only the centred means are stored (one K x d array: at K = 50,257 and d = 768 each such
    array is 309 MB); the uncentred ``means`` are ``centred + global_mean`` on request.
    """

    global_mean: torch.Tensor  # (d,): mean of the class means
    centred: torch.Tensor  # (K, d)
    basis: torch.Tensor  # (d, r)
    singular_values: torch.Tensor  # (r,)

    @property
    def means(self) -> torch.Tensor:
        """The class means ``mu_k = m_k + mu_G`` (a new K x d tensor)."""
        return self.centred + self.global_mean

    @property
    def shape(self) -> tuple[int, int]:
        """(K, d)."""
        return tuple(self.centred.shape)

    def centred_coordinates(self) -> torch.Tensor:
        """(K, r): the coordinates ``V^T m_k`` of the centred means in the basis."""
        return self.centred @ self.basis

    @classmethod
    def from_means(cls, means: torch.Tensor, *, overwrite: bool = False) -> MeanGeometry:
        """Centre the (K, d) float64 ``means`` and find the basis of their span.

        ``overwrite=True`` centres ``means`` in place (saves a K x d copy when the caller
        has no further use for them).
        """
        global_mean = means.mean(dim=0)
        centred = means.sub_(global_mean) if overwrite else means - global_mean
        num_classes, dim = centred.shape
        singular, right = _singular_values_and_right_vectors(centred)
        # the rank cut-off torch.linalg.pinv uses for Sigma_B (d x d): rtol = d * eps on its
        # eigenvalues, which are singular**2 / K
        rtol = max(num_classes, dim) * torch.finfo(torch.float64).eps
        keep = singular**2 > rtol * singular[0] ** 2 if singular.numel() else singular > 0
        if singular.numel() == 0 or not bool(keep.any()) or float(singular[0]) == 0.0:
            raise ValueError(
                "all class means coincide (between-class scatter Sigma_B = 0): NC metrics are "
                "undefined — are the features constant, or all zero?"
            )
        return cls(
            global_mean=global_mean,
            centred=centred,
            basis=right[keep].T.contiguous(),
            singular_values=singular[keep],
        )


def _singular_values_and_right_vectors(centred: torch.Tensor):
    """Singular values and right singular vectors (rows) of a (K, d) matrix, thin.

    With many more rows than columns (a vocabulary of classes, K >> d), the SVD of the
    triangular factor R of ``centred = Q R`` has the same singular values and right
    vectors and never forms the K x d factor U (Q is not formed either: ``mode="r"``).
    """
    num_classes, dim = centred.shape
    if num_classes > 2 * dim:
        triangular = torch.linalg.qr(centred, mode="r").R
        _, singular, right = torch.linalg.svd(triangular)
        return singular, right
    _, singular, right = torch.linalg.svd(centred, full_matrices=False)
    return singular, right


class CentredStats(_SumState):
    """Pass-2 statistics, accumulated once the class means are known (all sums).

    For each sample with residual ``r_i = h_i - mu_{y_i}``:

    - ``counts[k]``: samples of class k seen (must equal pass 1's, checked by the caller);
    - ``within_ss[k] = sum_{i in k} ||r_i||^2``  (so ``Tr Sigma_W = sum_k within_ss[k] / N``);
    - ``projected_ss[k] = sum_{i in k} ||S^-1 V^T r_i||^2`` with the basis ``V`` and singular
      values ``S`` of the centred means, so that
      ``Tr(Sigma_W Sigma_B^+) = (K/N) sum_k projected_ss[k]`` (see :mod:`.collapse`);
    - ``ncc_correct``: samples whose nearest class centre is their own class;
    - ``classifier_correct`` and ``classifier_ncc_agree``: with a classifier ``(W, b)``,
      samples with ``argmax(W h + b) = y`` and with ``argmax(W h + b) = argmin_k ||h - mu_k||``.

    Per chunk: the logits ``H W^T + b`` ((B x d)(d x K), the one unavoidable product with a
    classifier) and the NC1 projection ``R V S^-1`` ((B x d)(d x r)); the
    nearest-class-centre rule adds scores only for samples its certificate cannot settle
    (:mod:`.nearest_centre`). Nothing d x d, K x K or N x N is formed.

    ``reference``: the MeanGeometry of another set (the training data) whose means decide
    the nearest-class-centre rule, for NCC accuracy and NC4 on held-out data.
    """

    _fields = (
        "counts",
        "within_ss",
        "projected_ss",
        "ncc_correct",
        "classifier_correct",
        "classifier_ncc_agree",
    )

    def __init__(
        self,
        geometry: MeanGeometry,
        weights: torch.Tensor | None = None,
        bias: torch.Tensor | None = None,
        *,
        nearest_centre: bool = True,
        chunk_rows: int | None = None,
        reference: MeanGeometry | None = None,
        tile_size: int | None = None,
    ) -> None:
        self.geometry = geometry
        self.chunk_rows = _check_chunk_rows(chunk_rows)
        self.nearest_centre = nearest_centre
        num_classes, dim = geometry.centred.shape
        self.num_classes = num_classes
        self.weights, self.bias = check_classifier(weights, bias, num_classes, dim)
        device = geometry.centred.device
        self.device = device
        self.counts = torch.zeros(num_classes, dtype=torch.int64, device=device)
        self.within_ss = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.projected_ss = torch.zeros(num_classes, dtype=torch.float64, device=device)
        self.ncc_correct = torch.zeros((), dtype=torch.int64, device=device)
        self.classifier_correct = torch.zeros((), dtype=torch.int64, device=device)
        self.classifier_ncc_agree = torch.zeros((), dtype=torch.int64, device=device)
        self._scaled_basis = geometry.basis / geometry.singular_values
        if self.weights is not None:
            self.weights = self.weights.to(device)
            self.bias = None if self.bias is None else self.bias.to(device)
        if reference is not None and tuple(reference.centred.shape) != (num_classes, dim):
            raise ValueError(
                f"the reference means have shape {tuple(reference.centred.shape)} but the "
                f"measured data has (K, d) = ({num_classes}, {dim}); the reference must be "
                "statistics of the same classes in the same feature space"
            )
        self.reference = reference
        self._rule = None
        if nearest_centre:
            deciding = None if reference is None else _to_device(reference, device)
            self._rule = NearestCentreRule(geometry, deciding, tile_size)

    def update(self, features: ArrayLike, labels: ArrayLike) -> CentredStats:
        """Add a batch (same data as pass 1, in any order or split).

        Values were checked for NaN/inf in pass 1; should a batch differ here, the
        non-finite within-class sums give it away at the end of the update.
        """
        features = check_features(features, check_values=False)
        if features.shape[1] != self.geometry.centred.shape[1]:
            raise ValueError(
                f"features have dimension {features.shape[1]} but the class means have "
                f"{self.geometry.centred.shape[1]}"
            )
        labels = check_labels(labels, features.shape[0], self.num_classes, self.device)
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        # the widest (rows x .) float64 block per chunk: the features, the logits or the
        # nearest-centre scores (K of them: they dominate when K >> d)
        widest = max(features.shape[1], self._scaled_basis.shape[1], self.num_classes)
        rows = self.chunk_rows or default_chunk_rows(widest, self.device)
        workspace = _float64_workspace(features, rows, self.device, always=True)
        centres = torch.empty_like(workspace)
        centred_means, global_mean = self.geometry.centred, self.geometry.global_mean
        for start in range(0, features.shape[0], rows):
            chunk_labels = labels[start : start + rows]
            part = features[start : start + rows]
            size = part.shape[0]
            # copy (converting to float64, across devices if need be) into the reused buffer:
            # a mixed-dtype subtraction would allocate a converted temporary per chunk
            chunk = workspace[:size].copy_(part)
            prediction = None
            if self.weights is not None:
                logits = chunk @ self.weights.T
                if self.bias is not None:
                    logits += self.bias
                prediction = logits.argmax(dim=1)
                del logits
                self.classifier_correct += (prediction == chunk_labels).sum()
            block_centres = torch.index_select(centred_means, 0, chunk_labels, out=centres[:size])
            residual = chunk.sub_(block_centres.add_(global_mean))  # in place: h - mu_y
            scaled = residual @ self._scaled_basis
            within = torch.linalg.vector_norm(residual, dim=1).square_()
            self.within_ss.index_put_((chunk_labels,), within, accumulate=True)
            self.projected_ss.index_put_(
                (chunk_labels,), (scaled * scaled).sum(dim=1), accumulate=True
            )
            if self._rule is not None:
                ncc_prediction = self._rule.predict(residual, within, scaled, chunk_labels)
                self.ncc_correct += (ncc_prediction == chunk_labels).sum()
                if prediction is not None:
                    self.classifier_ncc_agree += (prediction == ncc_prediction).sum()
        if not bool(torch.isfinite(self.within_ss).all()):
            raise ValueError(
                "features contain NaN or inf in the second pass (the first pass saw finite "
                "values): make_batches() must yield the same data on both passes"
            )
        return self


def _to_device(geometry: MeanGeometry, device: torch.device) -> MeanGeometry:
    if geometry.centred.device == device:
        return geometry
    return MeanGeometry(
        global_mean=geometry.global_mean.to(device),
        centred=geometry.centred.to(device),
        basis=geometry.basis.to(device),
        singular_values=geometry.singular_values.to(device),
    )
