"""Forward hooks on named modules of any ``nn.Module``, and the batches that feed them.

:class:`LayerCapture` records, during one forward pass, the output of each named layer and
(with a forward *pre*-hook) the input of the classifier -- the penultimate features. It puts
the model in eval mode under ``torch.no_grad()`` and restores the mode and removes every
hook on exit, also when the pass raises.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from neuralcollapse.schema import PENULTIMATE

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
    """The final linear module by name or as the module itself; its name in ``model``."""
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
    if not isinstance(module, nn.Linear):
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
        self._was_training = model.training
        self._grad_mode: Any = None
        self._reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None

    def _record(self, name: str):
        def hook(module: nn.Module, inputs: tuple, output: object) -> None:
            self._keep(name, self.select(output).detach())

        return hook

    def _record_input(self, module: nn.Module, inputs: tuple) -> None:
        self._keep(PENULTIMATE, inputs[0].detach())

    def _keep(self, name: str, output: torch.Tensor) -> None:
        # reduce inside the hook: a conv map is freed as soon as the net is done with it,
        # instead of every layer's map living until the end of the forward pass
        self._captured[name] = output if self._reduce is None else self._reduce(output, name)

    def __enter__(self) -> LayerCapture:
        self._was_training = self.model.training
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
        self.model.train(self._was_training)

    def run(
        self,
        batch: ModelBatch,
        reduce: Callable[[torch.Tensor, str], torch.Tensor] | None = None,
    ) -> dict[str, torch.Tensor]:
        """One forward pass; the captured tensors by layer name, through ``reduce(output, name)``
        (e.g. to the (rows, d) feature matrix) when given."""
        self._captured.clear()
        self._reduce = reduce
        try:
            self.model(*batch.args, **batch.kwargs)
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
        return {name: self._captured[name] for name in self.layers}


def iterate_batches(
    data: Iterable, batch_fn: BatchFn | None, label_key: str
) -> Iterable[ModelBatch]:
    """The batches of ``data`` as :class:`ModelBatch` (through ``batch_fn`` when given)."""
    for raw in data:
        batch = batch_fn(raw) if batch_fn is not None else split_batch(raw, label_key)
        if not isinstance(batch, ModelBatch):
            raise ValueError(f"batch_fn must return a ModelBatch; got {type(batch).__name__}")
        yield batch
