"""Gaussian moments of the ReLU: the arc-cosine kernels of degree 1 and 0.

For a centred Gaussian pair (u, u') with Var u = a, Var u' = b, Cov(u, u') = c, write
``cos t = c / sqrt(a b)`` (t in [0, pi] is the angle between the two inputs in the
reproducing space). Cho & Saul (2009) integrate the ReLU ``s(u) = max(u, 0)`` and its
derivative ``s'(u) = 1[u > 0]`` in closed form:

    E[s(u) s(u')]   = sqrt(a b) (sin t + (pi - t) cos t) / (2 pi)     (degree 1)
    E[s'(u) s'(u')] = (pi - t) / (2 pi)                                (degree 0)

Derivation sketch: write (u, u') = sqrt(a) (g1, cos t g1 + sin t g2) up to the scale of u',
with (g1, g2) standard normal; in polar coordinates the product is non-zero only on the
wedge of angle pi - t where both are positive, and the radial integral gives the formulas.
At t = 0 they reduce to E[s(u)^2] = a/2 and E[s'(u)^2] = 1/2.

These two maps are the building blocks of every infinite-width ReLU kernel
(Jacot, Gabriel & Hongler 2018; Tirer, Bruna & Giryes 2021). All functions here are
element-wise on broadcastable tensors, so a whole Gram matrix goes through one call.

References
----------
Y. Cho and L. K. Saul, "Kernel methods for deep learning", NeurIPS 2009.
"""

from __future__ import annotations

import math

import torch


def relu_angle(var_a: torch.Tensor, var_b: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """The angle ``t = arccos(cov / sqrt(var_a var_b))`` in [0, pi].

    Parameters
    ----------
    var_a, var_b, cov : torch.Tensor
        Variances of the two Gaussians and their covariance (broadcastable, positive variances).

    Returns
    -------
    torch.Tensor
        The angle, with the cosine clamped to [-1, 1] so rounding never produces NaN.
    """
    cosine = (cov / torch.sqrt(var_a * var_b)).clamp(-1.0, 1.0)
    return torch.arccos(cosine)


def relu_moment(var_a: torch.Tensor, var_b: torch.Tensor, cov: torch.Tensor) -> torch.Tensor:
    """``E[s(u) s(u')]`` for the ReLU s: ``sqrt(ab) (sin t + (pi - t) cos t) / (2 pi)``.

    Parameters
    ----------
    var_a, var_b, cov : torch.Tensor
        ``Var u``, ``Var u'`` and ``Cov(u, u')`` (broadcastable).

    Returns
    -------
    torch.Tensor
        The degree-1 arc-cosine kernel (Cho & Saul 2009), element-wise.
    """
    scale = torch.sqrt(var_a * var_b)
    cosine = (cov / scale).clamp(-1.0, 1.0)
    angle = torch.arccos(cosine)
    # sqrt(1 - cos^2) rather than sin(arccos(.)): same value, one fewer rounding near t = 0
    sine = torch.sqrt((1.0 - cosine * cosine).clamp_min(0.0))
    return scale * (sine + (math.pi - angle) * cosine) / (2.0 * math.pi)


def relu_derivative_moment(
    var_a: torch.Tensor, var_b: torch.Tensor, cov: torch.Tensor
) -> torch.Tensor:
    """``E[s'(u) s'(u')]`` for the ReLU s: ``(pi - t) / (2 pi)``.

    Parameters
    ----------
    var_a, var_b, cov : torch.Tensor
        ``Var u``, ``Var u'`` and ``Cov(u, u')`` (broadcastable).

    Returns
    -------
    torch.Tensor
        The degree-0 arc-cosine kernel (Cho & Saul 2009), element-wise; it does not depend
        on the scales, only on the angle.
    """
    return (math.pi - relu_angle(var_a, var_b, cov)) / (2.0 * math.pi)


# ---- the same moments in angle form, accurate for nearly parallel inputs ------------------
#
# arccos(c / sqrt(ab)) loses half the digits when the inputs are nearly parallel: a rounding
# of 1e-16 in the cosine moves t by 1e-8. The kernels therefore carry the *cosine gap*
# g = 1 - cos t, which is computed without cancellation (g = |a - b|^2 / 2 for unit vectors,
# and each layer maps g to a new gap through positive terms), and recover the angle as
# t = 2 asin(sqrt(g / 2)), which is exact to rounding for every t in [0, pi].


def angle_from_gap(gap: torch.Tensor) -> torch.Tensor:
    """The angle t in [0, pi] with ``1 - cos t = gap`` (``gap`` in [0, 2])."""
    return 2.0 * torch.asin(torch.sqrt((gap / 2.0).clamp(0.0, 1.0)))


def arccos_kernel_1(angle: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """Normalised degree-1 arc-cosine kernel ``(sin t + (pi - t) cos t) / pi``.

    Equals ``2 E[s(u) s(u')] / sqrt(ab)``; 1 at t = 0, 0 at t = pi.
    """
    return (torch.sin(angle) + (math.pi - angle) * (1.0 - gap)) / math.pi


def arccos_kernel_1_gap(angle: torch.Tensor, gap: torch.Tensor) -> torch.Tensor:
    """``1 - (sin t + (pi - t) cos t) / pi = (pi g - (sin t - t cos t)) / pi`` (no cancellation).

    For small t, ``pi g ~ pi t^2 / 2`` dominates ``sin t - t cos t ~ t^3 / 3``, so the
    absolute error stays at rounding level and the next layer's angle stays exact.
    """
    cosine = 1.0 - gap
    return ((math.pi * gap - (torch.sin(angle) - angle * cosine)) / math.pi).clamp_min(0.0)


def arccos_kernel_0(angle: torch.Tensor) -> torch.Tensor:
    """``E[s'(u) s'(u')] = (pi - t) / (2 pi)`` from the angle."""
    return (math.pi - angle) / (2.0 * math.pi)
