"""The per-class table as a figure: each class's collapse against its number of samples.

On imbalanced data (a vocabulary's token frequencies span orders of magnitude) averages
hide what matters: whether rare classes collapse as far as frequent ones. Each panel puts
one column of :class:`~neuralcollapse.metrics.per_class.PerClassTable` against the class
size on log axes, one point per class.
"""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse.metrics.per_class import PerClassTable
from neuralcollapse.viz.style import new_figure, run_colour

#: (column, axis label) in panel order; columns the table lacks are skipped
PANELS: tuple[tuple[str, str], ...] = (
    ("within_variance", "within-class variance $V_k$"),
    ("cdnv", "mean CDNV to the other classes"),
    ("mean_norm", r"$\|m_k\|$ (centred class mean)"),
    ("weight_norm", r"$\|w_k\|$ (classifier row)"),
    ("duality", r"$\langle w_k, m_k\rangle$ (UNC3's similarity)"),
)


def per_class_figure(table: PerClassTable, title: str | None = None) -> Figure:
    """One scatter panel per available column of ``table`` against the class size.

    Axes are logarithmic where every value is positive (sizes, variances, norms), linear
    otherwise (the duality can be negative). Points are drawn small and translucent, so a
    vocabulary of 50,000 classes reads as a density.
    """
    panels = [(name, label) for name, label in PANELS if getattr(table, name) is not None]
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure, axes = new_figure(rows, columns)
    counts = np.asarray(table.count, dtype=float)
    size = 12 if len(counts) <= 200 else 2
    alpha = 0.9 if len(counts) <= 200 else 0.3
    for index, (name, label) in enumerate(panels):
        panel = axes.flat[index]
        values = np.asarray(getattr(table, name), dtype=float)
        panel.scatter(counts, values, s=size, alpha=alpha, color=run_colour(0), linewidths=0)
        if np.all(counts > 0) and counts.max() > counts.min():
            panel.set_xscale("log")
        finite = values[np.isfinite(values)]
        if finite.size and np.all(finite > 0) and finite.max() > finite.min():
            panel.set_yscale("log")
        panel.set_xlabel("samples in the class")
        panel.set_ylabel(label)
    for panel in axes.flat[len(panels) :]:
        panel.set_visible(False)
    figure.suptitle(title or f"Per-class collapse, K = {table.num_classes:,} classes")
    return figure
