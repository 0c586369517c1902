"""Per-sample losses on logits, their Hessians in the logits, and Papyan's factorisation of it.

For a sample with logits ``z`` (C,) and label ``y``:

- ``"ce"``: ``l = -log softmax(z)_y``; Hessian ``A = diag(p) - p p^T`` with ``p = softmax(z)``;
- ``"mse"``: ``l = 1/2 ||z - e_y||^2`` (the UFM's and ``neuralcollapse train``'s convention);
  ``A = I``;
- a callable ``loss(logits (B, C), labels (B,)) -> (B,)`` per-sample losses; ``A`` by automatic
  differentiation.

Papyan (ICML 2019; JMLR 2020) writes ``A = F F^T`` with the columns of F indexed by a logit c':
for CE ``F[:, c'] = sqrt(p_c') (e_c' - p)`` (then ``J^T F[:, c']`` is ``sqrt(p_c')`` times the
gradient the sample would have with label c', and ``sum_c' p_c' (e_c' - p)(e_c' - p)^T =
diag(p) - p p^T``); for MSE ``F = I`` (``J^T e_c'`` is the gradient of logit c'); for a callable
loss the symmetric square root of ``A`` (clipped at 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = ["LOSSES", "LossSpec", "loss_spec"]

LOSSES: tuple[str, ...] = ("ce", "mse")


@dataclass(frozen=True)
class LossSpec:
    """A per-sample loss with its logit Hessian and factor (see the module docstring)."""

    name: str
    per_sample: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]

    def hessian(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """A_i = d^2 l / dz^2 for each sample: (B, C, C)."""
        if self.name == "mse":
            eye = torch.eye(logits.shape[1], dtype=logits.dtype, device=logits.device)
            return eye.expand(logits.shape[0], -1, -1)
        if self.name == "ce":
            p = torch.softmax(logits, dim=1)
            return torch.diag_embed(p) - p.unsqueeze(2) * p.unsqueeze(1)

        def one(z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            return self.per_sample(z.unsqueeze(0), y.unsqueeze(0))[0]

        return torch.func.vmap(torch.func.hessian(one))(logits.detach(), labels)

    def factor(self, logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """F_i with ``A_i = F_i F_i^T``, columns indexed by the logit c': (B, C, C)."""
        if self.name == "mse":
            return self.hessian(logits, labels)
        if self.name == "ce":
            p = torch.softmax(logits, dim=1)
            eye = torch.eye(logits.shape[1], dtype=logits.dtype, device=logits.device)
            # column c' = sqrt(p_c') (e_c' - p)
            return (eye.unsqueeze(0) - p.unsqueeze(2)) * p.sqrt().unsqueeze(1)
        values, vectors = torch.linalg.eigh(self.hessian(logits, labels))
        return vectors * values.clamp_min(0).sqrt().unsqueeze(1) @ vectors.transpose(1, 2)


def _ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    return torch.nn.functional.cross_entropy(logits, labels, reduction="none")


def _mse(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    classes = torch.arange(logits.shape[1], device=logits.device)
    target = (classes.unsqueeze(0) == labels.unsqueeze(1)).to(logits.dtype)  # vmap-safe one-hot
    return 0.5 * (logits - target).pow(2).sum(dim=1)


def loss_spec(loss: str | Callable | LossSpec) -> LossSpec:
    """``"ce"``, ``"mse"`` or a per-sample callable as a :class:`LossSpec`."""
    if isinstance(loss, LossSpec):
        return loss
    if isinstance(loss, str):
        if loss == "ce":
            return LossSpec("ce", _ce)
        if loss == "mse":
            return LossSpec("mse", _mse)
        raise ValueError(
            f"unknown loss {loss!r}; use 'ce', 'mse', or a callable "
            "loss(logits (B, C), labels (B,)) -> per-sample losses (B,)"
        )
    if callable(loss):
        return LossSpec(getattr(loss, "__name__", "custom"), loss)
    raise TypeError(
        f"loss must be 'ce', 'mse' or a callable returning per-sample losses; got "
        f"{type(loss).__name__}"
    )
