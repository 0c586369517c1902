"""``measure_model``: neural collapse at named layers of any PyTorch model, in one call.

Two forward passes over the data, every layer at once: pass 1 accumulates each layer's
:class:`~neuralcollapse.metrics.ClassStats` (class counts and feature sums), pass 2 its
:class:`~neuralcollapse.metrics.CentredStats` around the class means (within-class
scatter, its projection on the span of the means, the nearest-class-centre counts) -- the
same two passes and the same definitions as :func:`neuralcollapse.metrics.measure`. No
feature matrix is ever held: memory above the model is O(K d) per layer, whatever N.
The cost is two evaluation passes; the alternative, one pass that stores every feature,
costs O(N d) memory per layer, which is what this design avoids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from tqdm.auto import tqdm

from neuralcollapse.integrations.capture import (
    BatchFn,
    LayerCapture,
    ModelBatch,
    iterate_batches,
    model_device_dtype,
    resolve_classifier,
    resolve_module,
    to_device,
)
from neuralcollapse.integrations.features import IGNORE_INDEX, first_tensor, label_layout
from neuralcollapse.metrics.collapse import (
    DEFAULT_UNIFORMITY_KERNELS,
    CollapseMetrics,
    compute_metrics,
)
from neuralcollapse.metrics.measuring import check_reference
from neuralcollapse.metrics.memory import check_untiled_memory
from neuralcollapse.metrics.stats import (
    CentredStats,
    ClassStats,
    MeanGeometry,
    check_rtol,
    default_chunk_rows,
)
from neuralcollapse.metrics.validation import check_num_classes
from neuralcollapse.progress import bar_disabled
from neuralcollapse.schema import PENULTIMATE

Data = Iterable | Callable[[], Iterable]


@dataclass
class ModelCollapse(Mapping):
    """The result of :func:`measure_model`: layer name -> CollapseMetrics, in model order.

    A layer whose metrics could not be computed (only with ``errors="record"``) maps to None
    and ``reasons[layer]`` says why. ``classes`` are the class indices measured (all of
    [0, K) unless ``empty_classes="drop"`` left some out); ``class_stats`` the pass-1
    statistics of each layer when ``keep_class_stats=True`` (the ``reference`` of a
    held-out measurement).
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


def _order_layers(model: nn.Module, layers: Sequence[str], classifier_name: str | None):
    """Layers in the order of ``model.named_modules()``; the penultimate input just before
    the classifier (so a depth profile reads input -> output)."""
    # by module, not by name: a wrapped model's names carry the wrapper's prefix
    position = {id(module): index for index, module in enumerate(model.modules())}

    def key(name: str) -> float:
        if name == PENULTIMATE:
            return position[id(resolve_module(model, classifier_name))] - 0.5
        return position[id(resolve_module(model, name))]

    return sorted(dict.fromkeys(layers), key=key)


def _check_data(data: Data) -> Callable[[], Iterable]:
    """A function that gives a fresh iterable per pass; one-shot iterators are refused."""
    if callable(data) and not hasattr(data, "__iter__"):
        return data
    if iter(data) is data:
        raise ValueError(
            "data is a one-shot iterator (a generator or iter(...)), but measuring takes two "
            "passes over the same samples: pass a DataLoader, a list of batches, or a function "
            "that returns a fresh iterator (lambda: iter(loader))"
        )
    return lambda: data


def _check_layers(
    model: nn.Module, layers: str | Sequence[str] | None, classifier: nn.Linear | None
) -> list[str]:
    if layers is None:
        if classifier is None:
            raise ValueError(
                "name the layers to measure (layers=['layer3', ...]) or give classifier= to "
                "measure its input, the penultimate features"
            )
        layers = [PENULTIMATE]
    if isinstance(layers, str):
        layers = [name.strip() for name in layers.split(",") if name.strip()]
    if not layers:
        raise ValueError("layers is empty; name at least one module (or 'penultimate')")
    if classifier is not None and PENULTIMATE not in layers:
        # classifier= asks for the classifier metrics, which live on its input (issue 21)
        layers = [*layers, PENULTIMATE]
    for name in layers:
        if name == PENULTIMATE:
            if classifier is None:
                raise ValueError(
                    "'penultimate' is the classifier's input: pass classifier= (the final "
                    "nn.Linear's name or the module) to measure it"
                )
            continue
        resolve_module(model, name)
    return list(layers)


