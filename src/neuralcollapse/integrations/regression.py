"""``measure_regression``: neural regression collapse at named layers of any PyTorch model.

The regression counterpart of :func:`~neuralcollapse.integrations.measure_model`: batches of
``(inputs, targets)`` with float targets of shape (B, n) (or (B,)), the model's regression
head (an ``nn.Linear`` with n outputs) given as ``head=``. One pass over the data, through
the package's one capture module (hooks, pooling, every submodule's mode restored), fills
each layer's :class:`~neuralcollapse.frontier.regression.RegressionStats` (memory d^2 per
layer, whatever N). The head's input gets NRC1-NRC3 (Andriopoulos et al., NeurIPS 2024);
every other layer gets NRC1, which needs no head.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from neuralcollapse.frontier.regression import (
    RegressionCollapse,
    RegressionStats,
    nrc1,
    regression_collapse,
)
from neuralcollapse.integrations.model_metrics import Data, _check_data, _check_layers
from neuralcollapse.metrics.capture import (
    BatchFn,
    LayerCapture,
    ModelBatch,
    first_tensor,
    iterate_batches,
    model_device_dtype,
    per_sample_features,
    resolve_classifier,
    to_device,
)
from neuralcollapse.schema import PENULTIMATE


@dataclass
class RegressionResults:
    """``head`` layer -> :class:`RegressionCollapse`; ``nrc1`` every layer's NRC1.

    ``stats`` holds each layer's :class:`RegressionStats`; ``weights`` the head's W (n, d) as
    measured (a float64 CPU copy) and ``centred_targets`` whether NRC3 compared W W^T with the
    centred Sigma_Y, so that NRC3's two matrices can be rebuilt (e.g. drawn) without the model.
    Both are None in results built without them; :meth:`to_dict` leaves them out.
    """

    head: RegressionCollapse | None
    nrc1: dict[str, float] = field(default_factory=dict)
    stats: dict[str, RegressionStats] = field(default_factory=dict)
    weights: torch.Tensor | None = None
    centred_targets: bool | None = None

    def to_dict(self) -> dict:
        return {
            "head": None if self.head is None else self.head.to_dict(),
            "nrc1": dict(self.nrc1),
        }


def measure_regression(
    model: nn.Module,
    data: Data,
    *,
    head: str | nn.Module,
    layers: str | Sequence[str] | None = None,
    select: Callable[[object], torch.Tensor] | None = None,
    batch_fn: BatchFn | None = None,
    label_key: str = "labels",
    pool: str = "auto",
    centred_targets: bool | None = None,
) -> RegressionResults:
    """Neural regression collapse of ``model`` on ``data`` (float targets).

    Parameters
    ----------
    head : the regression head (its name or the module): a linear layer with a (n, d)
        weight; its input is the penultimate layer (``"penultimate"``), which gets NRC1-NRC3.
    layers : further ``named_modules()`` names, NRC1 each (default: the head's input only).
    select, batch_fn, label_key, pool : as in :func:`~neuralcollapse.integrations.measure_model`
        (the "labels" are the targets here).
    centred_targets : NRC3 against the centred target covariance (a head with a bias: the
        default when it has one) or the uncentred second moment (no bias).

    Returns
    -------
    :class:`RegressionResults`.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    _, linear = resolve_classifier(model, head)
    names = _check_layers(model, layers, linear)
    make_data = _check_data(data)
    device, dtype = model_device_dtype(model)
    stats = {name: RegressionStats() for name in names}
    with LayerCapture(model, names, linear, select or first_tensor) as capture:
        for index, batch in enumerate(iterate_batches(make_data(), batch_fn, label_key)):
            moved = ModelBatch(
                to_device(batch.args, device, dtype),
                to_device(batch.kwargs, device, dtype),
                batch.labels,
                None if batch.attention_mask is None else batch.attention_mask.to(device),
            )
            targets = torch.as_tensor(batch.labels)
            if not targets.is_floating_point():
                raise ValueError(
                    f"batch {index} has integer targets ({targets.dtype}): regression collapse "
                    "needs float targets (B, n); for class labels use measure_model"
                )
            mask = moved.attention_mask
            features = capture.run(
                moved,
                lambda output, name, mask=mask: per_sample_features(output, pool, mask, name),
            )
            for name, matrix in features.items():
                stats[name].update(matrix, targets)
    if stats[names[0]].feature_sum is None:
        raise ValueError("data yielded no batches; nothing to measure")
    if centred_targets is None:
        centred_targets = getattr(linear, "bias", None) is not None
    weights = linear.weight.detach()
    head_result = regression_collapse(stats[PENULTIMATE], weights, centred_targets=centred_targets)
    return RegressionResults(
        head_result,
        {name: nrc1(s) for name, s in stats.items()},
        stats,
        # a copy: the model may train on after this call, and these must stay what was measured
        weights=weights.to(device="cpu", dtype=torch.float64, copy=True),
        centred_targets=centred_targets,
    )
