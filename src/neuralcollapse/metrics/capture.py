"""Feature capture: what a model computes at named layers, as (rows, d) feature matrices.

The one home of capture for the whole package (``measure_model``, ``probe``, the tracker,
both callbacks, the training loop):

- :class:`LayerCapture` records, during a forward pass, the output of each named layer and
  (with a forward *pre*-hook) the input of the classifier: the penultimate features. It puts
  the model in eval mode under ``torch.no_grad()``; on exit every submodule gets its *own*
  mode back (:func:`eval_mode`: a frozen BatchNorm inside a training network stays frozen)
  and every hook is removed, also when a pass raises.
- Names: ``model.named_modules()`` names, which also work through the prefixes that
  ``torch.compile`` (``_orig_mod.``) and DDP / FSDP (``module.``) add (:func:`resolve_module`).
- Feature matrices, the conventions researchers use (:class:`LabelLayout`):

  - a tuple, list, or Hugging Face ``ModelOutput`` is reduced to its first tensor (a
    transformer block returns ``(hidden_states, ...)``; ``select=`` overrides this);
  - conv maps (B, C, H, W) are averaged over space to (B, C) (Papyan et al.'s per-layer NC on
    conv nets keeps the dimension at C), any other 4-D-or-more output is flattened;
  - with one label per sample, a sequence output (B, T, d) is mean-pooled over the positions
    that ``attention_mask`` keeps (over all T without one);
  - with one label per token (labels (B, T)), a (B, T, d) output is flattened to tokens, and
    positions whose label is the ignore index (-100, Hugging Face's convention) or whose
    ``attention_mask`` is 0 are dropped;
  - ``shift_labels=True`` is next-token collapse (Wu & Papyan, "Linguistic collapse",
    NeurIPS 2024): the feature at position t is labelled by the token at t + 1 (Hugging Face
    causal-LM ``labels`` are unshifted: the model shifts them inside its loss), so the last
    position of each sequence has no label and is dropped;
  - 16-bit outputs are pooled in float64 (:func:`pooling_dtype`).
"""

from __future__ import annotations

import difflib
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from neuralcollapse.schema import PENULTIMATE

#: Hugging Face's label for positions that carry no target
IGNORE_INDEX = -100

Select = Callable[[object], torch.Tensor]


def first_tensor(output: object) -> torch.Tensor:
    """The first tensor of a module output (a tensor itself, a tuple/list, a ModelOutput)."""
    if isinstance(output, torch.Tensor):
        return output
    if isinstance(output, dict):  # ModelOutput is an OrderedDict of its non-None fields
        values = list(output.values())
    elif isinstance(output, (tuple, list)):
        values = list(output)
    else:
        values = []
    for value in values:
        if isinstance(value, torch.Tensor):
            return value
    raise TypeError(
        f"the module returned {type(output).__name__}, which holds no tensor; pass select= "
        "a function that picks the feature tensor from that output"
    )


@dataclass(frozen=True)
class LabelLayout:
    """How one batch's labels line up with the positions of a sequence output.

    labels : (B,) per sample, or (B, T) per token (already shifted when next-token).
    token_mask : (B, T) bool, the positions that are kept (token labels only), else None.
    attention_mask : (B, T) for pooling sequence outputs with per-sample labels, or None.
    shift : next-token labelling: features at positions 0..T-2 are used.
    pool : how a per-sample output of 3 or more dimensions becomes (B, d): ``"auto"``
        (conv maps (B, C, H, W) averaged over space; (B, T, d) averaged over positions, with
        a warning when no attention mask says it is a sequence), ``"sequence"`` (average over
        dimension 1: (B, T, d) -> (B, d)), ``"channels"`` (average over every dimension after
        the second: (B, C, L) -> (B, C), a Conv1d map), ``"flatten"`` ((B, ...) -> (B, -1)).
    """

    labels: torch.Tensor
    token_mask: torch.Tensor | None
    attention_mask: torch.Tensor | None
    shift: bool
    pool: str = "auto"

    @property
    def per_token(self) -> bool:
        return self.token_mask is not None

    def kept_labels(self) -> torch.Tensor:
        """The labels of the rows :meth:`features` returns, in the same order."""
        if self.token_mask is None:
            return self.labels
        return self.labels[self.token_mask]

    def features(self, output: torch.Tensor, layer: str) -> torch.Tensor:
        """The (rows, d) features of one module output for these labels."""
        batch = self.labels.shape[0]
        if output.dim() == 0 or output.shape[0] != batch:
            raise ValueError(
                f"layer {layer!r} produced an output of shape {tuple(output.shape)} for a batch "
                f"of {batch}; its first dimension must be the batch (pass select= to pick or "
                "reshape the features)"
            )
        if self.per_token:
            return self._token_features(output, layer)
        return per_sample_features(output, self.pool, self.attention_mask, layer)

    def _token_features(self, output: torch.Tensor, layer: str) -> torch.Tensor:
        positions = self.token_mask.shape[1] + (1 if self.shift else 0)
        if output.dim() != 3 or output.shape[1] != positions:
            shape = tuple(self.token_mask.shape)
            raise ValueError(
                f"labels of shape {shape} are read as one class per token, which needs a "
                f"(batch, {positions}, d) output at layer {layer!r}; got {tuple(output.shape)}. "
                "Multi-label (multi-hot) or soft targets are not classes: collapse metrics need "
                f"one class index per sample, (batch,) (for one-hot labels pass "
                "labels.argmax(1))"
            )
        if self.shift:
            output = output[:, :-1]
        return output[self.token_mask]


