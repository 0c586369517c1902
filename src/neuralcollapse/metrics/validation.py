"""Input checks done once, at the door, with messages that name the argument and the fix.

Everything downstream may assume: features are a finite 2-D float tensor, labels a 1-D
int64 tensor of the same length on the same device with values in [0, K), weights
(K, d) and bias (K,) finite.

Once means once per call (issue 13): an array entry point (``measure``,
``separation_fuzziness``, ``feature_statistics``) checks its arrays with :func:`check_batch`
and hands the stream path a :class:`CheckedBatch`, which the statistics take as it is;
a stream (``measure_batches``) has each batch checked where it enters the statistics
(``ClassStats.update``), and the classifier is checked where it is converted
(``CentredStats``, or ``compute_metrics`` without pass-2 statistics).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from neuralcollapse.checks import check_int

ArrayLike = Any  # numpy.ndarray | torch.Tensor | nested sequences

#: ``make_batches``: called once per pass, returns a fresh iterable of (features, labels)
BatchSource = Callable[[], Iterable[tuple[ArrayLike, ArrayLike]]]


def as_tensor(value: ArrayLike, name: str) -> torch.Tensor:
    """Wrap NumPy arrays and sequences as tensors without copying where possible."""
    if isinstance(value, torch.Tensor):
        return value
    try:
        return torch.from_numpy(np.asarray(value))
    except (TypeError, ValueError) as error:
        raise ValueError(
            f"{name} must be a numeric NumPy array or torch tensor; got "
            f"{type(value).__name__} ({error})"
        ) from error


#: what to do about NaN/inf rows of a data array, and of a classifier's parameters
FIX_SAMPLES = (
    "remove or fix those samples (a diverged network or a bad feature hook is the usual cause)"
)
FIX_CLASSIFIER = (
    "the classifier's parameters are not finite: the network diverged (lower the learning "
    "rate) or the wrong tensor was passed as the classifier"
)


def check_finite(
    tensor: torch.Tensor,
    name: str,
    *,
    offset: int = 0,
    scope: str = "",
    fix: str = FIX_SAMPLES,
) -> None:
    """Raise if ``tensor`` holds NaN or inf, naming the first bad row.

    One float64 sum decides the common case: any NaN or inf makes it non-finite, and finite
    float16/32/64 values cannot overflow a float64 sum of any realistic size.
    ``torch.isfinite`` on the whole tensor would allocate temporaries as large as the
    tensor (a 20,000 x 768 float64 classifier briefly took 160 MB more), so it only runs
    when the sum is not finite, to name the bad row. ``offset`` is added to the reported
    index and ``scope`` to the count (for chunks of a larger array); ``fix`` says what to do.
    """
    if tensor.numel() == 0:
        return
    total = tensor.sum(dtype=torch.float64) if tensor.is_floating_point() else tensor.sum()
    if bool(torch.isfinite(total)):
        return
    finite = torch.isfinite(tensor)
    if not bool(finite.all()):
        bad = (~finite).reshape(finite.shape[0], -1).any(dim=1) if finite.ndim > 0 else finite
        first = int(torch.nonzero(bad)[0, 0]) if finite.ndim > 0 else 0
        count = int(bad.sum()) if finite.ndim > 0 else 1
        raise ValueError(
            f"{name} contains NaN or inf ({count} row(s){scope}, first at index "
            f"{first + offset}); {fix}"
        )


def check_features(
    features: ArrayLike, name: str = "features", *, check_values: bool = True
) -> torch.Tensor:
    """A finite (N, d) floating tensor; integer inputs are promoted to float64.

    ``check_values=False`` skips the NaN/inf scan, for callers that detect non-finite
    values more cheaply on the fly (see :func:`check_finite_chunk`).
    """
    tensor = as_tensor(features, name)
    if tensor.ndim != 2:
        raise ValueError(
            f"{name} must be a 2-D array of shape (num_samples, dim); got shape "
            f"{tuple(tensor.shape)} — flatten per-sample features first, e.g. x.reshape(len(x), -1)"
        )
    if tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {tuple(tensor.shape)}); nothing to measure")
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must be real numbers; got dtype {tensor.dtype}")
    if not tensor.is_floating_point():
        tensor = tensor.to(torch.float64)
    # features straight from a network may carry the autograd graph: the metrics need no
    # gradients, and in-place work on such a tensor is an error (issue 16); no copy is made
    tensor = tensor.detach()
    if check_values:
        check_finite(tensor, name)
    return tensor


def input_epsilon(features: torch.Tensor) -> float:
    """Machine epsilon of the features' dtype (float64's for integers, which are exact)."""
    if features.is_floating_point():
        return float(torch.finfo(features.dtype).eps)
    return float(torch.finfo(torch.float64).eps)


def check_finite_chunk(chunk: torch.Tensor, name: str = "features", offset: int = 0) -> None:
    """:func:`check_finite` of one chunk of a batch; ``offset`` is the chunk's first row."""
    check_finite(chunk, name, offset=offset, scope=" in this batch")


