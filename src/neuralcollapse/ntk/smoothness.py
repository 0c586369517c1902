"""Smoothness of NTK interpolation on the unit circle (Tirer, Bruna & Giryes, MSML 2021).

On the unit circle ``x(t) = (cos t, sin t)`` every kernel here depends only on the angle
difference, ``k(x(t), x(t')) = k(t - t')``, and it is a function of ``|t - t'|`` with a
cusp at 0: its one-sided slope ``k'(0+)`` is negative and finite. Two views of smoothness:

- the *profile* ``k(gamma)/k(0)`` and its slope at ``0+``: a flatter cusp is smoother.
  For the MLP with L hidden layers the slope is exactly ``-L/(2 pi)`` (each of the L
  ReLU-derivative factors ``(pi - t)/(2 pi)`` loses ``gamma/(2 pi)`` while the forward
  moments are flat at 0, and all angles track gamma to first order);
- *ridgeless kernel regression*: the minimum-norm interpolant
  ``f(t) = sum_i c_i k(t - t_i)`` with ``K c = y`` of a target sampled at a few points.
  Only the term ``c_i k(t - t_i)`` is non-smooth at ``t_i``, so ``f`` has a kink there of
  size ``f'(t_i+) - f'(t_i-) = 2 c_i k'(0+)``. Smaller kinks mean a smoother interpolant.

The target of the paper's experiment is ``0.5 cos t + sin 4t``.

References
----------
T. Tirer, J. Bruna and R. Giryes, "Kernel-based smoothness analysis of residual networks",
MSML 2021.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from neuralcollapse.checks import check_float, check_int

Kernel = Callable[..., torch.Tensor]


def circle_points(angles: object) -> torch.Tensor:
    """Points ``(cos t, sin t)`` on the unit circle, shape (n, 2), float64."""
    t = torch.as_tensor(np.asarray(angles, dtype=np.float64)).reshape(-1)
    if not torch.isfinite(t).all():
        raise ValueError("angles contain NaN or inf")
    return torch.stack([torch.cos(t), torch.sin(t)], dim=1)


def paper_target(angles: object) -> torch.Tensor:
    """The regression target of Tirer, Bruna & Giryes: ``0.5 cos t + sin 4t``."""
    t = torch.as_tensor(np.asarray(angles, dtype=np.float64))
    return 0.5 * torch.cos(t) + torch.sin(4.0 * t)


def kernel_profile(kernel: Kernel, gammas: object) -> torch.Tensor:
    """The normalised profile ``k(gamma)/k(0)`` on the unit circle.

    Parameters
    ----------
    kernel : callable
        ``kernel(x1, x2) -> (n1, n2)`` Gram (e.g. :class:`~.analytic.MLPKernel`).
    gammas : array-like
        Angles between the two points.

    Returns
    -------
    torch.Tensor
        float64 profile, 1 at gamma = 0.
    """
    origin = circle_points([0.0])
    values = kernel(origin, circle_points(gammas))[0]
    return values / kernel(origin, origin)[0, 0]


def profile_slope_at_zero(kernel: Kernel, *, step: float = 1e-4) -> float:
    """One-sided slope ``d/dgamma [k(gamma)/k(0)]`` at ``gamma = 0+``.

    The profile is smooth in gamma on (0, pi) with an expansion
    ``1 + a gamma + b gamma^2 + O(gamma^3)``, so the forward difference
    ``D(h) = (p(h) - 1)/h = a + b h + ...`` is Richardson-extrapolated: ``2 D(h/2) - D(h)``
    has error O(h^2).

    Parameters
    ----------
    kernel : callable
        ``kernel(x1, x2) -> Gram``.
    step : float
        The step h (default 1e-4: truncation ~1e-8, rounding ~1e-12, as the kernels keep
        full precision for nearly parallel inputs).

    Returns
    -------
    float
        The slope a (negative for ReLU kernels; -L/(2 pi) for the L-layer MLP).
    """
    step = check_float(
        "step",
        step,
        minimum=0.0,
        maximum=0.1,
        strict=True,
        meaning="the finite-difference step h in radians",
        hint="The default 1e-4 balances truncation and rounding error",
    )
    profile = kernel_profile(kernel, [step / 2.0, step])
    coarse = (float(profile[1]) - 1.0) / step
    fine = (float(profile[0]) - 1.0) / (step / 2.0)
    return 2.0 * fine - coarse


def training_angles(
    num_points: int, sampling: str = "equispaced", *, seed: int = 0
) -> torch.Tensor:
    """Training angles on [0, 2 pi): ``2 pi i / n`` or n sorted uniform draws.

    Parameters
    ----------
    num_points : int
        Number of training points n >= 2.
    sampling : {"equispaced", "random"}
        Equally spaced or uniformly random (sorted) angles.
    seed : int
        Seed of the random draw.
    """
    num_points = check_int(
        "num_points", num_points, minimum=2, meaning="training points on the circle"
    )
    if sampling == "equispaced":
        return 2.0 * math.pi * torch.arange(num_points, dtype=torch.float64) / num_points
    if sampling == "random":
        # as a Python int: torch's generator refuses NumPy integers
        generator = torch.Generator().manual_seed(check_int("seed", seed))
        draws = torch.rand(num_points, generator=generator, dtype=torch.float64)
        return torch.sort(2.0 * math.pi * draws).values
    raise ValueError(f"sampling must be 'equispaced' or 'random'; got {sampling!r}")


@dataclass
class CircleInterpolant:
    """Ridgeless kernel interpolant ``f(t) = sum_i c_i k(t - t_i)`` on the unit circle."""

    kernel: Kernel
    train_angles: torch.Tensor
    coefficients: torch.Tensor

    def __call__(self, angles: object) -> torch.Tensor:
        """Values ``f(t)`` at the given angles (float64)."""
        cross = self.kernel(circle_points(angles), circle_points(self.train_angles))
        return cross @ self.coefficients

    def kinks(self) -> torch.Tensor:
        """Kink sizes ``f'(t_i+) - f'(t_i-) = 2 c_i k'(0+)`` at the training points.

        ``k'(0+)`` is the unnormalised one-sided slope, ``k(0)`` times
        :func:`profile_slope_at_zero`. Independent of the kernel's overall scale.
        """
        origin = circle_points([0.0])
        scale = float(self.kernel(origin, origin)[0, 0])
        return 2.0 * self.coefficients * scale * profile_slope_at_zero(self.kernel)

    def numerical_kinks(self, *, step: float | None = None) -> torch.Tensor:
        """Kink sizes from one-sided second-order differences of ``f`` (a cross-check).

        ``f'(t+) ~ (-3 f(t) + 4 f(t+h) - f(t+2h)) / (2h)`` and the mirror formula for
        ``f'(t-)``; h defaults to 1e-4 of the smallest gap, so no other kink is crossed.
        """
        angles = self.train_angles
        if step is not None:
            step = check_float("step (h)", step, minimum=0, strict=True, hint="e.g. 1e-5")
        if step is None:
            gaps = torch.diff(torch.cat([angles, angles[:1] + 2.0 * math.pi]))
            step = 1e-4 * float(gaps.min())
        offsets = torch.tensor([0.0, step, 2.0 * step, -step, -2.0 * step], dtype=torch.float64)
        values = self((angles[:, None] + offsets[None, :]).reshape(-1)).reshape(-1, 5)
        right = (-3.0 * values[:, 0] + 4.0 * values[:, 1] - values[:, 2]) / (2.0 * step)
        left = (3.0 * values[:, 0] - 4.0 * values[:, 3] + values[:, 4]) / (2.0 * step)
        return right - left


def fit_ridgeless(
    kernel: Kernel,
    train_angles: object,
    targets: object | None = None,
    *,
    rcond: float = 1e-12,
) -> CircleInterpolant:
    """Minimum-norm kernel interpolant of ``targets`` at ``train_angles`` on the circle.

    Solves ``K c = y`` with the eigen-decomposition pseudo-inverse of the Gram ``K``
    (eigenvalues below ``rcond * max`` are dropped), i.e. the ridge -> 0 limit of kernel
    ridge regression, which is also what a wide network trained to zero loss from zero
    output computes in the NTK regime (Jacot et al. 2018).

    Parameters
    ----------
    kernel : callable
        ``kernel(x1, x2) -> Gram``.
    train_angles : array-like, shape (n,)
        Training angles (distinct modulo 2 pi).
    targets : array-like, shape (n,), optional
        Values to interpolate; default :func:`paper_target` at the angles.
    rcond : float
        Relative eigenvalue cut-off of the pseudo-inverse.

    Returns
    -------
    CircleInterpolant
    """
    rcond = check_float(
        "rcond", rcond, minimum=0, maximum=1, meaning="relative eigenvalue cut-off"
    )
    angles = torch.as_tensor(np.asarray(train_angles, dtype=np.float64)).reshape(-1)
    if angles.numel() < 2:
        raise ValueError("train_angles needs at least 2 angles")
    values = (
        paper_target(angles)
        if targets is None
        else torch.as_tensor(np.asarray(targets, dtype=np.float64)).reshape(-1)
    )
    if values.shape != angles.shape:
        raise ValueError(
            f"targets must have one value per training angle; got {values.numel()} values "
            f"for {angles.numel()} angles"
        )
    if not torch.isfinite(values).all():
        raise ValueError("targets contain NaN or inf")
    points = circle_points(angles)
    gram = kernel(points, points)
    gram = (gram + gram.T) / 2.0  # exact symmetry before eigh
    eigenvalues, eigenvectors = torch.linalg.eigh(gram)
    keep = eigenvalues > rcond * eigenvalues.abs().max()
    inverse = torch.where(keep, 1.0 / eigenvalues.where(keep, torch.ones_like(eigenvalues)), 0.0)
    coefficients = eigenvectors @ (inverse * (eigenvectors.T @ values))
    return CircleInterpolant(kernel=kernel, train_angles=angles, coefficients=coefficients)


@dataclass(frozen=True)
class SmoothnessSummary:
    """Smoothness figures of one kernel on one training set."""

    label: str
    profile_slope: float
    mean_abs_kink: float
    max_abs_kink: float
    rmse_to_target: float

    def to_dict(self) -> dict[str, object]:
        """Plain dict for tables."""
        return {
            "label": self.label,
            "profile_slope": self.profile_slope,
            "mean_abs_kink": self.mean_abs_kink,
            "max_abs_kink": self.max_abs_kink,
            "rmse_to_target": self.rmse_to_target,
        }


def summarize_smoothness(
    kernel: Kernel, train_angles: object, *, label: str = "", grid_size: int = 2048
) -> SmoothnessSummary:
    """Profile slope, kink sizes and test RMSE of the ridgeless fit of the paper's target.

    Parameters
    ----------
    kernel : callable
        ``kernel(x1, x2) -> Gram``.
    train_angles : array-like
        Training angles.
    label : str
        Name for tables.
    grid_size : int
        Equispaced test angles on which the RMSE to ``0.5 cos t + sin 4t`` is measured.
    """
    grid_size = check_int("grid_size", grid_size, minimum=1, meaning="test angles")
    interpolant = fit_ridgeless(kernel, train_angles)
    kinks = interpolant.kinks().abs()
    grid = 2.0 * math.pi * torch.arange(grid_size, dtype=torch.float64) / grid_size
    error = interpolant(grid) - paper_target(grid)
    return SmoothnessSummary(
        label=label,
        profile_slope=profile_slope_at_zero(kernel),
        mean_abs_kink=float(kinks.mean()),
        max_abs_kink=float(kinks.max()),
        rmse_to_target=float(error.pow(2).mean().sqrt()),
    )
