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

import math
import os
import pickle
import warnings
import zipfile
from dataclasses import dataclass

import torch

from neuralcollapse.atomic import atomic_write
from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.nearest_centre import NearestCentreRule
from neuralcollapse.metrics.validation import (
    ArrayLike,
    BatchSource,
    CheckedBatch,
    check_classifier,
    check_features,
    check_finite_chunk,
    check_labels,
    check_num_classes,
    input_epsilon,
)

#: float64's machine epsilon: the precision of statistics whose inputs were all float64
FLOAT64_EPS = torch.finfo(torch.float64).eps

# the class means are rescaled by a power of two (exact) when their largest entry lies
# outside [2^-SAFE, 2^SAFE]: every metric squares them, and tile sums of Gram entries take
# fourth powers, which overflow float64 from ~1e77 and underflow below ~1e-77 (issue 16)
_SAFE_EXPONENT = 128

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


def check_chunk_rows(chunk_rows: int | None) -> int | None:
    """Rows per float64 working chunk (``batch_size`` of the front doors), or None: automatic."""
    if chunk_rows is None:
        return None
    return check_int(
        "batch_size (rows per chunk)", chunk_rows, minimum=1, alternative="or None (automatic)"
    )


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


def check_device(device: torch.device | str | None) -> torch.device | None:
    """``device`` as a torch.device, refused with a message when this machine lacks it."""
    if device is None:
        return None
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise ValueError(f"device {device!r} is not a torch device name ({error})") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but no CUDA GPU is available (torch "
            f"{torch.__version__}, CUDA build: {torch.version.cuda is not None}); use device='cpu'"
        )
    if device.type == "cuda" and (device.index or 0) >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(device)!r} requested but this machine has only "
            f"{torch.cuda.device_count()} CUDA GPU(s); use device='cuda:0' or device='cpu'"
        )
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError(
            f"device {str(device)!r} requested but Apple's MPS is not available; use device='cpu'"
        )
    return device


def power_of_two_scale(peak: float) -> float:
    """1.0 when ``peak`` (a largest absolute value) lies in [2^-128, 2^128], else the power of
    two just above it: dividing by a power of two is exact, and brings the data to ~1."""
    if peak == 0.0 or not math.isfinite(peak):
        return 1.0
    exponent = math.frexp(peak)[1]  # peak = m 2^e with 0.5 <= m < 1
    if -_SAFE_EXPONENT <= exponent <= _SAFE_EXPONENT:
        return 1.0
    # 2^1024 is not a float and 1 / 2^-1074 overflows: stay where both are representable
    return math.ldexp(1.0, max(-1020, min(1020, exponent)))


def peak_magnitude(tensor: torch.Tensor) -> float:
    """``max |x|`` over a tensor, without the |x| temporary (aminmax reads it once)."""
    if tensor.numel() == 0:
        return 0.0
    low, high = torch.aminmax(tensor)
    return max(-float(low), float(high))


def _distributed_ready() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