def check_labels(
    labels: ArrayLike, num_samples: int, num_classes: int | None, device: torch.device
) -> torch.Tensor:
    """A 1-D int64 tensor of length ``num_samples`` with values in [0, num_classes)."""
    tensor = as_tensor(labels, "labels")
    if tensor.ndim != 1:
        raise ValueError(
            f"labels must be a 1-D array of class indices; got shape {tuple(tensor.shape)} "
            "(one-hot labels? pass labels.argmax(1))"
        )
    if tensor.shape[0] != num_samples:
        raise ValueError(
            f"labels has {tensor.shape[0]} entries but features has {num_samples} rows; "
            "they must match one to one"
        )
    if tensor.is_floating_point():
        finite = torch.isfinite(tensor)
        if not bool(finite.all()):
            index = int(torch.nonzero(~finite)[0, 0])
            raise ValueError(
                f"labels must be integer class indices; got {float(tensor[index])} at index "
                f"{index} — labels (not features) contain NaN or inf"
            )
        if not bool((tensor == tensor.round()).all()):
            raise ValueError("labels must be integer class indices; got non-integer values")
        tensor = tensor.round()
    elif tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"labels must be integer class indices; got dtype {tensor.dtype}")
    tensor = tensor.to(device=device, dtype=torch.int64)
    if num_samples == 0:
        return tensor
    low, high = int(tensor.min()), int(tensor.max())
    if low < 0:
        index = int(torch.nonzero(tensor < 0)[0, 0])
        raise ValueError(
            f"labels must be >= 0; got {low} at index {index} — remap the classes to 0..K-1"
        )
    if num_classes is not None and high >= num_classes:
        index = int(torch.nonzero(tensor >= num_classes)[0, 0])
        raise ValueError(
            f"labels must lie in [0, {num_classes}); got {int(tensor[index])} at index {index} "
            f"— pass num_classes={high + 1}?"
        )
    return tensor


def check_num_classes(num_classes: int) -> int:
    """An int >= 2: neural collapse compares classes, so one class has nothing to measure."""
    num_classes = check_int("num_classes", num_classes)
    if num_classes < 2:
        raise ValueError(
            f"neural collapse needs at least 2 classes; got num_classes={int(num_classes)}"
        )
    return int(num_classes)


