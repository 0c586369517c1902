"""Figures of UFM solutions: GD trajectories and phase diagrams (matplotlib, Agg backend)."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from neuralcollapse.ufm.solve import UFMSolution  # noqa: E402
from neuralcollapse.ufm.sweep import SweepResult  # noqa: E402

GEOMETRY_CODES = {"zero": 0, "etf": 1, "between": 2, "of": 3, "other": 4}


def _positive_or_nan(values) -> np.ndarray:
    out = np.array([np.nan if v is None else float(v) for v in values], dtype=float)
    return np.where(out > 0, out, np.nan)


def plot_solution(solution: UFMSolution, path: str | Path) -> Path:
    """Convergence (gap to theory, NC1 for GD) and the class-means Gram vs theory."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    steps_key = "step" if solution.solver == "gd" else "iteration"
    steps = [row[steps_key] for row in solution.trajectory]
    ax = axes[0]
    if solution.theory.available:
        ax.semilogy(steps, np.abs(_nan_none([r["rel_gap"] for r in solution.trajectory])) + 1e-17)
        ax.set_ylabel("|f - f*| / f*")
    else:
        ax.plot(steps, [r["objective"] for r in solution.trajectory])
        ax.set_ylabel("objective")
    ax.set_xlabel(steps_key)
    ax.set_title(f"{solution.solver}: convergence")
    ax = axes[1]
    if solution.solver == "gd":
        ax.semilogy(steps, _positive_or_nan([r["nc1"] for r in solution.trajectory]), label="NC1")
        ax.semilogy(
            steps,
            _positive_or_nan([r["of_gap_means"] for r in solution.trajectory]),
            label="OF gap (means)",
        )
        ax.semilogy(
            steps,
            _positive_or_nan([r["etf_gap_means"] for r in solution.trajectory]),
            label="ETF gap (centred means)",
        )
        ax.legend(fontsize=8)
        ax.set_xlabel("step")
        ax.set_title("neural collapse metrics")
    else:
        ax.axis("off")
        m = solution.measurement.metrics or {}
        lines = [f"geometry: {solution.geometry} (theory: {solution.theory.geometry})"]
        lines += [
            f"{k}: {m[k]:.3g}"
            for k in ("nc1", "of_gap_means", "etf_gap_means", "global_mean_ratio")
            if m.get(k) is not None
        ]
        ax.text(0, 0.5, "\n".join(lines), fontsize=9, va="center")
    ax = axes[2]
    gram = solution.measurement.gram_means.numpy()
    image = ax.imshow(gram, cmap="RdBu_r", vmin=-np.abs(gram).max(), vmax=np.abs(gram).max())
    fig.colorbar(image, ax=ax)
    ax.set_title("Hbar^T Hbar (found)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _nan_none(values) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in values], dtype=float)


def plot_sweep(result: SweepResult, path: str | Path) -> Path:
    """Phase diagram of a sweep.

    2-D grid: heat maps of the measured geometry (zero / ETF / between / OF), the OF gap of
    the class means and log10 of the relative gap to theory, with theory's zero threshold
    drawn as a contour. 1-D grid: OF gap, ETF gap and global-mean ratio against the swept
    penalty (the lam_b sweep shows the means moving from an ETF to an orthogonal frame),
    with the OF reference ratio 1/sqrt(K).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(result.axes)
    rows = result.rows
    if len(names) == 1:
        name = names[0]
        x = [row[name] for row in rows]
        fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
        ax = axes[0]
        for key, label in (
            ("of_gap_means", "OF gap (uncentred means)"),
            ("etf_gap_means", "ETF gap (centred means)"),
            ("global_mean_ratio", "||mu_G|| / mean ||mu_k||"),
        ):
            ax.semilogx(x, _nan_none([row[key] for row in rows]), marker="o", label=label)
        ax.axhline(
            1 / math.sqrt(result.base.num_classes),
            color="grey",
            ls=":",
            label="1/sqrt(K) (OF ratio)",
        )
        ax.set_xlabel(name)
        ax.legend(fontsize=8)
        ax.set_title("class-means geometry")
        ax = axes[1]
        ax.loglog(x, np.abs(_nan_none([row["rel_gap"] for row in rows])) + 1e-17, marker="o")
        ax.set_xlabel(name)
        ax.set_ylabel("|f - f*| / f*")
        ax.set_title("gap to theory")
    else:
        if len(names) != 2:
            raise ValueError(f"plot_sweep draws 1-D or 2-D grids; this one has axes {names}")
        xs, ys = result.axes[names[0]], result.axes[names[1]]
        shape = (len(xs), len(ys))

        def grid(key, transform=lambda v: v):
            return np.array([transform(row[key]) for row in rows], dtype=float).reshape(shape).T

        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        panels = (
            (
                "measured geometry (0 zero, 1 ETF, 2 between, 3 OF)",
                grid("geometry", lambda g: GEOMETRY_CODES.get(g, 4)),
                "viridis",
            ),
            (
                "OF gap of class means",
                grid("of_gap_means", lambda v: np.nan if v is None else v),
                "magma",
            ),
            (
                "log10 |rel. gap to theory|",
                grid("rel_gap", lambda v: np.nan if v is None else np.log10(abs(v) + 1e-17)),
                "cividis",
            ),
        )
        control = grid("control", lambda v: np.nan if v is None else v)
        threshold = rows[0]["threshold"]
        for ax, (title, values, cmap) in zip(axes, panels, strict=True):
            mesh = ax.pcolormesh(xs, ys, values, cmap=cmap, shading="nearest")
            fig.colorbar(mesh, ax=ax)
            if threshold is not None and np.isfinite(control).any():
                ax.contour(xs, ys, control, levels=[threshold], colors="white", linewidths=1.5)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel(names[0])
            ax.set_ylabel(names[1])
            ax.set_title(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