#: the pooling options of :class:`LabelLayout`
POOLING = ("auto", "sequence", "channels", "flatten")
_WARNED: set[tuple[str, tuple[int, ...]]] = set()


def _warn_ambiguous(layer: str, shape: tuple[int, ...]) -> None:
    """A (B, T, d) output with one label per sample and no attention mask: say how it is read."""
    key = (layer, shape[1:])
    if key in _WARNED:
        return
    _WARNED.add(key)
    warnings.warn(
        f"layer {layer!r} gives {shape}: read as a sequence of {shape[1]} positions of "
        f"dimension {shape[2]}, averaged over positions. If it is a Conv1d map (batch, "
        f"channels={shape[1]}, length={shape[2]}), pass pool='channels'; pool='sequence' "
        "confirms the sequence reading and silences this warning",
        UserWarning,
        stacklevel=2,
    )


def per_sample_features(
    output: torch.Tensor,
    pool: str = "auto",
    attention_mask: torch.Tensor | None = None,
    layer: str = "",
) -> torch.Tensor:
    """One (B, d) feature row per sample from a (B, ...) output (``pool`` as in
    :class:`LabelLayout`): the one place where maps and sequences are pooled."""
    batch = output.shape[0]
    if output.dim() <= 2 or pool == "flatten":
        return output.reshape(batch, -1)
    if pool == "channels" or (pool == "auto" and output.dim() == 4):
        # (B, C, ...) maps: the mean over every position keeps the channels
        return output.mean(dim=tuple(range(2, output.dim())), dtype=pooling_dtype(output.dtype))
    if output.dim() == 3:  # (B, T, d) sequence, one label per sample: masked mean
        if pool == "auto" and attention_mask is None:
            _warn_ambiguous(layer, tuple(output.shape))
        return _masked_mean(output, attention_mask)
    if pool == "sequence":
        raise ValueError(
            f"pool='sequence' needs (batch, positions, d) outputs; layer {layer!r} gave "
            f"{tuple(output.shape)}: use pool='channels' or 'flatten', or select="
        )
    return output.reshape(batch, -1)


