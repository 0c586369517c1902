"""The MLP-vs-ResNet smoothness comparison across residual scales alpha, as table rows.

For the MLP with L hidden layers and the ResNet with L blocks at each alpha, measure on the
unit circle (:mod:`neuralcollapse.ntk.smoothness`):

- ``profile_slope``: one-sided slope of ``k(gamma)/k(0)`` at 0 (closer to 0 = smoother);
- ``equispaced_kink`` / ``equispaced_rmse``: mean |kink| of the ridgeless interpolant of
  ``0.5 cos t + sin 4t`` from n equispaced points, and its RMSE to the target;
- ``random_kink`` / ``random_rmse``: the same averaged over random training sets (one per
  seed; every kernel sees the same sets).

References
----------
T. Tirer, J. Bruna and R. Giryes, "Kernel-based smoothness analysis of residual networks",
MSML 2021.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import asdict, dataclass

from neuralcollapse.ntk.analytic import MLPKernel, ResNetKernel
from neuralcollapse.ntk.smoothness import summarize_smoothness, training_angles
from neuralcollapse.ntk.validation import check_alphas, check_depth

TABLE_COLUMNS: tuple[str, ...] = (
    "model",
    "alpha",
    "profile_slope",
    "equispaced_kink",
    "equispaced_rmse",
    "random_kink",
    "random_rmse",
)


@dataclass(frozen=True)
class SmoothnessRow:
    """One kernel's smoothness figures (see the module docstring for each column)."""

    model: str
    alpha: float | None
    profile_slope: float
    equispaced_kink: float
    equispaced_rmse: float
    random_kink: float
    random_rmse: float

    def to_dict(self) -> dict[str, object]:
        """Plain dict whose keys are :data:`TABLE_COLUMNS`."""
        return asdict(self)


def comparison_kernels(depth: int, alphas: Sequence[float]) -> list[MLPKernel | ResNetKernel]:
    """The MLP kernel followed by one ResNet kernel per alpha, all of the same depth."""
    depth = check_depth(depth)
    return [MLPKernel(depth)] + [ResNetKernel(depth, alpha) for alpha in check_alphas(alphas)]


def compare_smoothness(
    depth: int,
    alphas: Sequence[float],
    *,
    num_train: int = 12,
    random_seeds: Sequence[int] = (0, 1, 2, 3, 4),
) -> list[SmoothnessRow]:
    """Smoothness of the MLP NTK and of the ResNet NTK at each alpha (one row each).

    Parameters
    ----------
    depth : int
        Hidden layers of the MLP and residual blocks of the ResNet (>= 1).
    alphas : sequence of float
        Residual scales (>= 0).
    num_train : int
        Training points on the circle (>= 2).
    random_seeds : sequence of int
        One random training set per seed (averaged); may be empty to skip random sets.

    Returns
    -------
    list of SmoothnessRow
        The MLP first, then the ResNets in the order of ``alphas``.
    """
    equispaced = training_angles(num_train, "equispaced")
    random_sets = [training_angles(num_train, "random", seed=seed) for seed in random_seeds]
    rows = []
    for kernel in comparison_kernels(depth, alphas):
        regular = summarize_smoothness(kernel, equispaced, label=kernel.label)
        irregular = [summarize_smoothness(kernel, angles) for angles in random_sets]
        count = max(len(irregular), 1)
        rows.append(
            SmoothnessRow(
                model=kernel.label,
                alpha=kernel.alpha,
                profile_slope=regular.profile_slope,
                equispaced_kink=regular.mean_abs_kink,
                equispaced_rmse=regular.rmse_to_target,
                random_kink=sum(s.mean_abs_kink for s in irregular) / count
                if irregular
                else float("nan"),
                random_rmse=sum(s.rmse_to_target for s in irregular) / count
                if irregular
                else float("nan"),
            )
        )
    return rows


def rows_to_markdown(rows: Sequence[SmoothnessRow]) -> str:
    """A GitHub-flavoured markdown table of the rows."""
    header = "| " + " | ".join(TABLE_COLUMNS) + " |"
    rule = "|" + "|".join("---" for _ in TABLE_COLUMNS) + "|"
    lines = [header, rule]
    for row in rows:
        cells = []
        for column in TABLE_COLUMNS:
            value = getattr(row, column)
            if value is None:
                cells.append("-")
            elif isinstance(value, float):
                cells.append(f"{value:.4g}")
            else:
                cells.append(str(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def rows_to_csv(rows: Sequence[SmoothnessRow]) -> str:
    """The rows as CSV text (header :data:`TABLE_COLUMNS`; an MLP's alpha is empty)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(TABLE_COLUMNS)
    for row in rows:
        writer.writerow(
            "" if getattr(row, column) is None else getattr(row, column) for column in TABLE_COLUMNS
        )
    return buffer.getvalue()