def _all_reduce_sum(
    tensor: torch.Tensor, group: object | None, op: object | None = None
) -> torch.Tensor:
    """Sum (or ``op``) ``tensor`` over all processes in place, on a device the backend supports."""
    backend = torch.distributed.get_backend(group)
    # gloo reduces CPU tensors, nccl CUDA tensors; move there and back when needed
    device = torch.device("cuda", torch.cuda.current_device()) if backend == "nccl" else "cpu"
    staged = tensor.to(device)
    torch.distributed.all_reduce(staged, op=op or torch.distributed.ReduceOp.SUM, group=group)
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

    def update_from(self, make_batches: BatchSource):
        """Add every batch of ``make_batches()`` (one pass over the stream) with ``update``.

        A :class:`~neuralcollapse.metrics.validation.CheckedBatch` of these classes is added
        as it is: its tensors passed ``update``'s checks at the door (``check_batch``), and
        checking them again on every pass was the repeated work of issue 13.
        """
        if isinstance(make_batches, CheckedBatch) and make_batches.fits(self.num_classes):
            return self._update_checked(make_batches.features, make_batches.labels)
        for features, labels in make_batches():
            self.update(features, labels)
        return self

    def update(self, features: ArrayLike, labels: ArrayLike, *, first_row: int = 0):
        """Check a batch (features (B, d), labels (B,) in [0, K)) and add it.

        ``first_row``: the batch's position in a longer stream, so that an error names the
        stream's row (the engine feeds a stream in pieces).
        """
        features = check_features(features, check_values=False)
        self._fit_dimension(features)
        labels = check_labels(labels, features.shape[0], self.num_classes, self.device)
        return self._accumulate(features, labels, first_row)

    def _update_checked(self, features: torch.Tensor, labels: torch.Tensor, first_row: int = 0):
        """``update`` of tensors that passed ``check_features`` and ``check_labels``."""
        self._fit_dimension(features)
        return self._accumulate(features, labels.to(self.device), first_row)

    def _fit_dimension(self, features: torch.Tensor) -> None:
        """Refuse features of another dimension than the statistics' (subclasses)."""
        raise NotImplementedError

    def _accumulate(self, features: torch.Tensor, labels: torch.Tensor, first_row: int = 0):
        """Add a checked batch to the sums (subclasses); rows are numbered from first_row."""
        raise NotImplementedError


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
        self.chunk_rows = check_chunk_rows(chunk_rows)
        self.dim = dim
        self.device = check_device(device)
        # machine epsilon of the least precise features seen: their rounding bounds how
        # well the class means are known, hence the rank cut-off of their span (MeanGeometry)
        self.input_eps = FLOAT64_EPS
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

    def all_reduce(self, group: object | None = None) -> ClassStats:
        """Sum the statistics over all processes; ``input_eps`` becomes the largest of any."""
        super().all_reduce(group)
        if _distributed_ready():
            eps = torch.tensor([self.input_eps], dtype=torch.float64)
            self.input_eps = float(_all_reduce_sum(eps, group, torch.distributed.ReduceOp.MAX))
        return self

    def merge(self, other: ClassStats) -> ClassStats:
        """Add the statistics of a disjoint shard (exact: every state is a sum).

        An empty ``ClassStats`` adopts the other's dimension, so shards can be folded into
        ``ClassStats(K)`` one after another.
        """
        if isinstance(other, ClassStats) and other.num_classes != self.num_classes:
            raise ValueError(
                f"cannot merge statistics of {other.num_classes} classes into {self.num_classes}"
            )
        if isinstance(other, ClassStats) and not other.initialised:
            return self  # an empty shard adds nothing
        if isinstance(other, ClassStats) and not self.initialised:
            self._allocate(other.dim, self.device or other.device)
        if isinstance(other, ClassStats):
            self.input_eps = max(self.input_eps, other.input_eps)
        return super().merge(other)

    def _require_data(self) -> None:
        if not self.initialised:
            raise ValueError(
                "ClassStats has seen no data yet: call update(features, labels) first "
                "(or pass dim= to the constructor)"
            )

    def update(self, features: ArrayLike, labels: ArrayLike, *, first_row: int = 0) -> ClassStats:
        """Add a batch: ``features`` (B, d), any float dtype / device; ``labels`` (B,) in [0, K)."""
        return super().update(features, labels, first_row=first_row)

    def _fit_dimension(self, features: torch.Tensor) -> None:
        """Allocate the sums for the first batch; refuse a later batch of another d."""
        if not self.initialised:
            self._allocate(features.shape[1], self.device or features.device)
        elif features.shape[1] != self.dim:
            raise ValueError(
                f"features have dimension {features.shape[1]} but earlier batches had {self.dim}"
            )

    def _accumulate(
        self, features: torch.Tensor, labels: torch.Tensor, first_row: int = 0
    ) -> ClassStats:
        """``counts[k] += #{y_i = k}`` and ``sums[k] += sum_{y_i = k} h_i``, a chunk at a time,
        scanning each chunk for NaN/inf on the way (the one value check of the features)."""
        self.input_eps = max(self.input_eps, input_epsilon(features))
        rows = self.chunk_rows or default_chunk_rows(self.dim, self.device)
        workspace = _float64_workspace(features, rows, self.device)
        for start in range(0, features.shape[0], rows):
            part = features[start : start + rows]
            chunk = part if workspace is None else workspace[: part.shape[0]].copy_(part)
            check_finite_chunk(chunk, offset=first_row + start)
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

    def restricted(self, classes: torch.Tensor) -> ClassStats:
        """The statistics of ``classes`` only (a 1-D tensor of class indices, increasing),
        renumbered ``0 .. len(classes) - 1``: a new object, these statistics unchanged.

        For measuring the classes that occur (a vocabulary where most tokens never do):
        every metric of the restricted statistics is the metric of those classes alone.
        """
        self._require_data()
        classes = torch.as_tensor(classes).to(self.counts.device)
        restricted = ClassStats(int(classes.numel()), chunk_rows=self.chunk_rows)
        restricted._allocate(self.dim, self.device)
        restricted.counts.copy_(self.counts[classes])
        restricted.sums.copy_(self.sums[classes])
        restricted.input_eps = self.input_eps
        return restricted

    def rows_per_chunk(self, dim: int, device: torch.device) -> int:
        """Rows :meth:`update` converts to float64 at a time for features of dimension ``dim``.

        A stream cut at multiples of it is summed exactly as one tensor of all its rows
        (:func:`~neuralcollapse.metrics.engine.measure_layers` relies on that).
        """
        return self.chunk_rows or default_chunk_rows(dim, self.device or device)

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
            "input_eps": self.input_eps,
        }

    @classmethod
    def from_state_dict(cls, state: dict, device: torch.device | str | None = None) -> ClassStats:
        """Rebuild from :meth:`state_dict`, checking every entry (a file may be damaged)."""
        if not isinstance(state, dict) or state.get("kind") != "ClassStats":
            raise ValueError("not a ClassStats state (missing kind='ClassStats')")
        missing = [key for key in ("num_classes", "counts", "sums") if key not in state]
        if missing:
            raise ValueError(
                f"the ClassStats state lacks {', '.join(missing)}; it was not written by "
                "ClassStats.save / state_dict (or is damaged): save the statistics again"
            )
        num_classes, counts, sums = state["num_classes"], state["counts"], state["sums"]
        if not isinstance(counts, torch.Tensor) or not isinstance(sums, torch.Tensor):
            raise ValueError("the ClassStats state's counts and sums must be tensors")
        stats = cls(num_classes)
        if counts.shape != (stats.num_classes,) or sums.ndim != 2:
            raise ValueError(
                f"the ClassStats state has counts of shape {tuple(counts.shape)} and sums of "
                f"shape {tuple(sums.shape)}; expected ({stats.num_classes},) and "
                f"({stats.num_classes}, d): the file is damaged, save the statistics again"
            )
        if sums.shape[0] != stats.num_classes or sums.shape[1] < 1:
            raise ValueError(
                f"the ClassStats state's sums have shape {tuple(sums.shape)} but "
                f"num_classes={stats.num_classes}; the file is damaged, save the statistics again"
            )
        if counts.is_floating_point() or counts.is_complex() or bool((counts < 0).any()):
            raise ValueError(
                "the ClassStats state's counts must be non-negative integers; the file is "
                "damaged, save the statistics again"
            )
        if not sums.is_floating_point() or not bool(torch.isfinite(sums).all()):
            raise ValueError("the ClassStats state's sums must be finite floats")
        target = check_device(device) or torch.device("cpu")
        stats._allocate(sums.shape[1], target)
        stats.counts.copy_(counts)
        stats.sums.copy_(sums)
        input_eps = state.get("input_eps", FLOAT64_EPS)  # states saved before issue 16 lack it
        stats.input_eps = check_float(
            "the ClassStats state's input_eps",
            input_eps,
            minimum=0.0,
            maximum=1.0,
            strict=True,
            meaning="the machine epsilon of the features",
        )
        return stats

    def save(self, path: str | os.PathLike) -> None:
        """Serialise to ``path`` (atomically) with torch.save."""
        atomic_write(path, lambda stream: torch.save(self.state_dict(), stream))

    @classmethod
    def load(cls, path: str | os.PathLike, device: torch.device | str | None = None) -> ClassStats:
        """Read a file written by :meth:`save` (restricted unpickler: no code runs)."""
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such ClassStats file: {path}")
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except (EOFError, RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile) as error:
            # an empty or truncated file raises EOFError with no message at all
            detail = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise ValueError(
                f"{path} is not a ClassStats file written by ClassStats.save (empty, truncated "
                f"or of another kind: {detail}); save the statistics again"
            ) from None
        return cls.from_state_dict(state, device)


