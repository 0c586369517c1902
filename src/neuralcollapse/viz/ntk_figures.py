"""Figures of the NTK comparison (Tirer, Bruna & Giryes 2021): each function returns a Figure.

Built on :class:`matplotlib.figure.Figure` without pyplot, so nothing global changes (no
backend switch, no open figures); :func:`neuralcollapse.viz.ntk_report.ntk_report_figures` saves
them for the CLI and the demo embeds them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from matplotlib.figure import Figure

from neuralcollapse.ntk.compare import SmoothnessRow
from neuralcollapse.ntk.empirical import ConvergencePoint
from neuralcollapse.ntk.smoothness import Kernel, fit_ridgeless, kernel_profile, paper_target

#: figures whose legend sits outside the axes are saved with a tight bounding box
TIGHT_FIGURES = ("interpolants",)


def _style(label: str) -> dict[str, object]:
    # the MLP is the reference: black and dashed, so the ResNet colours read as a family
    return {"color": "black", "linestyle": "--"} if label.startswith("MLP") else {}


def plot_kernel_profiles(kernels: Sequence[Kernel]) -> Figure:
    """Normalised profiles ``k(gamma)/k(0)`` on the circle, full range and zoom near 0."""
    figure = Figure(figsize=(10, 4), layout="constrained")
    full, zoom = figure.subplots(1, 2)
    gammas = torch.linspace(-math.pi, math.pi, 721, dtype=torch.float64)
    near = torch.linspace(-0.3, 0.3, 301, dtype=torch.float64)
    for kernel in kernels:
        label = getattr(kernel, "label", repr(kernel))
        full.plot(gammas, kernel_profile(kernel, gammas), label=label, **_style(label))
        zoom.plot(near, kernel_profile(kernel, near), label=label, **_style(label))
    full.set(xlabel="angle gamma", ylabel="k(gamma) / k(0)", title="NTK profile on the circle")
    zoom.set(xlabel="angle gamma", title="zoom: the cusp at 0")
    full.legend(fontsize=8)
    for axis in (full, zoom):
        axis.grid(alpha=0.3)
    return figure


def plot_interpolants(
    kernels: Sequence[Kernel],
    training_sets: Sequence[tuple[str, torch.Tensor]],
) -> Figure:
    """Ridgeless interpolants of ``0.5 cos t + sin 4t``, one panel per training set."""
    figure = Figure(figsize=(5.5 * len(training_sets), 4), layout="constrained")
    axes = figure.subplots(1, len(training_sets), squeeze=False)
    grid = torch.linspace(0.0, 2.0 * math.pi, 1201, dtype=torch.float64)
    for axis, (title, angles) in zip(axes[0], training_sets, strict=True):
        axis.plot(grid, paper_target(grid), color="grey", linewidth=3, alpha=0.4, label="target")
        for kernel in kernels:
            label = getattr(kernel, "label", repr(kernel))
            interpolant = fit_ridgeless(kernel, angles)
            axis.plot(grid, interpolant(grid), label=label, linewidth=1.2, **_style(label))
        axis.plot(angles, paper_target(angles), "o", color="black", label="training points")
        axis.set(xlabel="angle t", title=title)
        axis.grid(alpha=0.3)
    axes[0][0].set_ylabel("f(t)")
    # one legend under the panels, so that no curve is hidden behind it
    handles, labels = axes[0][0].get_legend_handles_labels()
    figure.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, -0.2), ncol=4)
    return figure


def plot_kinks_vs_alpha(rows: Sequence[SmoothnessRow]) -> Figure:
    """Mean |kink| of the interpolants and profile slope against alpha (MLP as a line)."""
    resnets = [row for row in rows if row.alpha is not None]
    mlps = [row for row in rows if row.alpha is None]
    alphas = [row.alpha for row in resnets]
    figure = Figure(figsize=(10, 4), layout="constrained")
    kinks, slopes = figure.subplots(1, 2)
    kinks.plot(alphas, [r.equispaced_kink for r in resnets], "o-", label="ResNet, equispaced")
    kinks.plot(alphas, [r.random_kink for r in resnets], "s-", label="ResNet, random (mean)")
    slopes.plot(alphas, [-r.profile_slope for r in resnets], "o-", label="ResNet")
    for mlp in mlps:
        kinks.axhline(mlp.equispaced_kink, color="black", linestyle="--", label="MLP, equispaced")
        kinks.axhline(mlp.random_kink, color="black", linestyle=":", label="MLP, random (mean)")
        slopes.axhline(-mlp.profile_slope, color="black", linestyle="--", label=mlp.model)
    kinks.set(xlabel="alpha", ylabel="mean |f'(t_i+) - f'(t_i-)|", title="kinks at training points")
    slopes.set(xlabel="alpha", ylabel="-d/dgamma k(gamma)/k(0) at 0+", title="cusp of the profile")
    for axis in (kinks, slopes):
        axis.set_xscale("log")
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    return figure


def plot_ntk_convergence(points: Sequence[ConvergencePoint]) -> Figure:
    """Relative error of the empirical NTK against width, with a ``1/sqrt(m)`` guide."""
    figure = Figure(figsize=(5.5, 4), layout="constrained")
    axis = figure.subplots()
    groups: dict[str, list[ConvergencePoint]] = {}
    for point in points:
        name = "MLP" if point.alpha is None else f"ResNet, alpha={point.alpha:g}"
        groups.setdefault(f"{name} (L={point.depth})", []).append(point)
    for name, group in groups.items():
        widths = [p.width for p in group]
        axis.errorbar(
            widths,
            [p.mean_relative_error for p in group],
            yerr=[p.std_relative_error for p in group],
            marker="o",
            capsize=3,
            label=name,
        )
    all_widths = sorted({p.width for p in points})
    if all_widths:
        first = [p.mean_relative_error for p in points if p.width == all_widths[0]]
        anchor = max(first)
        guide = [anchor * math.sqrt(all_widths[0] / w) for w in all_widths]
        axis.plot(all_widths, guide, color="grey", linestyle=":", label="~ 1/sqrt(width)")
    axis.set(
        xscale="log",
        yscale="log",
        xlabel="width m",
        ylabel="||Theta_emp - Theta||_F / ||Theta||_F",
        title="empirical NTK -> analytic NTK",
    )
    axis.grid(alpha=0.3, which="both")
    axis.legend(fontsize=7)
    return figure
