"""Shared look of every figure: backend, colours, axis helpers.

Figures are built as :class:`matplotlib.figure.Figure` objects without pyplot, so no window
opens, nothing global accumulates across figures, and no backend is chosen for the user:
``Figure.savefig`` renders with Agg whatever the interactive backend is.
"""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path

import matplotlib.ticker
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, NullFormatter

#: colour-blind-safe palette (Okabe & Ito) used for runs, in order
RUN_COLOURS: tuple[str, ...] = (
    "#0072B2",
    "#D55E00",
    "#009E73",
    "#CC79A7",
    "#E69F00",
    "#56B4E9",
    "#000000",
    "#F0E442",
)
#: reference levels (theory) are drawn in this grey
REFERENCE_COLOUR = "#555555"
DPI = 110


def run_colour(index: int) -> str:
    """Colour of the ``index``-th run, cycling through :data:`RUN_COLOURS`."""
    return RUN_COLOURS[index % len(RUN_COLOURS)]


def new_figure(rows: int, cols: int, *, panel_size: tuple[float, float] = (3.4, 2.7)):
    """A figure with a ``rows x cols`` grid of axes (always a 2-D array) and tight layout."""
    figure = Figure(
        figsize=(panel_size[0] * cols, panel_size[1] * rows), dpi=DPI, layout="constrained"
    )
    axes = figure.subplots(rows, cols, squeeze=False)
    return figure, axes


def set_epoch_axis(axes: Axes, epochs: Sequence[float] | np.ndarray) -> None:
    """Epochs on a log axis (terminal-phase dynamics span decades of epochs, as in Papyan et al.).

    Epoch 0 (the network at initialisation) cannot sit on a log axis, so when it is present
    the axis is symmetric-log, linear below epoch 1.
    """
    values = np.asarray(epochs, dtype=float)
    values = values[np.isfinite(values)]
    if values.size == 0:
        return
    if values.min() > 0:
        axes.set_xscale("log")
    else:
        axes.set_xscale("symlog", linthresh=1.0, linscale=0.5)
        axes.set_xlim(left=0)
    axes.set_xlabel("epoch")


#: the epoch-axis scales a figure of training runs can be drawn with
EPOCH_AXES = ("log", "linear")


def check_epoch_axis(epoch_axis: str) -> str:
    """``epoch_axis`` if it is one of :data:`EPOCH_AXES`, else a ValueError naming them."""
    if epoch_axis not in EPOCH_AXES:
        raise ValueError(f"epoch_axis must be one of {EPOCH_AXES}; got {epoch_axis!r}")
    return epoch_axis


def set_epoch_scale(
    axes: Axes, epochs: Sequence[float] | np.ndarray, epoch_axis: str = "log"
) -> None:
    """The epoch axis on the scale asked for: ``"log"`` (:func:`set_epoch_axis`) or ``"linear"``.

    A linear axis shows the late epochs, where the terminal phase lives, at their real share
    of training; the log axis shows the early decades.
    """
    if check_epoch_axis(epoch_axis) == "log":
        set_epoch_axis(axes, epochs)
        return
    values = np.asarray(epochs, dtype=float)
    if np.isfinite(values).any():
        axes.set_xscale("linear")
        axes.set_xlabel("epoch")


def plot_positive(axes: Axes, x, y, **style) -> bool:
    """Plot ``y`` against ``x`` on a log y axis, dropping NaN and non-positive points.

    Returns whether anything was drawn, so callers can leave a note on an empty panel.
    """
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y) & (y > 0)
    if not keep.any():
        return False
    axes.plot(x[keep], y[keep], **style)
    axes.set_yscale("log")
    return True


def plot_finite(axes: Axes, x, y, **style) -> bool:
    """Plot ``y`` against ``x`` on a linear axis, dropping NaN points; returns whether drawn."""
    x = np.asarray(x, dtype=float)
    y = np.asarray(y, dtype=float)
    keep = np.isfinite(x) & np.isfinite(y)
    if not keep.any():
        return False
    axes.plot(x[keep], y[keep], **style)
    return True


