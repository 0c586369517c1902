"""The measuring engine: neural collapse of several layers from one stream, in two passes.

Every measurement of the package goes through :func:`measure_layers` (``measure_batches``
is its one-layer case; ``measure_model``, ``probe``, the tracker, both callbacks and the
training loop feed it the layers they capture):

- pass 1 accumulates each layer's :class:`~.stats.ClassStats` (class counts and sums);
- between the passes each layer's class means are centred and factorised
  (:class:`~.stats.MeanGeometry`), with the layer's classifier, reference and OOD features;
- pass 2 accumulates each layer's :class:`~.stats.CentredStats` (within-class scatter and
  its projection, nearest-class-centre and classifier decisions);
- :func:`~.collapse.checked_metrics` turns each layer's statistics into CollapseMetrics.

No feature matrix is held: memory is O(K d) per layer plus one chunk of rows, whatever N.
The stream's batches are cut at the statistics' own chunk boundaries
(:class:`_AlignedFeed`), so a stream of any batch size gives exactly (bitwise) the numbers
of the same rows passed as one tensor.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from neuralcollapse.metrics.collapse import (
    DEFAULT_UNIFORMITY_KERNELS,
    CollapseMetrics,
    checked_metrics,
)
from neuralcollapse.metrics.memory import check_untiled_memory
from neuralcollapse.metrics.ood import check_ood_dimension
from neuralcollapse.metrics.pairwise import check_tile_size, check_uniformity_kernels
from neuralcollapse.metrics.stats import (
    CentredStats,
    ClassStats,
    MeanGeometry,
    check_rtol,
    default_chunk_rows,
)
from neuralcollapse.metrics.validation import (
    ArrayLike,
    check_features,
    check_labels,
    check_num_classes,
)

#: one batch of a multi-layer stream: each layer's (rows, d) features, and the rows' labels
LayerBatch = tuple[Mapping[str, torch.Tensor], torch.Tensor]
LayerStream = Callable[[], Iterable[LayerBatch]]


@dataclass
class LayerSpec:
    """What one layer is measured with, besides its features.

    weights, bias : the (K, d) classifier and (K,) bias acting on these features (the
        classifier metrics NC2-W, NC3, NC4); None for a layer without one.
    reference : ClassStats of reference data (the training split): the nearest-class-centre
        rule (NCC accuracy, NC4) decides with its means.
    ood_features : out-of-distribution features of this layer, for NC5.
    class_stats : pass-1 statistics already accumulated over exactly these samples (pass 1
        is then skipped for this layer; they are left unchanged).
    """

    weights: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    reference: ClassStats | None = None
    ood_features: ArrayLike | ClassStats | None = None
    class_stats: ClassStats | None = None


@dataclass
class LayerResults(Mapping):
    """Layer name -> CollapseMetrics (in the order the layers were given).

    A layer whose metrics could not be computed (only with ``errors="record"``) maps to None
    and ``reasons[layer]`` says why. ``classes`` are the class indices measured (all of
    [0, K) unless ``empty_classes="drop"`` left some out); ``class_stats`` each layer's
    pass-1 statistics when ``keep_class_stats=True`` (the ``reference`` of a held-out split).
    """

    metrics: dict[str, CollapseMetrics | None]
    reasons: dict[str, str] = field(default_factory=dict)
    classes: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.int64))
    class_stats: dict[str, ClassStats] = field(default_factory=dict)

    def __getitem__(self, layer: str) -> CollapseMetrics | None:
        return self.metrics[layer]

    def __iter__(self) -> Iterator[str]:
        return iter(self.metrics)

    def __len__(self) -> int:
        return len(self.metrics)

    def to_dict(self) -> dict[str, dict[str, Any] | None]:
        """``{layer: metrics.to_dict() or None}`` (write it with ``schema.dumps``)."""
        return {k: None if v is None else v.to_dict() for k, v in self.metrics.items()}


class _ChunkCutter:
    """Cut a stream of ``(features, labels)`` batches where one tensor of all its rows would be
    cut into chunks of ``rows``.

    The float64 statistics convert ``rows`` rows at a time and sum them. The last batch is
    held until the next arrives; then the rows that fill whole chunks go on and the rest
    waits. A consumer that chunks each piece it is given then sees the stream cut exactly
    where it would cut one tensor of all the rows, so its sums (and every metric) are
    bitwise those of that tensor, with at most one chunk plus one batch held. A stream of
    one batch goes on whole. Pieces come as ``(features, labels, first_row)``.
    """

    def __init__(self, rows_for: Callable[[torch.Tensor], int]) -> None:
        self.rows_for = rows_for
        self.rows: int | None = None
        self.features: list[torch.Tensor] = []
        self.labels: list[torch.Tensor] = []
        self.pending = 0
        self.offset = 0  # rows already passed on: a piece's first row in the stream

    def add(self, features: torch.Tensor, labels: torch.Tensor) -> list[tuple]:
        if self.rows is None:
            self.rows = self.rows_for(features)
        self.features.append(features)
        self.labels.append(labels)
        self.pending += features.shape[0]
        if len(self.features) > 1:  # the stream goes on: pass on the whole chunks held
            whole = self.pending // self.rows * self.rows
            if whole:
                return [self._take(whole)]
        return []

    def flush(self) -> list[tuple]:
        return [self._take(self.pending)] if self.pending else []

    def _take(self, count: int) -> tuple[torch.Tensor, torch.Tensor, int]:
        """The first ``count`` rows held, with their first row's index in the stream."""
        features = self.features[0] if len(self.features) == 1 else torch.cat(self.features)
        labels = self.labels[0] if len(self.labels) == 1 else torch.cat(self.labels)
        rest, first = self.pending - count, self.offset
        self.features = [features[count:]] if rest else []
        self.labels = [labels[count:]] if rest else []
        self.pending, self.offset = rest, self.offset + count
        return features[:count], labels[:count], first


