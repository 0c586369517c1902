"""Figures of :mod:`neuralcollapse.measures`: the depth profile and the MSE terms over epochs.

Both return a :class:`matplotlib.figure.Figure` built without pyplot (nothing global, no
window); save it with ``figure.savefig(path)`` or embed it with
:func:`neuralcollapse.viz.style.figure_png`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.figure import Figure

from neuralcollapse.measures.depth import SeparationFit
from neuralcollapse.viz.style import (
    REFERENCE_COLOUR,
    mark_empty,
    new_figure,
    plot_positive,
    run_colour,
    set_epoch_axis,
)

#: the terms of Han, Papyan & Donoho's decomposition: (key without prefix, legend label)
MSE_TERMS: tuple[tuple[str, str], ...] = (
    ("loss", "MSE loss $L(W, b)$"),
    ("nc1", r"$L_{NC1}$"),
    ("nc2_3", r"$L_{NC2/3}$"),
    ("ls_perp", r"$L_{LS}^{\perp}$"),
)


def depth_profile_figure(fit: SeparationFit, title: str | None = None) -> Figure:
    """Separation fuzziness per layer on a log axis with the fitted line ``exp(a) rho^l``
    (He & Su, PNAS 2023), and the residuals of the fit (``log D_l`` minus the line)."""
    figure, axes = new_figure(1, 2, panel_size=(3.8, 2.9))
    profile, residual_panel = axes[0]
    positions = np.asarray(fit.positions)
    profile.plot(positions, fit.fuzziness, "o", color=run_colour(0), label="$D_l$ measured")
    dense = np.linspace(positions.min(), positions.max(), 200)
    profile.plot(
        dense,
        fit.fitted(dense),
        "-",
        color=REFERENCE_COLOUR,
        linewidth=1.0,
        label=rf"fit: $\rho$ = {fit.rho:.3g}, $R^2$ = {fit.r_squared:.3f}",
    )
    profile.set_yscale("log")
    profile.set_xticks(positions)
    profile.set_xticklabels(fit.layers, rotation=45, ha="right", fontsize=7)
    profile.set_ylabel(r"separation fuzziness $D_l = \mathrm{Tr}(\Sigma_W \Sigma_B^+)$")
    profile.legend(fontsize=7)
    residual_panel.bar(positions, fit.residuals, color=run_colour(1), width=0.6)
    residual_panel.axhline(0.0, color=REFERENCE_COLOUR, linewidth=0.8)
    residual_panel.set_xticks(positions)
    residual_panel.set_xticklabels(fit.layers, rotation=45, ha="right", fontsize=7)
    residual_panel.set_ylabel(r"residual of $\log D_l$")
    figure.suptitle(title or "Law of data separation (He & Su 2023)")
    return figure


def mse_terms_figure(
    rows: Sequence[Mapping],
    *,
    prefix: str = "mse_",
    epoch_key: str = "epoch",
    title: str | None = None,
) -> Figure:
    """The MSE loss and its three terms over epochs (Han, Papyan & Donoho, ICLR 2022, Fig. 2).

    ``rows``: one mapping per measured epoch with ``epoch_key`` and the keys of
    :meth:`~neuralcollapse.measures.MSEDecomposition.to_dict` under ``prefix`` (e.g.
    ``mse_nc1``). Missing or non-positive values are skipped (log axes); a figure with no
    term at all says so instead of failing.
    """
    figure, axes = new_figure(1, 1, panel_size=(4.6, 3.2))
    panel = axes[0, 0]
    epochs = np.array([float(row.get(epoch_key, np.nan)) for row in rows], dtype=float)
    drawn = False
    for index, (key, label) in enumerate(MSE_TERMS):
        values = np.array(
            [np.nan if row.get(prefix + key) is None else float(row[prefix + key]) for row in rows],
            dtype=float,
        )
        style = {"color": run_colour(index), "label": label, "marker": ".", "linewidth": 1.2}
        if key == "loss":
            style.update(color="#000000", linestyle="--", marker=None)
        drawn |= plot_positive(panel, epochs, values, **style)
    if drawn:
        set_epoch_axis(panel, epochs)
        panel.legend(fontsize=7)
        panel.set_ylabel("loss term")
    else:
        mark_empty(panel, "no MSE terms in these rows")
    figure.suptitle(title or "MSE decomposition (Han, Papyan & Donoho 2022)")
    return figure
