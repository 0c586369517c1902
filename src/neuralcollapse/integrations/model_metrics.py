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

import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import torch
from torch import nn
from tqdm.auto import tqdm

from neuralcollapse.metrics.capture import (
    IGNORE_INDEX,
    BatchFn,
    LayerCapture,
    ModelBatch,
    first_tensor,
    iterate_batches,
    label_layout,
    model_device_dtype,
    resolve_classifier,
    resolve_module,
    to_device,
)
from neuralcollapse.metrics.collapse import DEFAULT_UNIFORMITY_KERNELS
from neuralcollapse.metrics.engine import LayerResults, LayerSpec, measure_layers
from neuralcollapse.metrics.stats import ClassStats
from neuralcollapse.metrics.validation import check_num_classes
from neuralcollapse.progress import bar_disabled
from neuralcollapse.schema import PENULTIMATE

Data = Iterable | Callable[[], Iterable]


#: the result of :func:`measure_model`: layer name -> CollapseMetrics, in model order (the
#: engine's :class:`~neuralcollapse.metrics.engine.LayerResults`)
ModelCollapse = LayerResults


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


def _layer_stream(
    model: nn.Module,
    names: Sequence[str],
    classifier: nn.Linear | None,
    select: Callable[[object], torch.Tensor],
    data: Callable[[], Iterable],
    batch_fn: BatchFn | None,
    label_key: str,
    device: torch.device,
    dtype: torch.dtype | None,
    *,
    shift_labels: bool,
    ignore_index: int,
    pool: str,
    check_labels: _LabelChecker,
    progress: bool,
) -> Callable[[], Iterator[tuple[dict[str, torch.Tensor], torch.Tensor]]]:
    """The engine's stream: per batch, the (rows, d) features of each layer and their labels.

    Each pass opens its own :class:`LayerCapture` (hooks and modes restored when the pass
    ends, also when it raises); the labels' layout decides how each output is pooled.
    """
    passes = iter(range(1, 3))

    def stream():
        dims: dict[str, int] = {}
        desc = f"pass {next(passes, 2)}/2"
        with LayerCapture(model, names, classifier, select) as capture:
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
                    pool=pool,
                )
                labels = layout.kept_labels()
                check_labels(labels, index)
                features = capture.run(moved, layout.features)
                for name, matrix in features.items():
                    if dims.setdefault(name, matrix.shape[1]) != matrix.shape[1]:
                        raise ValueError(
                            f"layer {name!r} gave features of dimension {matrix.shape[1]} in "
                            f"batch {index} but {dims[name]} before: its output size must not "
                            "depend on the batch (variable-length sequences need per-token "
                            "labels or pooling; pass select= to reduce the output to a fixed "
                            "size)"
                        )
                yield features, labels

    return stream


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
    pool: str = "auto",
    empty_classes: str = "error",
    reference: Mapping[str, ClassStats] | None = None,
    keep_class_stats: bool = False,
    distributed: bool | None = None,
    errors: str = "raise",
    nearest_centre: bool = True,
    uniformity_kernels: Sequence[str] = DEFAULT_UNIFORMITY_KERNELS,
    tile_size: int | None = None,
    rtol: float | None = None,
    new_classes: bool = False,
    chance_warning: bool = True,
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
    pool : how an output of 3 or more dimensions becomes one feature vector per sample:
        ``"auto"`` (conv maps averaged over space; (B, T, d) averaged over the positions the
        attention mask keeps, with a warning when there is no mask, since a Conv1d map
        (B, C, L) has the same shape), ``"sequence"``, ``"channels"`` or ``"flatten"``
        (:class:`~neuralcollapse.metrics.capture.LabelLayout`).
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
    new_classes : the data's classes are not the classifier's (transfer and few-shot learning,
        Galanti et al. 2022: classes the network never saw). The classifier then only marks
        the penultimate input; its metrics (NC2 of the weights, NC3, NC4, accuracy) are left
        out, and ``num_classes`` is the data's (required).
    chance_warning : warn when the classifier's own accuracy on this data is near chance
        (at most 1.25 / K): the numbers are then likely measured on the wrong data (labels not
        shifted for a causal LM, other preprocessing than in training, the wrong classifier).
    progress : a tqdm bar per pass.

    Returns
    -------
    :class:`ModelCollapse`: ``{layer: CollapseMetrics}`` in model order.

    Feature matrices (see :mod:`neuralcollapse.metrics.capture`): conv maps averaged
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
    if not isinstance(model, nn.Module):
        raise ValueError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    classifier_name, linear = (None, None)
    if classifier is not None:
        classifier_name, linear = resolve_classifier(model, classifier)
    names = _order_layers(model, _check_layers(model, layers, linear), classifier_name)
    if num_classes is None:
        if linear is None or new_classes:
            raise ValueError(
                "pass num_classes= (K, the classes of the data): "
                + (
                    "with new_classes=True it is the data's"
                    if new_classes
                    else "without a classifier it cannot be inferred"
                )
            )
        num_classes = linear.out_features
    num_classes = check_num_classes(num_classes)
    if linear is not None and linear.out_features != num_classes and not new_classes:
        raise ValueError(
            f"the classifier {classifier_name!r} has {linear.out_features} outputs but "
            f"num_classes={num_classes}; they must agree (for classes the classifier never "
            "saw, pass new_classes=True: the feature metrics only)"
        )
    make_data = _check_data(data)
    if distributed is None:
        distributed = (
            torch.distributed.is_available()
            and torch.distributed.is_initialized()
            and torch.distributed.get_world_size() > 1
        )
    device, dtype = model_device_dtype(model)
    specs: dict[str, LayerSpec] = {}
    for name in names:
        layer_reference = None if reference is None else reference.get(name)
        if layer_reference is not None:
            _check_reference(layer_reference, name)
        spec = LayerSpec(reference=layer_reference)
        if name == PENULTIMATE and not new_classes:
            spec.weights = linear.weight.detach()
            spec.bias = None if linear.bias is None else linear.bias.detach()
        specs[name] = spec
    stream = _layer_stream(
        model,
        names,
        linear,
        select or first_tensor,
        make_data,
        batch_fn,
        label_key,
        device,
        dtype,
        shift_labels=shift_labels,
        ignore_index=ignore_index,
        pool=pool,
        check_labels=_LabelChecker(num_classes, ignore_index),
        progress=progress,
    )
    result = measure_layers(
        stream,
        specs,
        num_classes=num_classes,
        empty_classes=empty_classes,
        errors=errors,
        distributed=distributed,
        keep_class_stats=keep_class_stats,
        nearest_centre=nearest_centre,
        uniformity_kernels=uniformity_kernels,
        tile_size=tile_size,
        rtol=rtol,
    )
    if chance_warning and linear is not None and not new_classes:
        _warn_near_chance(result.get(PENULTIMATE), num_classes, shift_labels)
    return result