def aligned_batches(
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    rows_for: Callable[[torch.Tensor], int] | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``batches`` cut as :class:`_ChunkCutter` does, for a consumer that chunks each batch
    with ``rows_for(features)`` rows (default the statistics' own,
    :func:`~.stats.default_chunk_rows`): it then sums them as it would one tensor."""
    rows_for = rows_for or (lambda features: default_chunk_rows(features.shape[1], features.device))
    cutter = _ChunkCutter(rows_for)
    for features, labels in batches:
        for piece, piece_labels, _ in cutter.add(features, labels):
            yield piece, piece_labels
    for piece, piece_labels, _ in cutter.flush():
        yield piece, piece_labels


class _AlignedFeed:
    """Feed a statistic a stream of batches at the statistic's own chunk boundaries
    (:class:`_ChunkCutter`), each batch checked once as it arrives.

    ``checked``: the batches passed the door's checks already (a CheckedBatch).
    """

    def __init__(self, stats: ClassStats | CentredStats, checked: bool = False) -> None:
        self.stats = stats
        self.checked = checked
        self.cutter = _ChunkCutter(
            lambda features: stats.rows_per_chunk(features.shape[-1], features.device)
        )

    def add(self, features: ArrayLike, labels: ArrayLike) -> None:
        if not self.checked:  # each batch checked once, as it arrives (issue 13)
            features = check_features(features, check_values=False)
            self.stats._fit_dimension(features)  # a batch of another d is named here
            labels = check_labels(labels, features.shape[0], self.stats.num_classes, None)
        self._update(self.cutter.add(features, labels))

    def flush(self) -> None:
        self._update(self.cutter.flush())

    def _update(self, pieces: list[tuple]) -> None:
        for features, labels, first_row in pieces:
            self.stats._update_checked(features, labels, first_row)


def _check_options(
    num_classes: int,
    empty_classes: str,
    errors: str,
    uniformity_kernels: Sequence[str],
    tile_size: int | None,
    rtol: float | None,
):
    if empty_classes not in ("error", "drop"):
        raise ValueError(f"empty_classes must be 'error' or 'drop'; got {empty_classes!r}")
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}")
    return (
        check_num_classes(num_classes),
        check_uniformity_kernels(uniformity_kernels),
        check_tile_size(tile_size),
        None if rtol is None else check_rtol(rtol),
    )


def _check_reference(reference: ClassStats, num_classes: int, dim: int) -> None:
    """The reference statistics must describe the same classes in the same feature space."""
    if not isinstance(reference, ClassStats):
        raise ValueError(
            "reference must be the ClassStats of the reference data (e.g. kept with "
            f"keep_class_stats=True on the training split); got {type(reference).__name__}"
        )
    reference._require_data()
    if reference.num_classes != num_classes or reference.dim != dim:
        raise ValueError(
            f"the reference statistics have K = {reference.num_classes} classes in "
            f"d = {reference.dim} dimensions but the measured data has K = {num_classes}, "
            f"d = {dim}; the reference must come from the same classes and the same layer"
        )


class _Failures:
    """Per-layer errors: raised at once (``errors="raise"``) or recorded with the reason."""

    def __init__(self, errors: str, label: bool) -> None:
        self.record = errors == "record"
        self.label = label
        self.reasons: dict[str, str] = {}

    def __call__(self, name: str, error: ValueError) -> None:
        if not self.record:
            if self.label:
                raise ValueError(f"layer {name!r}: {error}") from error
            raise error
        self.reasons.setdefault(name, str(error))


def measure_layers(
    make_batches: LayerStream,
    layers: Mapping[str, LayerSpec] | Sequence[str],
    *,
    num_classes: int,
    empty_classes: str = "error",
    errors: str = "raise",
    distributed: bool = False,
    keep_class_stats: bool = False,
    nearest_centre: bool = True,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    rtol: float | None = None,
    chunk_rows: int | None = None,
    device: torch.device | str | None = None,
    checked: bool = False,
    label_errors: bool = True,
) -> LayerResults:
    """Neural-collapse metrics of every layer of a multi-layer stream.

    Parameters
    ----------
    make_batches : called once per pass (twice, or once when every layer has its pass-1
        ``class_stats``); yields ``({layer: (rows, d) features}, (rows,) labels)`` with the
        same samples, in the same order, on each call. Labels are class indices in [0, K).
    layers : layer name -> :class:`LayerSpec` (or just the names: no classifier).
    num_classes : K.
    empty_classes : ``"error"`` (every class needs a sample) or ``"drop"``: classes without
        samples are left out of every metric and each classifier is restricted to the rows
        of the classes measured.
    errors : ``"raise"``, or ``"record"``: a layer that cannot be measured (its class means
        coincide, its features are not finite) maps to None with the reason.
    distributed : every process streams its shard; the sums are all-reduced after each pass.
    keep_class_stats : return each layer's pass-1 statistics.
    nearest_centre, uniformity_kernels, tile_size, rtol : as in :func:`~.measuring.measure`.
    chunk_rows : rows converted to float64 at a time (default automatic); device: where the
        statistics live (default: the first batch's device).
    checked : the batches passed :func:`~.validation.check_batch` already (not checked again).
    label_errors : prefix a raised error with the layer's name.

    Returns
    -------
    :class:`LayerResults`.
    """
    num_classes, kernels, tile_size, rtol = _check_options(
        num_classes, empty_classes, errors, uniformity_kernels, tile_size, rtol
    )
    specs = (
        {name: LayerSpec() for name in layers} if not isinstance(layers, Mapping) else dict(layers)
    )
    if not specs:
        raise ValueError("no layer to measure: name at least one")
    failures = _Failures(errors, label_errors)

    # ---- pass 1: class counts and sums of every layer without given statistics
    stats = {name: spec.class_stats for name, spec in specs.items()}
    fresh = [name for name, given in stats.items() if given is None]
    if fresh:
        for name in fresh:
            stats[name] = ClassStats(num_classes, device=device, chunk_rows=chunk_rows)
        _stream_pass(make_batches, {name: stats[name] for name in fresh}, failures, checked)
        if not failures.reasons and not any(stats[name].initialised for name in fresh):
            raise ValueError(
                "the data yielded no batches (or no labelled rows); nothing to measure"
            )
        if distributed:
            for name in fresh:
                if name not in failures.reasons:
                    stats[name].all_reduce()
    classes = _present_classes(stats, failures, num_classes, empty_classes)
    measured_classes = num_classes if classes is None else int(classes.numel())
    result = LayerResults(
        {}, classes=torch.arange(num_classes) if classes is None else classes.cpu()
    )

    # ---- between the passes: each layer's mean geometry, classifier and reference
    centred: dict[str, CentredStats] = {}
    counts: dict[str, torch.Tensor] = {}
    oods: dict[str, Any] = {}
    for name, spec in specs.items():
        if name in failures.reasons:
            continue
        try:
            layer_stats = stats[name]
            if classes is not None:
                layer_stats = layer_stats.restricted(classes)
            if keep_class_stats:
                result.class_stats[name] = layer_stats
            centred[name], counts[name], oods[name] = _between_passes(
                layer_stats,
                spec,
                classes,
                measured_classes,
                owned=spec.class_stats is None and not keep_class_stats and classes is None,
                nearest_centre=nearest_centre,
                tile_size=tile_size,
                rtol=rtol,
                chunk_rows=chunk_rows,
            )
        except ValueError as error:
            failures(name, error)
    del stats

    # ---- pass 2: within-class statistics around the means
    if centred:
        lookup = None
        if classes is not None:
            lookup = torch.full((num_classes,), -1, dtype=torch.int64)
            lookup[classes.cpu()] = torch.arange(classes.numel())
        _stream_pass(make_batches, centred, failures, checked, lookup)
    for name in specs:
        if name not in centred or name in failures.reasons:
            result.metrics[name] = None
            continue
        layer = centred[name]
        if distributed:
            layer.all_reduce()
        # the stream's fault, not the layer's: raised whatever ``errors`` says
        _check_same_samples(counts[name], layer)
        try:
            result.metrics[name] = checked_metrics(
                layer.geometry,
                layer.counts,
                layer.weights,
                layer.bias,
                layer,
                ood_features=oods[name],
                kernels=kernels,
                tile_size=tile_size,
            )
        except ValueError as error:
            failures(name, error)
            result.metrics[name] = None
    result.reasons = {name: failures.reasons[name] for name in specs if name in failures.reasons}
    return result


def _stream_pass(
    make_batches: LayerStream,
    targets: Mapping[str, ClassStats | CentredStats],
    failures: _Failures,
    checked: bool = False,
    lookup: torch.Tensor | None = None,
) -> None:
    """One pass over the stream, each layer's rows fed to its statistics at aligned cuts."""
    feeds = {name: _AlignedFeed(target, checked) for name, target in targets.items()}
    for features, labels in make_batches():
        if lookup is not None:
            labels = lookup.to(labels.device)[labels]
        for name, feed in feeds.items():
            if name in failures.reasons:
                continue
            if name not in features:
                raise ValueError(
                    f"the stream gave no features of layer {name!r} (it gave "
                    f"{', '.join(map(repr, features)) or 'none'})"
                )
            try:
                feed.add(features[name], labels)
            except ValueError as error:
                failures(name, error)
    for name, feed in feeds.items():
        if name not in failures.reasons:
            try:
                feed.flush()
            except ValueError as error:
                failures(name, error)


def _present_classes(
    stats: Mapping[str, ClassStats],
    failures: _Failures,
    num_classes: int,
    empty_classes: str,
) -> torch.Tensor | None:
    """With ``empty_classes="drop"``, the classes that have samples (None: all of them)."""
    if empty_classes != "drop":
        return None
    counted = next(
        (s for name, s in stats.items() if name not in failures.reasons and s.initialised), None
    )
    if counted is None:
        return None
    present = torch.nonzero(counted.counts > 0).flatten()
    if present.numel() == num_classes:
        return None
    if present.numel() < 2:
        raise ValueError(
            f"only {present.numel()} class(es) have samples; collapse needs two or more"
        )
    return present


def _between_passes(
    layer_stats: ClassStats,
    spec: LayerSpec,
    classes: torch.Tensor | None,
    measured_classes: int,
    *,
    owned: bool,
    nearest_centre: bool,
    tile_size: int,
    rtol: float | None,
    chunk_rows: int | None,
) -> tuple[CentredStats, torch.Tensor, Any]:
    """A layer's pass-2 statistics (empty) around its class means, its pass-1 counts and
    its checked OOD features (all checked before pass 2 reads any data)."""
    reference = spec.reference
    if reference is not None:
        _check_reference(reference, measured_classes, layer_stats.dim)
    ood = None
    if spec.ood_features is not None:  # features of another layer fail before pass 2
        ood = check_ood_dimension(spec.ood_features, layer_stats.dim)
    counts = layer_stats.counts.clone()
    weights, bias = spec.weights, spec.bias
    if classes is not None and weights is not None:
        weights = weights[classes.to(weights.device)]
        bias = None if bias is None else bias[classes.to(bias.device)]
    check_untiled_memory(
        measured_classes,
        layer_stats.dim,
        layer_stats.device,
        weights=weights is not None,
        reference=reference is not None,
        chunk_rows=chunk_rows or default_chunk_rows(max(layer_stats.dim, measured_classes)),
    )
    # statistics this call owns become the centred means in place (one K x d array instead
    # of three at a vocabulary of classes); anyone else's are copied
    means = layer_stats.means(overwrite=owned)
    # the rank cut-off depends on the numbers, not their dtype (issue 21); the input's
    # epsilon only decides whether to warn about rounding-level directions
    geometry = MeanGeometry.from_means(
        means, overwrite=True, rtol=rtol, input_eps=layer_stats.input_eps
    )
    reference_geometry = None
    if reference is not None:
        reference_geometry = MeanGeometry.from_means(
            reference.means(),
            overwrite=True,
            rtol=rtol,
            scale=geometry.scale,  # the NCC rule compares both sets' means: one unit
        )
    # CentredStats checks the classifier (shape and finiteness): its one door
    centred = CentredStats(
        geometry,
        weights,
        bias,
        nearest_centre=nearest_centre,
        chunk_rows=chunk_rows,
        reference=reference_geometry,
        tile_size=tile_size,
    )
    return centred, counts, ood


def _check_same_samples(counts: torch.Tensor, centred_stats: CentredStats) -> None:
    """Both passes must see the same samples; a one-shot generator is the usual culprit."""
    if not torch.equal(counts, centred_stats.counts.to(counts.device)):
        first, second = int(counts.sum()), int(centred_stats.counts.sum())
        raise ValueError(
            f"the two passes over the data saw different samples ({first} then {second}; "
            "per-class counts differ): it must return a fresh iterable over the same samples "
            "on each pass (a shuffling loader is fine; one that drops or augments at random "
            "is not; pass a function such as lambda: iter(loader), not a generator object)"
        )


__all__ = ["LayerResults", "LayerSpec", "aligned_batches", "measure_layers"]
