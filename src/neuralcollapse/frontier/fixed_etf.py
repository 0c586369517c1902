"""A classifier fixed to a simplex ETF, for users' own networks.

Zhu et al., "A geometric analysis of neural collapse with unconstrained features", NeurIPS
2021 (Sec. 5: fixing the last layer to a simplex ETF loses no accuracy and saves its
parameters); Yang, Chen, Li, Xie, Lin & Tao, "Inducing neural collapse in imbalanced learning:
do we really need a learnable classifier at the end of deep neural network?", NeurIPS 2022.

The weight is the unit-norm simplex ETF ``W`` (K x d), rows of pairwise cosine -1/(K-1):

    W W^T = K/(K-1) (I - 11^T/K),

built as ``sqrt(K/(K-1)) U P^T`` with U (K x (K-1)) an orthonormal basis of the vectors
orthogonal to 1 and P (d x (K-1)) orthonormal columns (the first K-1 coordinate axes, or a
Haar-random rotation with ``seed``), so d >= K - 1 suffices. It is a *buffer*: saved in the
``state_dict``, moved by ``.to()``, never returned by ``parameters()`` and so never updated
by an optimiser. Logits are ``scale * h W^T (+ b)``; with ``normalize_features=True`` the
features are divided by their norm first (Yang et al.'s setting), and ``scale`` is then the
logits' temperature.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralcollapse.checks import check_float, check_int

__all__ = ["FixedETFClassifier", "simplex_etf_rows"]


def simplex_etf_rows(
    num_classes: int, dim: int, *, seed: int | None = None, dtype: torch.dtype = torch.float64
) -> torch.Tensor:
    """K unit rows in R^d (d >= K - 1) with pairwise cosine -1/(K-1) (module docstring)."""
    k = check_int("num_classes (K)", num_classes, minimum=2)
    d = check_int(
        "in_features (d)",
        dim,
        minimum=k - 1,
        meaning=f"a simplex ETF of K = {k} classes spans K - 1 = {k - 1} dimensions",
        hint="widen the penultimate layer, or see neuralcollapse.frontier.softmax_codes for "
        "K > d + 1",
    )
    centred = torch.eye(k, dtype=torch.float64) - 1.0 / k
    # the left singular vectors of I - J with singular value 1: K-1 orthonormal columns
    left, singular, _ = torch.linalg.svd(centred)
    basis = left[:, : k - 1]
    if seed is None:
        axes = torch.eye(d, k - 1, dtype=torch.float64)
    else:
        generator = torch.Generator().manual_seed(check_int("seed", seed))
        gaussian = torch.randn(d, k - 1, generator=generator, dtype=torch.float64)
        q, r = torch.linalg.qr(gaussian)
        axes = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    rows = math.sqrt(k / (k - 1)) * basis @ axes.T
    return rows.to(dtype)


class FixedETFClassifier(nn.Module):
    """``nn.Linear``-like head whose weight is a fixed simplex ETF (a buffer, not a parameter).

    Parameters
    ----------
    in_features : d >= num_classes - 1.
    num_classes : K >= 2.
    bias : add a learnable bias (default False).
    scale : fixed positive factor on the logits (default 1).
    normalize_features : divide each feature by its norm before the product.
    seed : rotate the frame by a Haar-random rotation drawn with this seed (default: axes).

    Examples
    --------
    >>> head = FixedETFClassifier(64, 10)
    >>> sum(p.numel() for p in head.parameters())
    0
    """

    weight: torch.Tensor

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        bias: bool = False,
        scale: float = 1.0,
        normalize_features: bool = False,
        seed: int | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        self.in_features = check_int("in_features (d)", in_features, minimum=1)
        self.num_classes = check_int("num_classes (K)", num_classes, minimum=2)
        self.scale = check_float("scale", scale, minimum=0.0, strict=True)
        if not isinstance(bias, bool) or not isinstance(normalize_features, bool):
            raise TypeError("bias and normalize_features must be True or False")
        self.normalize_features = normalize_features
        dtype = dtype or torch.get_default_dtype()
        weight = simplex_etf_rows(num_classes, in_features, seed=seed, dtype=dtype)
        self.register_buffer("weight", weight)
        self.bias = nn.Parameter(torch.zeros(num_classes, dtype=dtype)) if bias else None

    @property
    def out_features(self) -> int:
        return self.num_classes

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        if features.shape[-1] != self.in_features:
            raise ValueError(
                f"FixedETFClassifier expects features with {self.in_features} entries in the "
                f"last dimension; got shape {tuple(features.shape)}"
            )
        if self.normalize_features:
            features = nn.functional.normalize(features, dim=-1)
        logits = nn.functional.linear(features, self.weight.to(features.dtype))
        if self.scale != 1.0:
            logits = logits * self.scale
        return logits if self.bias is None else logits + self.bias

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, num_classes={self.num_classes}, "
            f"bias={self.bias is not None}, scale={self.scale:g}, "
            f"normalize_features={self.normalize_features}"
        )