def check_classifier(
    weights: ArrayLike | None, bias: ArrayLike | None, num_classes: int, dim: int
) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Classifier ``W`` of shape (K, d) (logits = h W^T + b) and bias (K,), both float64."""
    if weights is None:
        if bias is not None:
            raise ValueError("bias was given without weights; pass weights=W too")
        return None, None
    w = as_tensor(weights, "weights")
    if w.ndim != 2 or tuple(w.shape) != (num_classes, dim):
        hint = " (transposed? pass W.T)" if tuple(w.shape) == (dim, num_classes) else ""
        raise ValueError(
            f"weights must have shape (num_classes, dim) = ({num_classes}, {dim}); "
            f"got {tuple(w.shape)}{hint}"
        )
    w = w.detach().to(torch.float64)  # metrics never need gradients
    check_finite(w, "weights", fix=FIX_CLASSIFIER)
    if not bool(w.any()):
        raise ValueError("weights are all zero: the classifier geometry is undefined")
    b = None
    if bias is not None:
        b = as_tensor(bias, "bias").detach().to(torch.float64)
        if b.ndim != 1 or b.shape[0] != num_classes:
            raise ValueError(
                f"bias must have shape (num_classes,) = ({num_classes},); got {tuple(b.shape)}"
            )
        check_finite(b.unsqueeze(1), "bias", fix=FIX_CLASSIFIER)
    return w, b


@dataclass(frozen=True, eq=False)
class CheckedBatch:
    """In-memory data as a one-batch source whose tensors have passed the door's checks.

    ``batch()`` yields the one ``(features, labels)`` pair, so it serves wherever a
    :data:`BatchSource` does; the statistics recognise it and skip the checks its tensors
    already passed (``ClassStats.update_from``, ``CentredStats.update_from``,
    :func:`checked_batches`). Build it with :func:`check_batch`, nothing else: the type is
    the record that the checks ran.
    """

    features: torch.Tensor  # (N, d) floating, detached; NaN/inf are caught chunk by chunk
    labels: torch.Tensor  # (N,) int64 on the features' device, values in [0, num_classes)
    num_classes: int

    def __call__(self) -> list[tuple[torch.Tensor, torch.Tensor]]:
        return [(self.features, self.labels)]

    def fits(self, num_classes: int) -> bool:
        """Whether the labels, checked against ``self.num_classes``, are valid for K classes
        too (any other K and the batch is checked again, for the message)."""
        return self.num_classes <= num_classes


def check_batch(
    features: ArrayLike, labels: ArrayLike, num_classes: int | None = None
) -> CheckedBatch:
    """``features`` (N, d) and ``labels`` (N,) checked once, as one batch for the stream path.

    The shared preamble of the array entry points (``measure``, ``separation_fuzziness``,
    ``feature_statistics`` and through it ``mse_decomposition`` and ``OODScorer.fit``):
    :func:`check_features` (shape and dtype; the values are scanned for NaN/inf chunk by
    chunk in pass 1, which reads them anyway), ``K = num_classes`` or ``max(labels) + 1``,
    :func:`check_num_classes` and :func:`check_labels`, which runs once: with K inferred
    from the labels, their upper bound holds by construction.
    """
    features = check_features(features, check_values=False)
    if num_classes is None:
        labels, num_classes = _labels_and_inferred_classes(labels, features)
        num_classes = check_num_classes(num_classes)
    else:
        num_classes = check_num_classes(num_classes)
        labels = check_labels(labels, features.shape[0], num_classes, features.device)
    return CheckedBatch(features, labels, num_classes)


def _labels_and_inferred_classes(
    labels: ArrayLike, features: torch.Tensor
) -> tuple[torch.Tensor, int]:
    """Checked labels and ``K = max(labels) + 1``, refused when K exceeds the sample count."""
    tensor = as_tensor(labels, "labels")
    if tensor.numel() == 0:
        raise ValueError("labels is empty; nothing to measure")
    # the values first: max() of labels with NaN fails as "cannot convert float NaN"
    tensor = check_labels(tensor, features.shape[0], None, features.device)
    num_classes = int(tensor.max()) + 1
    if num_classes > tensor.shape[0]:
        # more classes than samples means empty classes, an error anyway: say so now,
        # before allocating K x d sums (a stray label 2**40 asked for 8.8 TB)
        raise ValueError(
            f"the largest label is {num_classes - 1}, so K = {num_classes:,} classes would "
            f"be inferred from only {tensor.shape[0]:,} samples (every class needs "
            "one); remap the labels to 0..K-1, or pass num_classes"
        )
    return tensor, num_classes


def checked_batches(
    make_batches: BatchSource, num_classes: int, device: torch.device
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """The batches of ``make_batches()`` as checked tensors, the labels on ``device``.

    A :class:`CheckedBatch` yields its tensors as they are (checked at the door); any other
    source has each batch through :func:`check_features` (no value scan: pass 1 did it) and
    :func:`check_labels` as it arrives. For the passes that loop over batches themselves.
    """
    if isinstance(make_batches, CheckedBatch) and make_batches.fits(num_classes):
        yield make_batches.features, make_batches.labels.to(device)
        return
    for features, labels in make_batches():
        tensor = check_features(features, check_values=False)
        yield tensor, check_labels(labels, tensor.shape[0], num_classes, device)
