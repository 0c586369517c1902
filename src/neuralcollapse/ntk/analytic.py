"""Infinite-width neural tangent kernels of a ReLU MLP and of a residual ReLU network.

Both networks are in the NTK parametrisation: every weight is N(0, 1) and each layer
divides by the square root of its fan-in in the forward pass; there are no biases.

MLP with L hidden layers (width m -> infinity), input x in R^d::

    h_1 = W_1 x / sqrt(d),  h_{l+1} = W_{l+1} s(h_l) / sqrt(m),  f(x) = v . s(h_L) / sqrt(m)

ResNet with L blocks and residual scale alpha (Tirer, Bruna & Giryes 2021)::

    g_1 = A x / sqrt(d),  g_{l+1} = g_l + (alpha / sqrt(m)) V_l s(W_l g_l / sqrt(m)),
    f(x) = v . g_{L+1} / sqrt(m)

Derivation (Jacot, Gabriel & Hongler 2018). The NTK is
``Theta(x, x') = sum_p (df(x)/dp) (df(x')/dp)``. For a weight matrix used as
``h = W u / sqrt(fan_in)`` the gradient is ``delta u^T / sqrt(fan_in)`` with
``delta = df/dh``, so its share of the NTK is ``(delta . delta') (u . u') / fan_in``. At
infinite width both factors concentrate (and the backward weights may be treated as
independent of the forward ones), which gives a forward covariance and a backward
covariance per layer.

MLP. Forward: ``S_0 = x.x'/d`` and ``S_l = E[s s]`` under the covariance ``S_{l-1}``
(:func:`relu_moment`). Backward: each ReLU multiplies the backward covariance by
``Sd_l = E[s' s']`` under ``S_{l-1}``. The layer fed by ``S_l`` (``W_{l+1}``, or ``v`` for
l = L) contributes ``S_l prod_{j>l} Sd_j``, so ::

    Theta_MLP = sum_{l=0}^{L} S_l prod_{j=l+1}^{L} Sd_j.

ResNet. Forward: ``K_1 = x.x'/d`` and, since V_l is independent of everything before it,
``K_{l+1} = K_l + alpha^2 E_{K_l}[s s]``. Backward: with ``b_l = sqrt(m) df/dg_l``,
``b_l = b_{l+1} + (alpha/m) W_l^T diag(s') V_l^T b_{l+1}``, so its covariance is
``P_l = prod_{j=l}^{L} (1 + alpha^2 E_{K_j}[s' s'])`` (``P_{L+1} = 1``). The shares:
``v`` gives ``K_{L+1}``; ``V_l`` gives ``alpha^2 P_{l+1} E_{K_l}[s s]``; ``W_l`` gives
``alpha^2 P_{l+1} K_l E_{K_l}[s' s']``; ``A`` gives ``P_1 K_1``. Hence ::

    Theta_ResNet = K_{L+1} + sum_{l=1}^{L} alpha^2 P_{l+1} (E_{K_l}[s s] + K_l E_{K_l}[s' s'])
                   + P_1 K_1,

which agrees with docs/theory.md and, as alpha -> 0, tends to ``2 x.x'/d`` (the read-out
and the embedding of a linear network). :mod:`neuralcollapse.ntk.empirical` checks both
formulas against finite-width networks.

Scale convention: the ReLU is not rescaled by sqrt(2) (no He factor), as in docs/theory.md;
the MLP kernel therefore shrinks like 2^-L on the diagonal. The normalised profiles and
the ridgeless interpolants do not depend on this overall scale.

References
----------
A. Jacot, F. Gabriel and C. Hongler, "Neural tangent kernel", NeurIPS 2018.
Y. Cho and L. K. Saul, "Kernel methods for deep learning", NeurIPS 2009.
T. Tirer, J. Bruna and R. Giryes, "Kernel-based smoothness analysis of residual networks",
MSML 2021.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralcollapse.ntk.relu_moments import (
    angle_from_gap,
    arccos_kernel_0,
    arccos_kernel_1,
    arccos_kernel_1_gap,
)
from neuralcollapse.ntk.validation import check_alpha, check_depth, check_input_pair


def mlp_ntk_from_gap(
    sq_norm_a: torch.Tensor, sq_norm_b: torch.Tensor, gap: torch.Tensor, depth: int
) -> torch.Tensor:
    """MLP NTK from ``|x|^2/d``, ``|x'|^2/d`` and the cosine gap ``1 - cos(x, x')``.

    Parameters
    ----------
    sq_norm_a, sq_norm_b : torch.Tensor
        ``|x|^2/d`` and ``|x'|^2/d`` (broadcastable, float64, positive).
    gap : torch.Tensor
        ``1 - x.x'/(|x| |x'|)`` in [0, 2], computed without cancellation (see
        :mod:`neuralcollapse.ntk.relu_moments`).
    depth : int
        Number of hidden layers L >= 1.

    Returns
    -------
    torch.Tensor
        ``Theta_MLP = sum_{l=0}^{L} S_l prod_{j>l} Sd_j`` element-wise (module docstring).
    """
    # S_l = sqrt(a_l b_l) cos t_l with a_l = a 2^-l: track the scale and the angle apart
    scale = torch.sqrt(sq_norm_a * sq_norm_b)
    theta = scale * (1.0 - gap)  # S_0
    for _ in range(depth):
        angle = angle_from_gap(gap)
        # Horner form of the sum of products: Theta_l = Theta_{l-1} Sd_l + S_l
        theta = theta * arccos_kernel_0(angle) + scale * arccos_kernel_1(angle, gap) / 2.0
        gap = arccos_kernel_1_gap(angle, gap)
        scale = scale / 2.0  # E[s(u)^2] = Var(u) / 2
    return theta


def resnet_ntk_from_gap(
    sq_norm_a: torch.Tensor,
    sq_norm_b: torch.Tensor,
    gap: torch.Tensor,
    depth: int,
    alpha: float,
) -> torch.Tensor:
    """ResNet NTK from ``|x|^2/d``, ``|x'|^2/d`` and the cosine gap ``1 - cos(x, x')``.

    Parameters
    ----------
    sq_norm_a, sq_norm_b : torch.Tensor
        ``|x|^2/d`` and ``|x'|^2/d`` (broadcastable, float64, positive).
    gap : torch.Tensor
        ``1 - x.x'/(|x| |x'|)`` in [0, 2], computed without cancellation.
    depth : int
        Number of residual blocks L >= 1.
    alpha : float
        Residual branch scale alpha >= 0.

    Returns
    -------
    torch.Tensor
        ``K_{L+1} + sum_l alpha^2 P_{l+1} (E[s s] + K_l E[s' s']) + P_1 K_1`` element-wise.
    """
    alpha_sq = alpha * alpha
    growth = 1.0 + alpha_sq / 2.0  # K_{l+1}(x, x) = K_l(x, x) (1 + alpha^2 / 2)
    scale = torch.sqrt(sq_norm_a * sq_norm_b)  # sqrt(K_l(x, x) K_l(x', x'))
    covariances, moments, derivative_moments = [], [], []
    for _ in range(depth):
        angle = angle_from_gap(gap)
        covariances.append(scale * (1.0 - gap))
        moments.append(scale * arccos_kernel_1(angle, gap) / 2.0)
        derivative_moments.append(arccos_kernel_0(angle))
        # 1 - cos t_{l+1} = (g_l + alpha^2 (1 - kappa_1(t_l)) / 2) / (1 + alpha^2 / 2)
        gap = (gap + alpha_sq * arccos_kernel_1_gap(angle, gap) / 2.0) / growth
        scale = scale * growth
    theta = scale * (1.0 - gap)  # the read-out v sees K_{L+1}
    backward = torch.ones_like(theta)  # P_{l+1}, built from the last block down
    for block in reversed(range(depth)):
        branch = moments[block] + covariances[block] * derivative_moments[block]
        theta = theta + alpha_sq * backward * branch
        backward = backward * (1.0 + alpha_sq * derivative_moments[block])
    return theta + backward * covariances[0]  # the embedding A: P_1 K_1


def _norms_and_gap(x1: torch.Tensor, x2: torch.Tensor, pairwise: bool):
    """``|x|^2/d``, ``|x'|^2/d`` and ``1 - cos`` (as ``|u - u'|^2 / 2`` of unit vectors)."""
    dim = x1.shape[1]
    norm_a, norm_b = x1.norm(dim=1), x2.norm(dim=1)
    unit_a, unit_b = x1 / norm_a[:, None], x2 / norm_b[:, None]
    if pairwise:
        if x1.shape[0] != x2.shape[0]:
            raise ValueError(
                "pairwise=True pairs row i of x1 with row i of x2, so they need the same "
                f"number of rows; got {x1.shape[0]} and {x2.shape[0]}"
            )
        gap = (unit_a - unit_b).pow(2).sum(dim=1) / 2.0
        return norm_a**2 / dim, norm_b**2 / dim, gap
    # direct differences, not 2 - 2 u.u': the latter loses the small gaps to cancellation
    distance = torch.cdist(unit_a, unit_b, compute_mode="donot_use_mm_for_euclid_dist")
    return (norm_a**2 / dim)[:, None], (norm_b**2 / dim)[None, :], distance.pow(2) / 2.0


# a Gram matrix is built in row blocks of about this many entries, so that the recursion's
# per-layer temporaries (a few per block and layer) stay small whatever n1 and n2 are
_BLOCK_ENTRIES = 1 << 21


def _evaluate(first: torch.Tensor, second: torch.Tensor, pairwise: bool, from_gap) -> torch.Tensor:
    if pairwise:
        return from_gap(*_norms_and_gap(first, second, pairwise=True))
    rows = max(1, _BLOCK_ENTRIES // second.shape[0])
    blocks = [
        from_gap(*_norms_and_gap(first[start : start + rows], second, pairwise=False))
        for start in range(0, first.shape[0], rows)
    ]
    return torch.cat(blocks) if len(blocks) > 1 else blocks[0]


def mlp_ntk(
    x1: object, x2: object | None = None, *, depth: int, pairwise: bool = False
) -> torch.Tensor:
    """Analytic infinite-width NTK of a bias-free ReLU MLP with ``depth`` hidden layers.

    ``Theta = sum_{l=0}^{L} S_l prod_{j>l} Sd_j`` with ``S_0 = x.x'/d``, ``S_l = E[s s]`` and
    ``Sd_l = E[s' s']`` under ``S_{l-1}`` (module docstring; Jacot et al. 2018).

    Parameters
    ----------
    x1 : array or tensor, shape (n1, d)
        Inputs, one per row (numpy or torch, any float dtype; no zero rows).
    x2 : array or tensor, shape (n2, d), optional
        Second set of inputs; ``None`` means ``x1`` (a Gram matrix).
    depth : int
        Number of hidden layers L >= 1.
    pairwise : bool
        If True, return ``Theta(x1[i], x2[i])`` for each i (shape (n,)) instead of the
        (n1, n2) matrix; use it for many input pairs without forming a matrix.

    Returns
    -------
    torch.Tensor
        float64 kernel values on the device of ``x1``.

    Examples
    --------
    >>> import torch
    >>> gram = mlp_ntk(torch.randn(5, 3), depth=2)   # (5, 5), symmetric PSD
    """
    depth = check_depth(depth)
    first, second = check_input_pair(x1, x2)
    return _evaluate(first, second, pairwise, lambda a, b, g: mlp_ntk_from_gap(a, b, g, depth))


def resnet_ntk(
    x1: object,
    x2: object | None = None,
    *,
    depth: int,
    alpha: float,
    pairwise: bool = False,
) -> torch.Tensor:
    """Analytic infinite-width NTK of the residual ReLU network of Tirer, Bruna & Giryes.

    ``Theta = K_{L+1} + sum_{l=1}^{L} alpha^2 P_{l+1} (E_{K_l}[s s] + K_l E_{K_l}[s' s'])
    + P_1 K_1`` (module docstring); it tends to ``2 x.x'/d`` as alpha -> 0.

    Parameters
    ----------
    x1 : array or tensor, shape (n1, d)
        Inputs, one per row (numpy or torch, any float dtype; no zero rows).
    x2 : array or tensor, shape (n2, d), optional
        Second set of inputs; ``None`` means ``x1``.
    depth : int
        Number of residual blocks L >= 1.
    alpha : float
        Residual branch scale alpha >= 0.
    pairwise : bool
        If True, return the kernel of row i of x1 with row i of x2 (shape (n,)).

    Returns
    -------
    torch.Tensor
        float64 kernel values on the device of ``x1``.

    References
    ----------
    T. Tirer, J. Bruna and R. Giryes, "Kernel-based smoothness analysis of residual
    networks", MSML 2021.
    """
    depth = check_depth(depth)
    alpha = check_alpha(alpha)
    first, second = check_input_pair(x1, x2)
    return _evaluate(
        first, second, pairwise, lambda a, b, g: resnet_ntk_from_gap(a, b, g, depth, alpha)
    )


@dataclass(frozen=True)
class MLPKernel:
    """The MLP NTK as a callable ``kernel(x1, x2=None) -> Gram`` (see :func:`mlp_ntk`)."""

    depth: int

    def __post_init__(self) -> None:
        check_depth(self.depth)

    @property
    def label(self) -> str:
        """Short name for tables and legends."""
        return f"MLP (L={self.depth})"

    @property
    def alpha(self) -> None:
        """An MLP has no residual scale (``None`` in tables)."""
        return None

    def __call__(self, x1: object, x2: object | None = None) -> torch.Tensor:
        return mlp_ntk(x1, x2, depth=self.depth)


@dataclass(frozen=True)
class ResNetKernel:
    """The ResNet NTK as a callable ``kernel(x1, x2=None) -> Gram`` (see :func:`resnet_ntk`)."""

    depth: int
    alpha: float

    def __post_init__(self) -> None:
        check_depth(self.depth)
        check_alpha(self.alpha)

    @property
    def label(self) -> str:
        """Short name for tables and legends."""
        return f"ResNet (L={self.depth}, alpha={self.alpha:g})"

    def __call__(self, x1: object, x2: object | None = None) -> torch.Tensor:
        return resnet_ntk(x1, x2, depth=self.depth, alpha=self.alpha)