@dataclass(frozen=True)
class MeanGeometry:
    """What pass 2 needs from pass 1: the centred means and the basis of their span.

    ``centred = means - mu_G`` (rows ``m_k``, K x d) has the thin SVD ``U_r S_r V_r^T`` restricted
    to its numerically non-zero singular values; ``basis = V_r`` (d x r, orthonormal columns
    spanning the centred means) and ``singular_values = S_r``. Since
    ``Sigma_B = centred^T centred / K``, its pseudo-inverse is ``K basis diag(S_r^-2) basis^T``.

    ``scale`` is 1 unless the means' largest entry lies outside [2^-128, 2^128]; then it is
    the power of two just above that entry, and ``global_mean``, ``centred`` and
    ``singular_values`` are stored divided by it (exactly: a power of two). Every metric
    squares the features and the tiled sums take fourth powers, which would overflow or
    underflow float64 far inside its range (from ~1e77 / below ~1e-77); the scale-invariant
    metrics come out the same, and the others are multiplied back (``CentredStats`` divides
    each chunk by the same scale). ``means`` is in the original units.

    Only the centred means are stored (one K x d array: at K = 50,257 and d = 768 each such
    array is 309 MB); the uncentred ``means`` are ``centred + global_mean`` on request.
    """

    global_mean: torch.Tensor  # (d,): mean of the class means, divided by scale
    centred: torch.Tensor  # (K, d), divided by scale
    basis: torch.Tensor  # (d, r)
    singular_values: torch.Tensor  # (r,), divided by scale
    scale: float = 1.0

    @property
    def means(self) -> torch.Tensor:
        """The class means ``mu_k = m_k + mu_G`` (a new K x d tensor), in the input's units."""
        means = self.centred + self.global_mean
        return means if self.scale == 1.0 else means.mul_(self.scale)

    @property
    def shape(self) -> tuple[int, int]:
        """(K, d)."""
        return tuple(self.centred.shape)

    def centred_coordinates(self) -> torch.Tensor:
        """(K, r): the coordinates ``V^T m_k`` of the (scaled) centred means in the basis."""
        return self.centred @ self.basis

    def rescaled(self, scale: float) -> MeanGeometry:
        """The same geometry stored divided by ``scale`` instead (a power of two)."""
        if scale == self.scale:
            return self
        # back to the input's units (representable: they were the input), then down: exact
        return MeanGeometry(
            global_mean=self.global_mean * self.scale / scale,
            centred=self.centred * self.scale / scale,
            basis=self.basis,
            singular_values=self.singular_values * self.scale / scale,
            scale=scale,
        )

    @classmethod
    def from_means(
        cls,
        means: torch.Tensor,
        *,
        overwrite: bool = False,
        rtol: float | None = None,
        input_eps: float | None = None,
        scale: float | None = None,
    ) -> MeanGeometry:
        """Centre the (K, d) float64 ``means`` and find the basis of their span.

        ``overwrite=True`` centres ``means`` in place (saves a K x d copy when the caller
        has no further use for them).

        The rank cut-off decides which directions ``Sigma_B^+`` inverts. It depends on the
        numbers only, never on the dtype they arrived in, so a metric of float16, bfloat16 or
        float32 features equals the metric of the same values cast to float64 (issue 21):

        - ``rtol=None`` (default): keep ``s_i`` when ``s_i^2 > max(K, d) eps_64 s_0^2``, the
          cut-off ``torch.linalg.pinv`` applies to ``Sigma_B`` (eigenvalues ``s^2 / K``), so
          NC1 equals the dense route's;
        - ``rtol`` given: keep ``s_i > rtol s_0``, the cut-off ``torch.linalg.pinv(M,
          rtol=rtol)`` applies to the centred means ``M`` (equivalently ``pinv(Sigma_B,
          rtol=rtol**2)``). Means of float16 features are known only to ~``eps_16 |h|``;
          ``rtol`` at that level drops the directions that rounding created.

        ``input_eps``: machine epsilon of the features the means came from
        (``ClassStats.input_eps``). It changes no number: where some kept direction's
        singular value is at that dtype's rounding level (``s_i <= eps_in ||means||_F``: a
        rounding of every entry by up to ``eps_in`` moves each singular value by at most
        that much), NC1 divides by rounding noise, and a :class:`RoundingLevelWarning`
        names the count, the stable alternatives and the ``rtol`` that would cut them.

        ``scale``: the power of two to store the means divided by; default automatic (see
        the class docstring).
        """
        peak = peak_magnitude(means)
        if not math.isfinite(peak):
            raise ValueError(
                "the class means are not finite: summing the features overflowed float64 "
                "(entries near 1e308 are outside the supported range); divide the features "
                "by a constant first — every metric but the variances is scale invariant"
            )
        if scale is None:
            scale = power_of_two_scale(peak)
        if scale != 1.0:
            means = means.mul_(1.0 / scale) if overwrite else means * (1.0 / scale)
            overwrite = True  # the scaled copy is ours
        # the rounding of the raw entries is relative to their size, centred or not
        means_norm = float(torch.linalg.matrix_norm(means)) if input_eps is not None else 0.0
        global_mean = means.mean(dim=0)
        centred = means.sub_(global_mean) if overwrite else means - global_mean
        num_classes, dim = centred.shape
        singular, right = _singular_values_and_right_vectors(centred)
        if singular.numel() == 0 or float(singular[0]) == 0.0:
            raise _coincident_means()
        # ratios, not squares: s^2 under- or overflows float64 long before s does
        relative = singular / singular[0]
        if rtol is None:
            keep = relative**2 > max(num_classes, dim) * FLOAT64_EPS
        else:
            keep = (relative > check_rtol(rtol)) & (singular > 0)
        if not bool(keep.any()):
            raise _coincident_means()
        if input_eps is not None and input_eps > FLOAT64_EPS:
            _warn_rounding_level(singular[keep], float(input_eps), means_norm, float(singular[0]))
        return cls(
            global_mean=global_mean,
            centred=centred,
            basis=right[keep].T.contiguous(),
            singular_values=singular[keep],
            scale=scale,
        )