def pooling_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype a mean over positions is taken in: float64 for 16-bit features.

    A float16 / bfloat16 mean rounded back to 16 bits would lose what the metrics keep
    (they accumulate in float64): the pooled features are the exact means of the values the
    layer produced, to float64 precision (issue 21). Wider dtypes pool in their own.
    """
    return torch.float64 if dtype in (torch.float16, torch.bfloat16) else dtype


def _masked_mean(output: torch.Tensor, attention_mask: torch.Tensor | None) -> torch.Tensor:
    if attention_mask is None:
        return output.mean(dim=1, dtype=pooling_dtype(output.dtype))
    output = output.to(pooling_dtype(output.dtype))
    weights = attention_mask.to(output.dtype).unsqueeze(-1)
    return (output * weights).sum(dim=1) / weights.sum(dim=1).clamp_min(1)


def label_layout(
    labels: torch.Tensor,
    *,
    attention_mask: torch.Tensor | None = None,
    shift_labels: bool = False,
    ignore_index: int = IGNORE_INDEX,
    pool: str = "auto",
) -> LabelLayout:
    """Line up one batch's labels with its sequence positions (see the module docstring).

    Labels of shape (B, 1) are one label per sample. Floating-point labels are refused:
    soft or multi-label targets are not class indices.
    """
    if pool not in POOLING:
        raise ValueError(f"pool must be one of {', '.join(POOLING)}; got {pool!r}")
    if labels.is_floating_point():
        raise ValueError(
            f"labels are floating point ({labels.dtype}, shape {tuple(labels.shape)}): soft or "
            "multi-label targets are not class indices; collapse metrics need one integer "
            "class per sample (for one-hot or probability labels pass labels.argmax(-1))"
        )
    if labels.dim() == 2 and labels.shape[1] == 1 and not shift_labels:
        labels = labels[:, 0]  # (B, 1): one label per sample, not a sequence of one token
    if labels.dim() == 1:
        if shift_labels:
            raise ValueError(
                "shift_labels=True needs one label per token, (batch, length); these labels are "
                f"{tuple(labels.shape)}: drop shift_labels for one label per sample"
            )
        return LabelLayout(labels, None, attention_mask, False, pool)
    if labels.dim() != 2:
        raise ValueError(
            f"labels must be (batch,) or (batch, length) for token labels; got shape "
            f"{tuple(labels.shape)}"
        )
    if attention_mask is not None and attention_mask.shape != labels.shape:
        raise ValueError(
            f"attention_mask {tuple(attention_mask.shape)} and token labels "
            f"{tuple(labels.shape)} must have the same shape"
        )
    mask = None if attention_mask is None else attention_mask.bool()
    if shift_labels:
        labels = labels[:, 1:]
        if mask is not None:  # both the position read and the token predicted must be real
            mask = mask[:, :-1] & mask[:, 1:]
    keep = labels != ignore_index
    if mask is not None:
        keep = keep & mask
    return LabelLayout(labels, keep, None, shift_labels, pool)


#: a batch as the model and the metrics need it: what to call the model with, and the labels
BatchFn = Callable[[Any], "ModelBatch"]


@dataclass
class ModelBatch:
    """One batch: the model is called as ``model(*args, **kwargs)``; ``labels`` are the targets.

    ``attention_mask`` (B, T) is used for masking/pooling sequence outputs (it is also passed
    to the model when it came in ``kwargs``).
    """

    args: tuple
    kwargs: dict
    labels: torch.Tensor
    attention_mask: torch.Tensor | None = None


def split_batch(batch: Any, label_key: str = "labels") -> ModelBatch:
    """``(inputs, labels)`` (tuple or list) or a dict with a ``labels`` key (Hugging Face style).

    For a dict the labels are taken out and every other entry is passed to the model as a
    keyword argument, so the model computes no loss of its own.
    """
    if isinstance(batch, Mapping):
        if label_key not in batch:
            raise ValueError(
                f"a dict batch needs a {label_key!r} entry (keys: {', '.join(map(str, batch))}); "
                "pass label_key= or batch_fn= to say where the labels are"
            )
        kwargs = {k: v for k, v in batch.items() if k != label_key}
        mask = kwargs.get("attention_mask")
        return ModelBatch((), kwargs, torch.as_tensor(batch[label_key]), mask)
    if isinstance(batch, (tuple, list)) and len(batch) == 2:
        inputs, labels = batch
        return ModelBatch((inputs,), {}, torch.as_tensor(labels))
    raise ValueError(
        f"cannot read a batch of type {type(batch).__name__}"
        + (f" with {len(batch)} items" if isinstance(batch, (tuple, list)) else "")
        + ": batches must be (inputs, labels) or a dict with 'labels'; pass batch_fn= a function "
        "that returns neuralcollapse.integrations.ModelBatch(args=(inputs,), kwargs={}, "
        "labels=labels) for this batch"
    )


def to_device(value: Any, device: torch.device, dtype: torch.dtype | None) -> Any:
    """Move tensors (in containers too) to the model's device; floats to its dtype."""
    if isinstance(value, torch.Tensor):
        if dtype is not None and value.is_floating_point():
            return value.to(device=device, dtype=dtype)
        return value.to(device)
    if isinstance(value, Mapping):
        return {k: to_device(v, device, dtype) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return type(value)(to_device(v, device, dtype) for v in value)
    return value


def model_device_dtype(model: nn.Module) -> tuple[torch.device, torch.dtype | None]:
    """Where the model's parameters live and their floating dtype (CPU, None if it has none)."""
    for parameter in model.parameters():
        return parameter.device, (parameter.dtype if parameter.is_floating_point() else None)
    return torch.device("cpu"), None


#: prefixes that wrappers add to every module name: ``torch.compile`` (``_orig_mod.``),
#: DistributedDataParallel / DataParallel / FSDP (``module.``)
WRAPPER_PREFIXES = ("_orig_mod.", "module.")


def _wrapped_names(name: str) -> list[str]:
    """``name`` as it reads through wrappers: with their prefixes added, or removed."""
    names = [name]
    stripped = name
    while stripped.startswith(WRAPPER_PREFIXES):  # a prefixed name on an unwrapped model
        stripped = stripped.split(".", 1)[1]
        names.append(stripped)
    for _ in range(2):  # e.g. DDP(torch.compile(model)): module._orig_mod.layer3
        names += [prefix + known for known in list(names) for prefix in WRAPPER_PREFIXES]
    return list(dict.fromkeys(names))


def resolve_module(model: nn.Module, name: str, what: str = "layer") -> nn.Module:
    """The submodule called ``name`` (a ``model.named_modules()`` name), or a helpful error.

    The user's own names work on a wrapped model too (``layer3`` finds ``_orig_mod.layer3``
    of a compiled model and ``module.layer3`` of a DDP one), and the prefixed
    names work on the model itself.
    """
    modules = dict(model.named_modules())
    if name:
        for candidate in _wrapped_names(name):
            if candidate in modules:
                return modules[candidate]
    candidates = [n for n in modules if n]
    close = difflib.get_close_matches(name, candidates, n=5, cutoff=0.4)
    hint = close or candidates[:8]
    raise ValueError(
        f"{what} {name!r} is not a module of {type(model).__name__}; "
        + ("closest names: " if close else "its modules include: ")
        + ", ".join(hint)
        + " (see model.named_modules())"
    )


def resolve_classifier(model: nn.Module, classifier: str | nn.Module) -> tuple[str, nn.Linear]:
    """The final linear module by name or as the module itself; its name in ``model``.

    An ``nn.Linear``, or any linear head with a (K, d) ``weight`` tensor (a parameter or a
    buffer: :class:`~neuralcollapse.frontier.fixed_etf.FixedETFClassifier`), an optional
    (K,) ``bias`` and ``out_features``: logits are ``h W^T + b``."""
    if isinstance(classifier, str):
        module = resolve_module(model, classifier, "classifier")
        name = classifier
    elif isinstance(classifier, nn.Module):
        name = next((n for n, m in model.named_modules() if m is classifier), None)
        if name is None:
            raise ValueError(
                f"the classifier module ({type(classifier).__name__}) is not part of the model; "
                "pass one of the model's own modules or its name"
            )
        module = classifier
    else:
        raise ValueError(
            f"classifier must be a module name or an nn.Module; got {type(classifier).__name__}"
        )
    weight, bias = getattr(module, "weight", None), getattr(module, "bias", None)
    linear_like = (
        isinstance(weight, torch.Tensor)
        and weight.dim() == 2
        and (bias is None or isinstance(bias, torch.Tensor))
        and hasattr(module, "out_features")
    )
    if not (isinstance(module, nn.Linear) or linear_like):
        raise ValueError(
            f"classifier {name!r} is a {type(module).__name__}, not an nn.Linear: name the final "
            "linear layer (its weight is the (K, d) classifier), or leave classifier=None and "
            "measure layers without NC3/NC4"
        )
    return name, module


class LayerCapture:
    """Record named layers' outputs (and the classifier's input) during forward passes.

    ``select`` maps a raw module output to the feature tensor (default: the first tensor).
    Use as a context manager; :meth:`run` does one forward pass and returns the captured
    raw tensors by layer name, in the order given.
    """

    def __init__(
        self,
        model: nn.Module,
        layers: Sequence[str],
        classifier: nn.Linear | None,
        select: Callable[[object], torch.Tensor],
    ) -> None:
        self.model = model
        self.layers = tuple(layers)
        self.classifier = classifier
        self.select = select
        self._captured: dict[str, torch.Tensor] = {}
        self._handles: list[torch.utils.hooks.RemovableHandle] = []
        self._modes: list[tuple[nn.Module, bool]] = []
        self._grad_mode: Any = None
        self._reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None

    def _record(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            self._keep(name, self.select(output).detach())

        return hook

    def _record_input(self, module: nn.Module, inputs: tuple) -> None:
        self._keep(PENULTIMATE, inputs[0].detach())

    def _keep(self, name: str, output: torch.Tensor) -> None:
        if name in self._captured:
            raise ValueError(
                f"layer {name!r} ran more than once in one forward pass (a module reused, "
                "e.g. one nn.ReLU applied twice), so its output is ambiguous: measure a module "
                "that runs once per forward (give each use its own module), or a layer around it"
            )
        # reduce inside the hook: a conv map is freed as soon as the net is done with it,
        # instead of every layer's map living until the end of the forward pass
        self._captured[name] = output if self._reduce is None else self._reduce(output, name)

    def __enter__(self) -> LayerCapture:
        try:
            for name in self.layers:
                if name == PENULTIMATE:
                    continue
                module = resolve_module(self.model, name)
                self._handles.append(module.register_forward_hook(self._record(name)))
            if self.classifier is not None and PENULTIMATE in self.layers:
                self._handles.append(self.classifier.register_forward_pre_hook(self._record_input))
        except BaseException:
            self._remove()
            raise
        self._modes = _modes(self.model)
        self.model.eval()
        self._grad_mode = torch.no_grad()
        self._grad_mode.__enter__()
        return self

    def _remove(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._captured.clear()

    def __exit__(self, *exc_info: object) -> None:
        if self._grad_mode is not None:
            self._grad_mode.__exit__(*exc_info)
            self._grad_mode = None
        self._remove()
        _restore(self._modes)

    def run(
        self,
        batch: ModelBatch,
        reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One forward pass; the captured tensors by layer name, through ``reduce(output, name)``
        (e.g. to the (rows, d) feature matrix) when given."""
        return self.record(lambda: self.model(*batch.args, **batch.kwargs), reduce)[1]

    def record(
        self,
        call: Callable[[], Any],
        reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None,
    ) -> tuple[Any, dict[str, torch.Tensor]]:
        """Run ``call()`` (any forward computation of the model) with the hooks on: its result
        and the captured tensors by layer name (through ``reduce`` when given)."""
        self._captured.clear()
        self._reduce = reduce
        try:
            result = call()
        finally:
            self._reduce = None
        missing = [name for name in self.layers if name not in self._captured]
        if missing:
            raise ValueError(
                f"layer(s) {', '.join(map(repr, missing))} produced no output during the forward "
                "pass: they are not on the path this model's forward() takes for these inputs "
                "(an unused head, or a module called through a functional shortcut); choose "
                "layers that run, e.g. from a trace of model.named_modules()"
            )
        return result, {name: self._captured[name] for name in self.layers}


def iterate_batches(
    data: Iterable, batch_fn: BatchFn | None, label_key: str
) -> Iterable[ModelBatch]:
    """The batches of ``data`` as :class:`ModelBatch` (through ``batch_fn`` when given)."""
    for raw in data:
        batch = batch_fn(raw) if batch_fn is not None else split_batch(raw, label_key)
        if not isinstance(batch, ModelBatch):
            raise ValueError(f"batch_fn must return a ModelBatch; got {type(batch).__name__}")
        yield batch


def _modes(model: nn.Module) -> list[tuple[nn.Module, bool]]:
    return [(module, module.training) for module in model.modules()]


def _restore(modes: list[tuple[nn.Module, bool]]) -> None:
    for module, training in modes:
        module.training = training


@contextmanager
def eval_mode(model: nn.Module) -> Iterator[None]:
    """Put ``model`` in eval mode; give every submodule its own mode back on exit.

    ``model.train(was_training)`` would not do: a model whose parts were in different modes
    (a frozen BatchNorm inside a training network, a frozen backbone) would come back
    uniform, and the frozen BatchNorm's running statistics would move on the next forward.
    """
    modes = _modes(model)
    model.eval()
    try:
        yield
    finally:
        _restore(modes)
