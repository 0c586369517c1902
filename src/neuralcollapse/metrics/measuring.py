"""The front door: ``measure`` (arrays in memory) and ``measure_batches`` (a stream).

Both are the one-layer case of the measuring engine (:func:`~.engine.measure_layers`): two
passes over the data, :class:`~.stats.ClassStats` (class means) then
:class:`~.stats.CentredStats` (within-class statistics), and one definition of every metric
(:mod:`.collapse`) for every door.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuralcollapse.metrics.collapse import DEFAULT_UNIFORMITY_KERNELS, CollapseMetrics
from neuralcollapse.metrics.engine import LayerSpec, measure_layers
from neuralcollapse.metrics.pairwise import check_tile_size
from neuralcollapse.metrics.stats import ClassStats, check_device
from neuralcollapse.metrics.validation import (
    ArrayLike,
    BatchSource,
    CheckedBatch,
    check_batch,
    check_num_classes,
)


def measure(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    batch_size: int | None = None,
    nearest_centre: bool = True,
    ood_features: ArrayLike | ClassStats | None = None,
    reference: ClassStats | None = None,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    rtol: float | None = None,
) -> CollapseMetrics:
    """Neural-collapse metrics of ``features`` with ``labels`` (and a classifier).

    Parameters
    ----------
    features : (N, d) NumPy array or torch tensor, float16/32/64, on any device. Work
        happens on that device, in float64, a chunk of rows at a time.
    labels : (N,) integer class indices in [0, K).
    weights : (K, d) classifier, logits ``= features @ weights.T + bias``; optional.
    bias : (K,) optional.
    num_classes : K; default ``labels.max() + 1``. Every class in [0, K) needs at least one
        sample: a declared class with none is an error, not a silent NaN.
    batch_size : rows processed at a time (bounds the float64 working memory); default
        :func:`~neuralcollapse.metrics.stats.default_chunk_rows`: ~4 MB chunks on CPU (they
        stay in cache), ~128 MB on a GPU.
    nearest_centre : also evaluate the nearest-class-centre rule (``ncc_accuracy`` and NC4's
        ``ncc_mismatch``). It costs an extra O(N K min(d, K)) product, comparable to the
        rest when K is close to d; False skips it and leaves those keys None.
    ood_features : out-of-distribution features (N_ood, d), or a ClassStats accumulated
        over them; gives ``nc5`` (Ammar et al. 2024).
    reference : ClassStats of another set with the same K and d (typically the training
        features): its class means decide the nearest-class-centre rule, so ``ncc_accuracy``
        and ``ncc_mismatch`` on held-out data use the training means. Every other metric
        uses the measured data's own means.
    uniformity_kernels : which hyperspherical-uniformity kernels to compute (``gnc2_*``):
        any of ``"distance"``, ``"log"``, ``"riesz"`` (default all three).
    tile_size : side of the square tiles the K x K pairwise work is cut into (default
        1,024); memory is O(K d + tile_size^2) whatever K.
    rtol : relative cut-off on the singular values of the centred class means: directions
        with ``s_i <= rtol s_0`` count as zero in ``Sigma_B^+`` (as ``torch.linalg.pinv(M,
        rtol=rtol)``). Default None: float64's, the cut-off ``torch.linalg.pinv(Sigma_B)``
        applies, whatever the features' dtype, so every metric of float16/bfloat16/float32
        features is the metric of the same values in float64. Where some direction is at the
        input dtype's rounding level a :class:`~.stats.RoundingLevelWarning` says so and
        suggests a value (docs/metrics.md, "Low-precision features").

    Returns
    -------
    CollapseMetrics, with ``.to_dict()``; definitions in :mod:`neuralcollapse.metrics.collapse`
    and docs/metrics.md.

    References
    ----------
    Papyan, Han & Donoho, "Prevalence of neural collapse during the terminal phase of
    deep learning training", PNAS 2020.

    Examples
    --------
    >>> from neuralcollapse.geometry import simplex_etf
    >>> means = simplex_etf(4, 8)
    >>> result = measure(means.repeat(3, 1), torch.arange(4).repeat(3), weights=means)
    >>> result.nc1, round(result.etf_gap_means, 12), result.ncc_mismatch
    (0.0, 0.0, 0.0)
    """
    # checked once here; both passes take the checked tensors as they are (issue 13), and
    # the values are scanned for NaN/inf chunk by chunk inside the first pass
    batch = check_batch(features, labels, num_classes)
    # one batch: the statistics chunk it internally, and error messages keep global indices
    return measure_batches(
        batch,
        chunk_rows=batch_size,
        num_classes=batch.num_classes,
        weights=weights,
        bias=bias,
        nearest_centre=nearest_centre,
        ood_features=ood_features,
        reference=reference,
        uniformity_kernels=uniformity_kernels,
        tile_size=tile_size,
        rtol=rtol,
    )


def measure_batches(
    make_batches: BatchSource,
    *,
    num_classes: int,
    weights: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    distributed: bool = False,
    device: torch.device | str | None = None,
    nearest_centre: bool = True,
    chunk_rows: int | None = None,
    ood_features: ArrayLike | ClassStats | None = None,
    reference: ClassStats | None = None,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    class_stats: ClassStats | None = None,
    rtol: float | None = None,
) -> CollapseMetrics:
    """Neural-collapse metrics of a stream of ``(features, labels)`` batches.

    ``make_batches()`` is called twice and must yield the same samples both times (in
    any order or batching): pass 1 gathers the class means, pass 2 the within-class
    statistics around them. A DataLoader passed through a feature extractor fits:
    ``lambda: ((net.features(x), y) for x, y in loader)``.

    ``class_stats``: pass-1 statistics the caller has already accumulated over exactly
    these batches (e.g. kept as the reference of another split); pass 1 is then skipped
    and ``make_batches()`` is called once. The caller vouches that they come from the same
    samples; the second pass still checks that it saw the same per-class counts. They
    must be complete (already all-reduced under ``distributed=True``: they are not reduced
    again) and are left unchanged (the means are computed in a copy).

    With ``distributed=True`` (``torch.distributed`` initialised by the caller, e.g. under
    torchrun), each process streams only its shard and the sums are all-reduced after each
    pass, so every rank gets exactly the metrics of one process on all the data.

    ``device`` is where the statistics live (default: the first batch's device);
    ``nearest_centre`` as in :func:`measure`; ``chunk_rows`` bounds the float64 working
    memory (rows converted at a time; default automatic, see :func:`measure`);
    ``ood_features``, ``reference``, ``uniformity_kernels``, ``tile_size`` and ``rtol`` as in
    :func:`measure`.
    """
    # hyperparameters fail before any data is read (the engine checks the rest)
    tile_size = check_tile_size(tile_size)
    if reference is not None and not isinstance(reference, ClassStats):
        raise ValueError(
            f"reference must be a ClassStats of the reference data (e.g. the training "
            f"features); got {type(reference).__name__}"
        )
    if distributed and not (
        torch.distributed.is_available() and torch.distributed.is_initialized()
    ):
        raise ValueError(
            "distributed=True but torch.distributed is not initialised; call "
            "torch.distributed.init_process_group first (torchrun does the rendezvous)"
        )
    device = check_device(device)
    if class_stats is not None:
        _check_given_class_stats(class_stats, check_num_classes(num_classes), device)
    # a CheckedBatch passed the door's checks in measure(): the engine does not repeat them
    checked = isinstance(make_batches, CheckedBatch)

    def layer_stream():
        return (({_ONE: features}, labels) for features, labels in make_batches())

    result = measure_layers(
        layer_stream,
        {_ONE: LayerSpec(weights, bias, reference, ood_features, class_stats)},
        num_classes=num_classes,
        distributed=distributed,
        nearest_centre=nearest_centre,
        uniformity_kernels=uniformity_kernels,
        tile_size=tile_size,
        rtol=rtol,
        chunk_rows=chunk_rows,
        device=device,
        checked=checked,
        label_errors=False,
    )
    return result[_ONE]


#: the name of measure_batches' one layer in the engine
_ONE = "features"


def _check_given_class_stats(
    class_stats: ClassStats, num_classes: int, device: torch.device | None
) -> None:
    """Pass-1 statistics handed in by the caller must be ClassStats of these K classes."""
    if not isinstance(class_stats, ClassStats):
        raise ValueError(
            f"class_stats must be the ClassStats accumulated over the same batches (pass 1); "
            f"got {type(class_stats).__name__}"
        )
    if not class_stats.initialised:
        raise ValueError("class_stats has seen no data (pass 1 is empty); nothing to measure")
    if class_stats.num_classes != num_classes:
        raise ValueError(
            f"class_stats has K = {class_stats.num_classes} classes but num_classes = "
            f"{num_classes}; it must be the pass-1 statistics of the same batches"
        )
    held = class_stats.device
    if device is not None and (
        device.type != held.type or (device.index is not None and device.index != held.index)
    ):
        raise ValueError(
            f"class_stats live on {held} but device={str(device)!r} was asked for; the "
            "statistics are computed where the pass-1 sums are (move them, or drop device=)"
        )


__all__ = ["measure", "measure_batches"]