class RoundingLevelWarning(UserWarning):
    """Some between-class directions are no larger than the input dtype's rounding."""


_DTYPE_NAMES = {
    float(torch.finfo(dtype).eps): str(dtype).removeprefix("torch.")
    for dtype in (torch.bfloat16, torch.float16, torch.float32)
}


def _warn_rounding_level(kept: torch.Tensor, eps: float, means_norm: float, largest: float):
    """Warn when kept singular values of the centred means sit at the rounding level."""
    level = eps * means_norm
    count = int((kept <= level).sum())
    if count == 0:
        return
    name = _DTYPE_NAMES.get(eps, f"eps = {eps:.3g}")
    suggested = float(f"{min(0.5, 2 * level / largest):.2g}")
    warnings.warn(
        f"{count} of the {kept.numel()} between-class directions have singular values at "
        f"the rounding level of {name} features (s_i <= eps ||means||_F = {level:.3g}, "
        f"largest {largest:.3g}); NC1 = Tr(Sigma_W Sigma_B^+)/K divides by them, so it "
        "follows the rounding of these numbers. Stable alternatives: nc1_trace_ratio "
        "(Tr Sigma_W / Tr Sigma_B) and the CDNV (cdnv_mean); or pass "
        f"rtol={suggested:g} to count those directions as zero",
        RoundingLevelWarning,
        stacklevel=4,
    )


