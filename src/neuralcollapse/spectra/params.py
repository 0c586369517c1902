"""The parameters a spectrum is restricted to: chosen by name or prefix, held as one flat vector.

Every operator of :mod:`neuralcollapse.spectra` acts on ``theta_S``, the concatenation (in the
model's ``named_parameters`` order) of the chosen parameters ``S``; all others stay fixed. A
spectrum "of the last layer" is then the spectrum of the principal submatrix of the full
curvature matrix indexed by that layer's entries.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import torch

__all__ = ["ParameterSubset", "select_parameters"]


@dataclass(frozen=True)
class ParameterSubset:
    """Chosen parameters of a model as one flat vector.

    Attributes
    ----------
    names : the chosen parameters' names, in the model's order.
    shapes : their shapes; ``sizes`` their numbers of entries.
    dtype, device : of the first chosen parameter (all must agree).
    """

    names: tuple[str, ...]
    shapes: tuple[torch.Size, ...]
    dtype: torch.dtype
    device: torch.device

    @property
    def sizes(self) -> tuple[int, ...]:
        return tuple(int(torch.Size(s).numel()) for s in self.shapes)

    @property
    def dim(self) -> int:
        """p: the number of scalar parameters in the subset."""
        return sum(self.sizes)

    def flat(self, model: torch.nn.Module) -> torch.Tensor:
        """theta_S: the current values, concatenated (a detached copy)."""
        values = dict(model.named_parameters())
        return torch.cat([values[n].detach().reshape(-1) for n in self.names])

    def unflatten(self, flat: torch.Tensor) -> dict[str, torch.Tensor]:
        """name -> view of ``flat`` with that parameter's shape (gradients flow to ``flat``)."""
        pieces = torch.split(flat, list(self.sizes))
        return {n: p.reshape(s) for n, p, s in zip(self.names, pieces, self.shapes, strict=True)}

    def blocks(self, vector: torch.Tensor) -> dict[str, torch.Tensor]:
        """A flat vector cut into the parameters' shapes (for reading an eigenvector)."""
        return {n: t.detach() for n, t in self.unflatten(vector).items()}


def _available(model: torch.nn.Module) -> str:
    names = [n for n, p in model.named_parameters() if p.requires_grad]
    shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
    return shown or "(none)"


def select_parameters(
    model: torch.nn.Module, params: str | Iterable[str] | None = None
) -> ParameterSubset:
    """The parameters named in ``params``: exact names or prefixes (``"4"`` picks ``"4.weight"``
    and ``"4.bias"``; ``"classifier."`` a whole submodule). None: every trainable parameter.

    Raises ``TypeError`` for a non-module, ``ValueError`` for a name that matches nothing
    (listing the available names), for mixed dtypes or devices, or for an empty selection.
    """
    if not isinstance(model, torch.nn.Module):
        raise TypeError(
            f"model must be a torch.nn.Module mapping inputs to logits; got {type(model).__name__}"
        )
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    if params is None:
        chosen = [n for n, _ in named]
    else:
        if isinstance(params, str):
            params = [params]
        if isinstance(params, Mapping) or not isinstance(params, Iterable):
            raise TypeError(
                "params must be a parameter name or prefix, a list of them, or None (all); got "
                f"{type(params).__name__}"
            )
        wanted = list(params)
        for item in wanted:
            if not isinstance(item, str):
                raise TypeError(f"params must hold names (str); got {item!r}")
        chosen = []
        for item in wanted:
            matches = [n for n, _ in named if n == item or n.startswith(item.rstrip(".") + ".")]
            if not matches:
                raise ValueError(
                    f"no trainable parameter is named or prefixed {item!r}; available: "
                    f"{_available(model)}. Pass exact names or module prefixes such as 'fc.'"
                )
            chosen.extend(m for m in matches if m not in chosen)
        order = {n: i for i, (n, _) in enumerate(named)}
        chosen.sort(key=order.__getitem__)
    if not chosen:
        raise ValueError("the model has no trainable parameters to take a spectrum over")
    values = dict(named)
    dtypes = {values[n].dtype for n in chosen}
    devices = {values[n].device for n in chosen}
    if len(dtypes) > 1 or len(devices) > 1:
        raise ValueError(
            f"the chosen parameters mix dtypes {sorted(map(str, dtypes))} or devices "
            f"{sorted(map(str, devices))}; convert the model with model.to(dtype, device) first"
        )
    first = values[chosen[0]]
    return ParameterSubset(
        names=tuple(chosen),
        shapes=tuple(values[n].shape for n in chosen),
        dtype=first.dtype,
        device=first.device,
    )
