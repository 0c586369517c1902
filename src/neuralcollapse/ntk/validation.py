"""Checks at the door of the NTK functions: clear messages naming the argument and the fix."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from neuralcollapse.checks import check_float, check_int


def check_depth(depth: object) -> int:
    """``depth`` as an int >= 1 (hidden layers of the MLP, residual blocks of the ResNet)."""
    return check_int(
        "depth",
        depth,
        minimum=1,
        meaning="the number of hidden layers of the MLP or residual blocks of the ResNet",
    )


def check_alpha(alpha: object) -> float:
    """``alpha`` as a finite float >= 0 (the residual branch scale)."""
    return check_float(
        "alpha (residual branch scale)",
        alpha,
        minimum=0.0,
        hint="(alpha = 0 removes the residual branches; typical values are 0.1 to 2)",
    )


def check_alphas(alphas: Sequence[object]) -> list[float]:
    """A non-empty list of valid ``alpha`` values."""
    values = [check_alpha(alpha) for alpha in alphas]
    if not values:
        raise ValueError("alphas must contain at least one residual scale, e.g. [0.5, 1.0]")
    return values


def check_width(width: object) -> int:
    """``width`` as an int >= 1."""
    return check_int("width", width, minimum=1, meaning="hidden units per layer")


def check_in_dim(in_dim: object) -> int:
    """``in_dim`` as an int >= 1."""
    return check_int("in_dim", in_dim, minimum=1, meaning="the input dimension d")


def check_seed(seed: object) -> int | None:
    """``seed`` as a Python int, or None: torch's generators refuse NumPy integers."""
    if seed is None:
        return None
    return check_int("seed", seed, alternative="or None (torch's global generator)")


def as_inputs(x: object, name: str) -> torch.Tensor:
    """``x`` as a finite, float64, 2-D tensor (rows are inputs), with no all-zero row.

    A zero input has no direction, so the angle in the arc-cosine kernels is undefined;
    the kernels are homogeneous, so rescale it rather than pass zero.
    """
    if isinstance(x, torch.Tensor):
        tensor = x.detach().to(torch.float64)
    else:
        try:
            tensor = torch.as_tensor(np.asarray(x, dtype=np.float64))
        except (TypeError, ValueError):
            raise ValueError(f"{name} must be a numeric array of shape (n, d)") from None
    if tensor.ndim == 1:
        raise ValueError(
            f"{name} must be 2-D with one input per row, shape (n, d); got shape "
            f"{tuple(tensor.shape)}. For a single input use x.reshape(1, -1)"
        )
    if tensor.ndim != 2 or tensor.shape[0] == 0 or tensor.shape[1] == 0:
        raise ValueError(
            f"{name} must be a non-empty 2-D array of shape (n, d); got shape {tuple(tensor.shape)}"
        )
    if not torch.isfinite(tensor).all():
        index = int(torch.nonzero(~torch.isfinite(tensor))[0, 0])
        raise ValueError(f"{name} contains NaN or inf (first in row {index}); clean the inputs")
    norms = tensor.norm(dim=1)
    if (norms == 0).any():
        index = int(torch.nonzero(norms == 0)[0, 0])
        raise ValueError(
            f"{name} row {index} is the zero vector: the ReLU kernels need a direction; "
            "drop it or add a constant feature"
        )
    return tensor


def check_input_pair(x1: object, x2: object | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Both input sets validated and with matching dimension (``x2=None`` means ``x1``)."""
    first = as_inputs(x1, "x1")
    second = first if x2 is None else as_inputs(x2, "x2")
    if first.shape[1] != second.shape[1]:
        raise ValueError(
            f"x1 and x2 must have the same input dimension; got x1 with d={first.shape[1]} "
            f"and x2 with d={second.shape[1]}"
        )
    return first, second.to(first.device)