def reference_line(axes: Axes, level: float, label: str, *, where: str = "right") -> None:
    """A labelled horizontal line at a theoretical level (grey, dash-dot).

    ``where`` places the label at the left, centre or right end of the axes, above the line.
    """
    anchors = {"left": (0.02, 0, "left"), "center": (0.5, 0, "center"), "right": (1.0, -2, "right")}
    x, shift, align = anchors[where]
    axes.axhline(level, color=REFERENCE_COLOUR, linewidth=0.8, linestyle="-.", alpha=0.8)
    axes.annotate(
        label,
        xy=(x, level),
        xycoords=("axes fraction", "data"),
        xytext=(shift, 2),
        textcoords="offset points",
        ha=align,
        va="bottom",
        fontsize=7,
        color=REFERENCE_COLOUR,
    )


def mark_empty(axes: Axes, message: str = "not measured") -> None:
    """Write a note in the middle of a panel that has no data."""
    axes.text(
        0.5, 0.5, message, transform=axes.transAxes, ha="center", va="center", color="#888888"
    )


def _short_number(value: float, _position=None) -> str:
    return f"{value:.2g}"


def tidy_log_ticks(figure: Figure) -> None:
    """Readable tick labels on log axes.

    Over several decades only the powers of ten are labelled; over less than about one and a
    half decades matplotlib would label every minor tick in scientific notation, so major and
    minor ticks get short plain numbers instead (symmetric-log epoch axes: minor labels off).
    """
    for axes in figure.axes:
        for axis, scale in ((axes.xaxis, axes.get_xscale()), (axes.yaxis, axes.get_yscale())):
            if scale == "symlog":
                axis.set_minor_formatter(NullFormatter())
                continue
            if scale != "log":
                continue
            low, high = sorted(axis.get_view_interval())
            if low > 0 and math.log10(high / low) < 1.5:
                axis.set_major_formatter(FuncFormatter(_short_number))
                axis.set_minor_formatter(FuncFormatter(_short_number))
                # thin the minor labels so that they do not collide
                axis.set_minor_locator(matplotlib.ticker.LogLocator(subs=(2.0, 5.0)))
            else:
                axis.set_minor_formatter(NullFormatter())


def figure_png(figure: Figure) -> bytes:
    """The figure rendered as PNG bytes (log-axis tick labels tidied first)."""
    tidy_log_ticks(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI)
    return buffer.getvalue()


def run_legend(figure: Figure, runs: Sequence, with_data: set[int] | Sequence[int], tpts) -> None:
    """One legend under the panels: a colour per run that has data, and the TPT line style
    when any run reached zero training error (only what is drawn gets an entry)."""
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=run_colour(i), label=getattr(run, "name", str(i)))
        for i, run in enumerate(runs)
        if i in with_data
    ]
    if any(tpt is not None for tpt in tpts):
        handles.append(
            Line2D([], [], color="#444444", linestyle=":", label="first zero training error")
        )
    figure.legend(
        handles=handles, loc="outside lower center", ncols=min(len(handles), 4), fontsize=8
    )


def save_figure(figure: Figure, path: str | Path) -> Path:
    """Write the figure as PNG to ``path`` (folders created), atomically; returns the path."""
    from neuralcollapse.atomic import atomic_write_bytes

    return atomic_write_bytes(path, figure_png(figure))


def depth_trend(values: Sequence[float]) -> str:
    """How a measure moves from the first to the last of at least two layers, for a caption:
    "falls at every step", "is lower at the last layer than at the first, but not at every
    step", or "does not fall with depth"."""
    steps = [later < earlier for earlier, later in zip(values, values[1:], strict=False)]
    if all(steps):
        return "falls at every step"
    if values[-1] < values[0]:
        return "is lower at the last layer than at the first, but not at every step"
    return "does not fall with depth"


def nice_number(value: float | int | None, digits: int = 3) -> str:
    """A number for a table cell: integers as is, floats with ``digits`` significant digits."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)