class _LabelChecker:
    """Labels outside [0, K) other than the ignore index are an error that says so."""

    def __init__(self, num_classes: int, ignore_index: int) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index

    def __call__(self, labels: torch.Tensor, batch_index: int) -> None:
        if labels.is_floating_point():
            raise ValueError(
                f"labels must be integer class indices; batch {batch_index} has dtype "
                f"{labels.dtype}"
            )
        if labels.numel() == 0:
            return
        bad = (labels < 0) | (labels >= self.num_classes)
        if bool(bad.any()):
            value = int(labels[bad][0])
            raise ValueError(
                f"batch {batch_index} has label {value}, outside [0, {self.num_classes}) and not "
                f"the ignore index {self.ignore_index}: pass num_classes= (K), or mark positions "
                f"without a target with {self.ignore_index}"
            )


def _passes(
    capture: LayerCapture,
    data: Callable[[], Iterable],
    batch_fn: BatchFn | None,
    label_key: str,
    device: torch.device,
    dtype: torch.dtype | None,
    *,
    shift_labels: bool,
    ignore_index: int,
    check_labels: _LabelChecker,
    desc: str,
    progress: bool,
) -> Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]:
    """One pass: per batch, the (rows, d) features of each layer and their labels."""
    dims: dict[str, int] = {}
    batches = iterate_batches(data(), batch_fn, label_key)
    for index, batch in enumerate(
        tqdm(batches, desc=desc, disable=bar_disabled(progress), leave=False)
    ):
        moved = ModelBatch(
            to_device(batch.args, device, dtype),
            to_device(batch.kwargs, device, dtype),
            batch.labels.to(device),
            None if batch.attention_mask is None else batch.attention_mask.to(device),
        )
        layout = label_layout(
            moved.labels,
            attention_mask=moved.attention_mask,
            shift_labels=shift_labels,
            ignore_index=ignore_index,
        )
        labels = layout.kept_labels()
        check_labels(labels, index)
        features = capture.run(moved, layout.features)
        for name, matrix in features.items():
            if dims.setdefault(name, matrix.shape[1]) != matrix.shape[1]:
                raise ValueError(
                    f"layer {name!r} gave features of dimension {matrix.shape[1]} in batch "
                    f"{index} but {dims[name]} before: its output size must not depend on the "
                    "batch (variable-length sequences need per-token labels or pooling; pass "
                    "select= to reduce the output to a fixed size)"
                )
        yield features, labels


def _restrict(stats: ClassStats, present: torch.Tensor) -> ClassStats:
    """The statistics of the classes ``present`` only, renumbered 0..K'-1."""
    restricted = ClassStats(int(present.numel()), chunk_rows=stats.chunk_rows)
    restricted._allocate(stats.dim, stats.device)
    restricted.counts.copy_(stats.counts[present])
    restricted.sums.copy_(stats.sums[present])
    restricted.input_eps = stats.input_eps
    return restricted


