"""A training network's features at chosen layers in one forward pass.

The penultimate features come from the network's own ``forward_features`` (explicit
returns, both before and after the final ReLU); intermediate layers are captured by the
package's one capture module (:class:`neuralcollapse.metrics.capture.LayerCapture`: forward
hooks, eval mode and no_grad, every submodule's mode and every hook restored). Convolutional
feature maps (N, C, H, W) are averaged over space to (N, C) -- the usual choice for per-layer
NC on conv nets, which keeps the dimension at C instead of C*H*W -- and any other output is
flattened to (N, -1) (:func:`~neuralcollapse.metrics.capture.per_sample_features`).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuralcollapse.metrics.capture import LayerCapture, first_tensor, per_sample_features
from neuralcollapse.schema import PENULTIMATE_POST, PENULTIMATE_PRE
from neuralcollapse.train.nets import CollapseNet


def as_feature_matrix(output: torch.Tensor) -> torch.Tensor:
    """(N, C, H, W) -> spatial mean (N, C); (N, d) unchanged; anything else flattened."""
    return per_sample_features(output, "channels" if output.dim() == 4 else "flatten")


def resolve_layers(model: CollapseNet, layers: str | Sequence[str]) -> tuple[str, ...]:
    """Turn a layer selection into module names of ``model``.

    ``"all"`` selects the network's ``probe_layers``; ``"none"`` or ``""`` none; a
    comma-separated string or a sequence names modules (any name from
    ``model.named_modules()``, e.g. ``layer2`` or ``layer2.1``).

    Raises
    ------
    ValueError : a name that is not a module of the model (the message lists the defaults).
    """
    if isinstance(layers, str):
        if layers.strip() == "all":
            return tuple(model.probe_layers)
        if layers.strip() in ("none", ""):
            return ()
        layers = [name.strip() for name in layers.split(",") if name.strip()]
    modules = dict(model.named_modules())
    for name in layers:
        if name not in modules or name == "":
            raise ValueError(
                f"layer {name!r} is not a module of {type(model).__name__}; use 'all', 'none' "
                f"or names such as {', '.join(model.probe_layers) or '(none)'}"
            )
    return tuple(layers)


class FeatureProbe:
    """A training network's logits, penultimate features and named layers, per forward pass.

    Use as a context manager around forward passes (the network is in eval mode under
    ``torch.no_grad()`` inside it, and every submodule's mode comes back on exit);
    :meth:`features` runs one pass and returns the logits, the penultimate features and
    every captured layer.

    Examples
    --------
    >>> with FeatureProbe(net, ["layer1"]) as probe:  # doctest: +SKIP
    ...     out = probe.features(images)
    >>> out["layer1"].shape, out["penultimate_post"].shape  # doctest: +SKIP
    """

    def __init__(self, model: CollapseNet, layer_names: Sequence[str]) -> None:
        self.model = model
        self.layer_names = resolve_layers(model, list(layer_names))
        self._capture = LayerCapture(model, self.layer_names, None, first_tensor)

    def __enter__(self) -> FeatureProbe:
        self._capture.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._capture.__exit__(*exc_info)

    def features(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        """One forward pass: {"logits", "penultimate_pre", "penultimate_post", *layers}."""
        (pre, post), captured = self._capture.record(
            lambda: self.model.forward_features(images),
            reduce=lambda output, name: as_feature_matrix(output.detach()),
        )
        return {
            "logits": self.model.classifier(post),
            PENULTIMATE_PRE: pre.detach(),
            PENULTIMATE_POST: post.detach(),
            **captured,
        }
