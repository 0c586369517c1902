"""Argument checks shared by the measures, each naming the problem and the fix."""

from __future__ import annotations

import math

import numpy as np
import torch

from neuralcollapse.metrics.validation import ArrayLike, as_tensor, check_finite


def check_rtol(rtol: float | None, default: float) -> float:
    """A relative tolerance in [0, 1), or ``default`` when None."""
    if rtol is None:
        return default
    try:
        value = float(rtol)
    except (TypeError, ValueError):
        raise ValueError(f"rtol must be a number in [0, 1); got {rtol!r}") from None
    if not (0.0 <= value < 1.0):
        raise ValueError(
            f"rtol must lie in [0, 1) (singular values below rtol * largest count as zero); "
            f"got {rtol!r}"
        )
    return value


def check_nonnegative(name: str, value: float, fix: str) -> float:
    """A finite number >= 0."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number >= 0; got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"{name} must be a finite number >= 0; got {value!r}. {fix}")
    return number


def check_positive(name: str, value: float, fix: str) -> float:
    """A finite number > 0."""
    number = check_nonnegative(name, value, fix)
    if number == 0:
        raise ValueError(f"{name} must be > 0; got {value!r}. {fix}")
    return number


def check_count(name: str, value: int, low: int, high: int, fix: str) -> int:
    """An integer in [low, high]."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"{name} must be an integer in [{low}, {high}]; got {value!r}. {fix}")
    if not (low <= int(value) <= high):
        raise ValueError(f"{name} must lie in [{low}, {high}]; got {int(value)}. {fix}")
    return int(value)


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
