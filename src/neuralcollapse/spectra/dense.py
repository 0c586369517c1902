"""Exact spectra of small operators: build the p x p matrix, ``torch.linalg.eigh`` it.

The reference the iterative estimates (Lanczos, Hutchinson, stochastic Lanczos quadrature) are
tested against; cost O(p) products or one dense Hessian, memory p^2, time O(p^3).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralcollapse.spectra.operators import MAX_DENSE

__all__ = ["DenseSpectrum", "dense_spectrum"]


@dataclass
class DenseSpectrum:
    """All eigenvalues, largest first (p,), their orthonormal eigenvectors (p, p), the matrix."""

    values: torch.Tensor
    vectors: torch.Tensor
    matrix: torch.Tensor

    @property
    def trace(self) -> float:
        return float(self.values.sum())


def dense_spectrum(operator: object, max_dim: int = MAX_DENSE) -> DenseSpectrum:
    """The exact spectrum of a SpectralOperator (via ``dense()``) or of a symmetric matrix."""
    if isinstance(operator, torch.Tensor):
        if operator.dim() != 2 or operator.shape[0] != operator.shape[1]:
            raise ValueError(f"expected a square matrix; got shape {tuple(operator.shape)}")
        matrix = 0.5 * (operator + operator.T).to(torch.float64)
    elif hasattr(operator, "dense"):
        matrix = operator.dense(max_dim)
    else:
        raise TypeError(
            f"expected a SpectralOperator or a square tensor; got {type(operator).__name__}"
        )
    values, vectors = torch.linalg.eigh(matrix)
    return DenseSpectrum(values.flip(0), vectors.flip(1), matrix)
