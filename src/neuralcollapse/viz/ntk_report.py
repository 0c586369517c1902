"""One call that produces every NTK figure and the comparison table (CLI and demo report).

:func:`ntk_report_figures` writes into ``out_dir``:

- ``ntk_profiles.png``: kernel profiles ``k(gamma)/k(0)`` (full range and the cusp at 0);
- ``ntk_interpolants.png``: ridgeless interpolants from equispaced and random points;
- ``ntk_kinks.png``: mean kink size and profile slope against alpha, the MLP as a line;
- ``ntk_convergence.png``: empirical-to-analytic relative error against width (unless
  ``widths=()``);
- ``ntk_table.csv``, ``ntk_table.md``, ``ntk_summary.json``: the comparison table
  (:mod:`neuralcollapse.ntk.compare`) and the convergence points.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuralcollapse import schema
from neuralcollapse.checks import check_int
from neuralcollapse.ntk.compare import (
    SmoothnessRow,
    compare_smoothness,
    comparison_kernels,
    rows_to_csv,
    rows_to_markdown,
)
from neuralcollapse.ntk.empirical import ConvergencePoint, ntk_convergence
from neuralcollapse.ntk.smoothness import training_angles
from neuralcollapse.ntk.validation import check_alphas, check_depth, check_width

QUICK_WIDTHS: tuple[int, ...] = (64, 256, 1024)
FULL_WIDTHS: tuple[int, ...] = (64, 256, 1024, 4096)


@dataclass
class NTKReport:
    """What :func:`ntk_report_figures` produced.

    Attributes
    ----------
    figures : dict[str, Path]
        ``{"profiles", "interpolants", "kinks", "convergence"}`` -> PNG path
        (``convergence`` is absent when no widths were asked for; empty without ``out_dir``).
    figure_objects : dict[str, Figure]
        The same figures as matplotlib Figures (for embedding without files).
    tables : dict[str, Path]
        ``{"csv", "markdown", "json"}`` -> file path (empty without ``out_dir``).
    rows : list[SmoothnessRow]
        The comparison table (``row.to_dict()`` for plain dicts).
    convergence : list[ConvergencePoint]
        Empirical NTK errors by width.
    markdown : str
        The table as markdown, ready to paste into a report.
    """

    figures: dict[str, Path] = field(default_factory=dict)
    figure_objects: dict[str, Any] = field(default_factory=dict)
    tables: dict[str, Path] = field(default_factory=dict)
    rows: list[SmoothnessRow] = field(default_factory=list)
    convergence: list[ConvergencePoint] = field(default_factory=list)
    markdown: str = ""

    def table(self) -> list[dict[str, object]]:
        """The comparison rows as plain dicts (keys: ``compare.TABLE_COLUMNS``)."""
        return [row.to_dict() for row in self.rows]


def _convergence_inputs(count: int = 8, dim: int = 4, seed: int = 0) -> torch.Tensor:
    # random unit vectors: generic angles between pairs, norms fixed (the kernels are homogeneous)
    generator = torch.Generator().manual_seed(seed)
    points = torch.randn(count, dim, generator=generator, dtype=torch.float64)
    return points / points.norm(dim=1, keepdim=True)


def ntk_report_figures(
    out_dir: str | Path | None,
    depth: int = 5,
    alphas: Sequence[float] = (0.1, 0.5, 1.0, 2.0),
    quick: bool = True,
    *,
    num_train: int = 12,
    widths: Sequence[int] | None = None,
    seed: int = 0,
    progress: bool = False,
) -> NTKReport:
    """Figures and table comparing the MLP NTK with the ResNet NTK at each alpha.

    Parameters
    ----------
    out_dir : str or Path, or None
        Folder for the figures and tables (created if missing); None writes nothing and
        returns the figures as objects only.
    depth : int
        Hidden layers of the MLP and blocks of the ResNet.
    alphas : sequence of float
        Residual scales to compare.
    quick : bool
        Quick mode (demo report, a few seconds on 2 cores): 3 random training sets instead of
        10 and empirical NTK widths ``QUICK_WIDTHS`` with 2 seeds instead of ``FULL_WIDTHS``
        with 3 seeds.
    num_train : int
        Training points on the circle for the interpolation experiment.
    widths : sequence of int, optional
        Widths for the empirical NTK check (overrides the mode's default; ``()`` skips it).
    seed : int
        First seed of the random training sets and of the network initialisations.
    progress : bool
        Show tqdm progress bars for the empirical NTKs.

    Returns
    -------
    NTKReport
        Paths of every file written, the table rows and the convergence points.
    """
    depth = check_depth(depth)
    alphas = check_alphas(alphas)
    seed = check_int("seed", seed)  # torch's generators refuse NumPy integers
    widths = list(QUICK_WIDTHS if quick else FULL_WIDTHS) if widths is None else list(widths)
    widths = [check_width(width) for width in widths]
    # plotting is imported here so that the numeric API never pays for matplotlib
    from neuralcollapse.viz.ntk_figures import (
        TIGHT_FIGURES,
        plot_interpolants,
        plot_kernel_profiles,
        plot_kinks_vs_alpha,
        plot_ntk_convergence,
    )

    num_random = 3 if quick else 10
    random_seeds = list(range(seed, seed + num_random))
    rows = compare_smoothness(depth, alphas, num_train=num_train, random_seeds=random_seeds)
    kernels = comparison_kernels(depth, alphas)
    report = NTKReport(rows=rows, markdown=rows_to_markdown(rows))
    figures = report.figure_objects
    figures["profiles"] = plot_kernel_profiles(kernels)
    training_sets = [
        (f"{num_train} equispaced points", training_angles(num_train, "equispaced")),
        (
            f"{num_train} random points (seed {seed})",
            training_angles(num_train, "random", seed=seed),
        ),
    ]
    figures["interpolants"] = plot_interpolants(kernels, training_sets)
    figures["kinks"] = plot_kinks_vs_alpha(rows)

    if widths:
        seeds = [seed, seed + 1] if quick else [seed, seed + 1, seed + 2]
        inputs = _convergence_inputs(seed=seed)
        # the MLP and the ResNet at the middle alpha: enough to show both converge
        middle_alpha = sorted(alphas)[len(alphas) // 2]
        report.convergence = ntk_convergence(
            "mlp", inputs, depth=depth, widths=widths, seeds=seeds, progress=progress
        ) + ntk_convergence(
            "resnet",
            inputs,
            depth=depth,
            widths=widths,
            alpha=middle_alpha,
            seeds=seeds,
            progress=progress,
        )
        figures["convergence"] = plot_ntk_convergence(report.convergence)
    if out_dir is None:
        return report

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for key, figure in figures.items():
        path = out / f"ntk_{key}.png"
        # a tight bounding box costs a second draw: only where the legend is outside the axes
        figure.savefig(path, dpi=110, bbox_inches="tight" if key in TIGHT_FIGURES else None)
        report.figures[key] = path
    report.tables["csv"] = out / "ntk_table.csv"
    report.tables["csv"].write_text(rows_to_csv(rows))
    report.tables["markdown"] = out / "ntk_table.md"
    report.tables["markdown"].write_text(report.markdown)
    report.tables["json"] = out / "ntk_summary.json"
    summary = {
        "depth": depth,
        "alphas": alphas,
        "num_train": num_train,
        "random_seeds": random_seeds,
        "rows": report.table(),
        "convergence": [point.to_dict() for point in report.convergence],
    }
    report.tables["json"].write_text(schema.dumps(summary, indent=2))
    return report
