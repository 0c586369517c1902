"""Finite-width torch networks in the NTK parametrisation, matching :mod:`.analytic`.

Every weight is drawn N(0, 1) and each linear map divides by sqrt(fan_in) in the forward
pass (Jacot et al. 2018), so the infinite-width limit of the empirical NTK is exactly the
kernel of :mod:`neuralcollapse.ntk.analytic`; no biases. Each :class:`NTKLinear` can
record its input and output in a ``taps`` list, which is what lets
:func:`neuralcollapse.ntk.empirical.empirical_ntk` build the NTK layer by layer from one
forward and one backward pass instead of a full Jacobian.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralcollapse.ntk.validation import (
    check_alpha,
    check_depth,
    check_in_dim,
    check_seed,
    check_width,
)

Taps = list[tuple[torch.Tensor, torch.Tensor, int]]


class NTKLinear(nn.Module):
    """``h = u W^T / sqrt(fan_in)`` with ``W`` of shape (fan_out, fan_in), entries N(0, 1).

    Parameters
    ----------
    fan_in, fan_out : int
        Input and output sizes.
    generator : torch.Generator, optional
        Source of randomness for the initial weights (reproducible networks).
    dtype : torch.dtype
        Parameter dtype (float64 by default, as the kernels are compared in float64).
    """

    def __init__(
        self,
        fan_in: int,
        fan_out: int,
        *,
        generator: torch.Generator | None = None,
        dtype: torch.dtype = torch.float64,
    ) -> None:
        super().__init__()
        self.fan_in = fan_in
        weight = torch.randn(fan_out, fan_in, generator=generator, dtype=dtype)
        self.weight = nn.Parameter(weight)

    def forward(self, inputs: torch.Tensor, taps: Taps | None = None) -> torch.Tensor:
        outputs = inputs @ self.weight.T / math.sqrt(self.fan_in)
        if taps is not None:
            taps.append((inputs, outputs, self.fan_in))
        return outputs


class ReLUMLP(nn.Module):
    """Bias-free ReLU MLP with ``depth`` hidden layers of ``width`` units and a scalar output.

    ``h_1 = W_1 x / sqrt(d)``, ``h_{l+1} = W_{l+1} s(h_l) / sqrt(m)``, ``f = v . s(h_L) / sqrt(m)``.
    Its infinite-width NTK is :func:`neuralcollapse.ntk.analytic.mlp_ntk`.

    Parameters
    ----------
    in_dim : int
        Input dimension d.
    width : int
        Hidden width m.
    depth : int
        Number of hidden layers L >= 1.
    seed : int, optional
        Seed of the N(0, 1) initial weights.
    """

    def __init__(self, in_dim: int, width: int, depth: int, *, seed: int | None = None) -> None:
        super().__init__()
        depth, width, in_dim = check_depth(depth), check_width(width), check_in_dim(in_dim)
        seed = check_seed(seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        sizes = [in_dim] + [width] * depth
        self.hidden = nn.ModuleList(
            NTKLinear(sizes[i], sizes[i + 1], generator=generator) for i in range(depth)
        )
        self.readout = NTKLinear(width, 1, generator=generator)

    def forward(self, inputs: torch.Tensor, taps: Taps | None = None) -> torch.Tensor:
        activation = inputs
        for layer in self.hidden:
            activation = torch.relu(layer(activation, taps))
        return self.readout(activation, taps).squeeze(-1)


class ResidualReLUNet(nn.Module):
    """The residual network of Tirer, Bruna & Giryes (2021) with ``depth`` blocks.

    ``g_1 = A x / sqrt(d)``, ``g_{l+1} = g_l + (alpha / sqrt(m)) V_l s(W_l g_l / sqrt(m))``,
    ``f = v . g_{L+1} / sqrt(m)``. Its infinite-width NTK is
    :func:`neuralcollapse.ntk.analytic.resnet_ntk`.

    Parameters
    ----------
    in_dim : int
        Input dimension d.
    width : int
        Width m of the residual stream and of each block.
    depth : int
        Number of residual blocks L >= 1.
    alpha : float
        Residual branch scale alpha >= 0.
    seed : int, optional
        Seed of the N(0, 1) initial weights.
    """

    def __init__(
        self, in_dim: int, width: int, depth: int, alpha: float, *, seed: int | None = None
    ) -> None:
        super().__init__()
        depth, width, in_dim = check_depth(depth), check_width(width), check_in_dim(in_dim)
        self.alpha = check_alpha(alpha)
        seed = check_seed(seed)
        generator = None if seed is None else torch.Generator().manual_seed(seed)
        self.embed = NTKLinear(in_dim, width, generator=generator)
        self.inner = nn.ModuleList(
            NTKLinear(width, width, generator=generator) for _ in range(depth)
        )
        self.outer = nn.ModuleList(
            NTKLinear(width, width, generator=generator) for _ in range(depth)
        )
        self.readout = NTKLinear(width, 1, generator=generator)

    def forward(self, inputs: torch.Tensor, taps: Taps | None = None) -> torch.Tensor:
        stream = self.embed(inputs, taps)
        for inner, outer in zip(self.inner, self.outer, strict=True):
            # alpha multiplies the block's output after V_l, so V_l's own output is tapped
            stream = stream + self.alpha * outer(torch.relu(inner(stream, taps)), taps)
        return self.readout(stream, taps).squeeze(-1)


def build_network(
    architecture: str,
    *,
    in_dim: int,
    width: int,
    depth: int,
    alpha: float | None = None,
    seed: int | None = None,
) -> nn.Module:
    """The finite network matching ``architecture`` ("mlp" or "resnet", which needs alpha)."""
    if architecture == "mlp":
        return ReLUMLP(in_dim, width, depth, seed=seed)
    if architecture == "resnet":
        if alpha is None:
            raise ValueError("architecture 'resnet' needs alpha (the residual branch scale)")
        return ResidualReLUNet(in_dim, width, depth, alpha, seed=seed)
    raise ValueError(f"architecture must be 'mlp' or 'resnet'; got {architecture!r}")
