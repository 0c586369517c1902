"""Argument checks shared by the measures, each naming the problem and the fix.

Scalars go through :mod:`neuralcollapse.checks` (one message style, NumPy scalars accepted,
``bool`` refused); what is here only composes those checks.
"""

from __future__ import annotations

import torch

from neuralcollapse.checks import check_float
from neuralcollapse.metrics.validation import ArrayLike, as_tensor, check_finite


def check_fraction(
    name: str, value: object, *, zero: bool, one: bool, meaning: str = "", hint: str = ""
) -> float:
    """A number in [0, 1], ``0`` allowed only if ``zero`` and ``1`` only if ``one``."""
    return check_float(
        name,
        value,
        minimum=0.0,
        maximum=1.0,
        strict=(not zero, not one),
        meaning=meaning,
        hint=hint,
    )


def check_rtol(rtol: float | None, default: float) -> float:
    """A relative tolerance in [0, 1), or ``default`` when None."""
    if rtol is None:
        return default
    return check_fraction(
        "rtol",
        rtol,
        zero=True,
        one=False,
        meaning="singular values below rtol * largest count as zero",
        hint="Pass None for the default (a size times float64's machine epsilon)",
    )


def as_matrix(value: ArrayLike, name: str, *, shape_hint: str) -> torch.Tensor:
    """A finite 2-D float64 tensor (detached, CPU or wherever it lives)."""
    tensor = as_tensor(value, name)
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D array {shape_hint}; got shape {tuple(tensor.shape)}"
        )
    if tensor.dtype == torch.bool or tensor.is_complex():
        raise ValueError(f"{name} must be real numbers; got dtype {tensor.dtype}")
    tensor = tensor.detach().to(torch.float64)
    check_finite(tensor, name)
    return tensor