def _warn_near_chance(metrics: object, num_classes: int, shift_labels: bool) -> None:
    """The network's own accuracy near chance: the data is probably not what it was trained on."""
    accuracy = getattr(metrics, "accuracy", None)
    if accuracy is None or accuracy > 1.25 / num_classes:
        return
    causes = [
        "labels one position off (a causal LM's unshifted labels need shift_labels=True)"
        if not shift_labels
        else "labels shifted twice (shift_labels=True on labels already aligned)",
        "inputs preprocessed differently than in training (normalisation, resizing)",
        "the wrong classifier module, or an untrained network",
    ]
    warnings.warn(
        f"the classifier's own accuracy on this data is {accuracy:.3g}, near chance "
        f"(1/K = {1 / num_classes:.3g}): the collapse metrics describe a network that does not "
        f"classify this data. Likely causes: {'; '.join(causes)}",
        UserWarning,
        stacklevel=3,
    )


def _check_reference(reference: object, layer: str) -> None:
    """A layer's reference must be a ClassStats (its K and d are the engine's to check)."""
    if not isinstance(reference, ClassStats):
        raise ValueError(
            f"reference[{layer!r}] must be a ClassStats (e.g. from keep_class_stats=True on the "
            f"training data); got {type(reference).__name__}"
        )