def check_rtol(rtol: object) -> float:
    """The relative singular-value cut-off of the class means: a number in [0, 1)."""
    return check_float(
        "rtol",
        rtol,
        minimum=0.0,
        maximum=1.0,
        strict=(False, True),
        meaning="relative singular-value cut-off",
        hint="singular values of the centred class means at or below rtol times the "
        "largest count as zero; pass None for the default (float64's, as torch.linalg.pinv)",
    )


def _coincident_means() -> ValueError:
    return ValueError(
        "all class means coincide (between-class scatter Sigma_B = 0): NC metrics are "
        "undefined — are the features constant, or all zero?"
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

    Units: each chunk is divided by ``geometry.scale`` (1 except for extreme magnitudes, see
    :class:`MeanGeometry`), so ``within_ss`` is in units of ``scale^2``; ``projected_ss``
    and the counts do not depend on it. The classifier decides with ``W / t`` and
    ``b / (scale t)`` (``t`` the power of two for W's own range): the same argmax, without
    the overflow of ``h W^T`` at ~1e154 x 1e154.
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
        self.chunk_rows = check_chunk_rows(chunk_rows)
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
        self._inverse_scale = 1.0 / geometry.scale  # a power of two: exact
        self._logit_weights = self._logit_bias = None
        if self.weights is not None:
            self.weights = self.weights.to(device)
            self.bias = None if self.bias is None else self.bias.to(device)
            weight_scale = power_of_two_scale(peak_magnitude(self.weights))
            self._logit_weights, self._logit_bias = self.weights, self.bias
            if weight_scale != 1.0:
                self._logit_weights = self.weights * (1.0 / weight_scale)
            if self.bias is not None and weight_scale * geometry.scale != 1.0:
                # one factor at a time: 2^665 / 2^-500 as one number would overflow
                self._logit_bias = self.bias * self._inverse_scale / weight_scale
        if reference is not None and tuple(reference.centred.shape) != (num_classes, dim):
            raise ValueError(
                f"the reference means have shape {tuple(reference.centred.shape)} but the "
                f"measured data has (K, d) = ({num_classes}, {dim}); the reference must be "
                "statistics of the same classes in the same feature space"
            )
        if reference is not None:
            reference = reference.rescaled(geometry.scale)  # both in the same units
        self.reference = reference
        self._rule = None
        if nearest_centre:
            deciding = None if reference is None else _to_device(reference, device)
            self._rule = NearestCentreRule(geometry, deciding, tile_size)

    def rows_per_chunk(self, dim: int, device: torch.device | None = None) -> int:
        """Rows converted to float64 at a time (see :meth:`ClassStats.rows_per_chunk`)."""
        # the widest (rows x .) float64 block per chunk: the features, the logits or the
        # nearest-centre scores (K of them: they dominate when K >> d)
        widest = max(dim, self._scaled_basis.shape[1], self.num_classes)
        return self.chunk_rows or default_chunk_rows(widest, self.device)

    def update(self, features: ArrayLike, labels: ArrayLike, *, first_row: int = 0) -> CentredStats:
        """Add a batch (same data as pass 1, in any order or split).

        Values were checked for NaN/inf in pass 1; should a batch differ here, the
        non-finite within-class sums give it away at the end of the update.
        """
        return super().update(features, labels, first_row=first_row)

    def _fit_dimension(self, features: torch.Tensor) -> None:
        if features.shape[1] != self.geometry.centred.shape[1]:
            raise ValueError(
                f"features have dimension {features.shape[1]} but the class means have "
                f"{self.geometry.centred.shape[1]}"
            )

    def _accumulate(
        self, features: torch.Tensor, labels: torch.Tensor, first_row: int = 0
    ) -> CentredStats:
        """The within-class sums, counts and decisions of one batch, a chunk at a time."""
        self.counts += torch.bincount(labels, minlength=self.num_classes)
        rows = self.rows_per_chunk(features.shape[1], self.device)
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
            if self._inverse_scale != 1.0:
                chunk.mul_(self._inverse_scale)
            prediction = None
            if self._logit_weights is not None:
                logits = chunk @ self._logit_weights.T
                if self._logit_bias is not None:
                    logits += self._logit_bias
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