def measure_model(
    model: nn.Module,
    data: Data,
    *,
    layers: str | Sequence[str] | None = None,
    classifier: str | nn.Module | None = None,
    num_classes: int | None = None,
    select: Callable[[object], torch.Tensor] | None = None,
    batch_fn: BatchFn | None = None,
    label_key: str = "labels",
    shift_labels: bool = False,
    ignore_index: int = IGNORE_INDEX,
    empty_classes: str = "error",
    reference: Mapping[str, ClassStats] | None = None,
    keep_class_stats: bool = False,
    distributed: bool | None = None,
    errors: str = "raise",
    nearest_centre: bool = True,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    rtol: float | None = None,
    progress: bool = False,
) -> ModelCollapse:
    """Neural-collapse metrics of named layers of ``model`` on ``data``.

    Parameters
    ----------
    model : any ``torch.nn.Module``. It is put in eval mode under ``torch.no_grad()`` for
        the two passes and restored to its previous mode afterwards; every hook is removed,
        also when a pass raises. Inputs go to the device (and floating dtype) of the model's
        parameters.
    data : a re-iterable of batches (a DataLoader, a list), or a function returning a fresh
        iterable; each batch ``(inputs, labels)`` or a dict with ``labels`` (Hugging Face
        style: the other entries are the model's keyword arguments). ``batch_fn`` turns any
        other batch into a :class:`~neuralcollapse.integrations.ModelBatch`.
    layers : ``model.named_modules()`` names (a list or a comma-separated string), and
        ``"penultimate"`` for the classifier's input. With ``classifier=`` the penultimate
        input is always measured too (it carries the classifier metrics), so
        ``layers=["layer3"], classifier="fc"`` gives ``"layer3"`` and ``"penultimate"``.
        Default: ``["penultimate"]``.
    classifier : the final ``nn.Linear`` (its name or the module). Its input, captured with
        a forward pre-hook, is the penultimate feature; its weight and bias give the
        classifier metrics (NC2 on weights, NC3, NC4) of that layer.
    num_classes : K; default the classifier's ``out_features``.
    select : maps a module's raw output to the feature tensor (default: the output itself,
        or the first tensor of a tuple / ModelOutput).
    shift_labels : next-token collapse for causal language models: the feature at position t
        is labelled with the token at t + 1. Set it when ``labels`` are Hugging Face's
        unshifted causal-LM labels (= ``input_ids``); leave it off for labels already aligned.
    ignore_index : token label meaning "no target" (dropped; Hugging Face's -100).
    empty_classes : ``"error"`` (every class in [0, K) needs a sample) or ``"drop"``: classes
        with no sample are left out of every metric and the classifier is restricted to the
        rows of the classes measured (a vocabulary where most tokens never occur).
    reference : ``{layer: ClassStats}`` of reference data (e.g. ``keep_class_stats=True`` on
        the training set): the nearest-class-centre rule (NCC accuracy, NC4) decides with
        those means, as in Papyan et al. for test data.
    keep_class_stats : return each layer's pass-1 statistics in ``result.class_stats``.
    distributed : all-reduce the statistics over ``torch.distributed`` (each process passes
        its own shard of the data; every rank gets the same result). Default: on when a
        process group with more than one process is initialised.
    errors : ``"raise"``, or ``"record"``: a layer whose metrics cannot be computed (e.g. all
        its class means coincide) maps to None with the reason in ``result.reasons``.
    nearest_centre, uniformity_kernels, tile_size, rtol : as in :func:`neuralcollapse.measure`
        (``rtol``: the class means' singular-value cut-off; the default is float64's whatever
        the model's dtype, so a bfloat16 model's metrics are those of its feature values).
    progress : a tqdm bar per pass.

    Returns
    -------
    :class:`ModelCollapse`: ``{layer: CollapseMetrics}`` in model order.

    Feature matrices (see :mod:`neuralcollapse.integrations.features`): conv maps averaged
    over space; sequence outputs mean-pooled over ``attention_mask`` for per-sample labels,
    flattened to tokens (dropping ``ignore_index`` and masked positions) for token labels.

    Examples
    --------
    >>> result = measure_model(net, loader, layers=["layer3"], classifier="fc")  # doctest: +SKIP
    >>> result["penultimate"].nc1, result["layer3"].etf_gap_means  # doctest: +SKIP

    References
    ----------
    Papyan, Han & Donoho, PNAS 2020 (the metrics); Wu & Papyan, NeurIPS 2024 (token-level,
    next-token collapse).
    """
    if empty_classes not in ("error", "drop"):
        raise ValueError(f"empty_classes must be 'error' or 'drop'; got {empty_classes!r}")
    if errors not in ("raise", "record"):
        raise ValueError(f"errors must be 'raise' or 'record'; got {errors!r}")
    rtol = None if rtol is None else check_rtol(rtol)
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    classifier_name, linear = (None, None)
    if classifier is not None:
        classifier_name, linear = resolve_classifier(model, classifier)
    names = _order_layers(model, _check_layers(model, layers, linear), classifier_name)
    if num_classes is None:
        if linear is None:
            raise ValueError("pass num_classes= (K): without a classifier it cannot be inferred")
        num_classes = linear.out_features
    num_classes = check_num_classes(num_classes)
    if linear is not None and linear.out_features != num_classes:
        raise ValueError(
            f"the classifier {classifier_name!r} has {linear.out_features} outputs but "
            f"num_classes={num_classes}; they must agree"
        )
    make_data = _check_data(data)
    if distributed is None:
        distributed = (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
    device, dtype = model_device_dtype(model)
    pass_options = dict(
        batch_fn=batch_fn,
        label_key=label_key,
        device=device,
        dtype=dtype,
        shift_labels=shift_labels,
        ignore_index=ignore_index,
        check_labels=_LabelChecker(num_classes, ignore_index),
        progress=progress,
    )

    # ---- pass 1: class counts and sums of every layer
    stats = {name: ClassStats(num_classes) for name in names}
    with LayerCapture(model, names, linear, select or first_tensor) as capture:
        for features, labels in _passes(capture, make_data, desc="pass 1/2", **pass_options):
            for name in names:
                stats[name].update(features[name], labels)
    if not stats[names[0]].initialised:
        raise ValueError("data yielded no batches (or no labelled positions); nothing to measure")
    if distributed:
        for layer_stats in stats.values():
            layer_stats.all_reduce()

    classes = None  # set when some classes are left out
    if empty_classes == "drop":
        present = torch.nonzero(stats[names[0]].counts > 0).flatten()
        if present.numel() < num_classes:
            if present.numel() < 2:
                raise ValueError(
                    f"only {present.numel()} class(es) have samples; collapse needs two or more"
                )
            classes = present
            stats = {name: _restrict(s, present) for name, s in stats.items()}
    measured_classes = num_classes if classes is None else int(classes.numel())

    # ---- between the passes: each layer's mean geometry and classifier
    measured = torch.arange(num_classes) if classes is None else classes.cpu()
    result = ModelCollapse({}, classes=measured)
    centred: dict[str, CentredStats] = {}
    pass_one_counts: dict[str, torch.Tensor] = {}
    for name in names:
        layer_stats = stats[name]
        layer_reference = None if reference is None else reference.get(name)
        try:
            if layer_reference is not None:
                _check_reference(layer_reference, measured_classes, layer_stats.dim, name)
            counts = layer_stats.counts.clone()
            if keep_class_stats:
                result.class_stats[name] = layer_stats
            means = layer_stats.means(overwrite=not keep_class_stats)
            weights = bias = None
            if name == PENULTIMATE:
                weights = linear.weight.detach()
                bias = None if linear.bias is None else linear.bias.detach()
                if classes is not None:
                    weights = weights[classes.to(weights.device)]
                    bias = None if bias is None else bias[classes.to(bias.device)]
            check_untiled_memory(
                measured_classes,
                layer_stats.dim,
                layer_stats.device,
                weights=weights is not None,
                reference=layer_reference is not None,
                chunk_rows=default_chunk_rows(max(layer_stats.dim, measured_classes)),
            )
            # the rank cut-off depends on the numbers, not their dtype (issue 21); the
            # input's epsilon only decides whether to warn about rounding-level directions
            geometry = MeanGeometry.from_means(
                means,
                overwrite=not keep_class_stats,
                rtol=rtol,
                input_eps=layer_stats.input_eps,
            )
            # CentredStats checks the classifier (shape and finiteness): its one door
            reference_geometry = None
            if layer_reference is not None:
                reference_geometry = MeanGeometry.from_means(
                    layer_reference.means(), overwrite=True, rtol=rtol
                )
            centred[name] = CentredStats(
                geometry,
                weights,
                bias,
                nearest_centre=nearest_centre,
                reference=reference_geometry,
                tile_size=tile_size,
            )
            pass_one_counts[name] = counts
        except ValueError as error:
            if errors == "raise":
                raise ValueError(f"layer {name!r}: {error}") from error
            result.reasons[name] = str(error)
    del stats

    # ---- pass 2: within-class statistics around the means
    to_measure = [name for name in names if name in centred]
    lookup = None
    if classes is not None:
        lookup = torch.full((num_classes,), -1, dtype=torch.int64, device=device)
        lookup[classes.to(device)] = torch.arange(classes.numel(), device=device)
    if to_measure:
        with LayerCapture(model, to_measure, linear, select or first_tensor) as capture:
            for features, labels in _passes(capture, make_data, desc="pass 2/2", **pass_options):
                if lookup is not None:
                    labels = lookup[labels]
                for name in to_measure:
                    centred[name].update(features[name], labels)
    for name in names:
        if name not in centred:
            result.metrics[name] = None
            continue
        layer = centred[name]
        if distributed:
            layer.all_reduce()
        expected = pass_one_counts[name]
        if not torch.equal(expected, layer.counts.to(expected.device)):
            raise ValueError(
                "the two passes over data saw different samples (per-class counts differ): it "
                "must yield the same samples on every iteration (a shuffling loader is fine; a "
                "loader that drops or augments at random is not)"
            )
        try:
            result.metrics[name] = compute_metrics(
                None, layer, uniformity_kernels=uniformity_kernels, tile_size=tile_size
            )
        except ValueError as error:
            if errors == "raise":
                raise ValueError(f"layer {name!r}: {error}") from error
            result.metrics[name] = None
            result.reasons[name] = str(error)
    return result


def _check_reference(reference: ClassStats, num_classes: int, dim: int, layer: str) -> None:
    """A layer's reference: a ClassStats of the same classes and dimension (the K and d
    check is the metrics engine's own)."""
    if not isinstance(reference, ClassStats):
        raise ValueError(
            f"reference[{layer!r}] must be a ClassStats (e.g. from keep_class_stats=True on the "
            f"training data); got {type(reference).__name__}"
        )
    check_reference(reference, num_classes, dim)
