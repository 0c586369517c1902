"""The page of ``neuralcollapse probe --regression``: neural regression collapse, one snapshot.

Andriopoulos et al. (NeurIPS 2024) state three properties of a regression net with targets
in R^n (docs/theory.md, "Neural regression collapse"); :func:`build_regression_report`
draws what :func:`~neuralcollapse.integrations.measure_regression` measured of them, per
split, with the snapshot page's look (:class:`~neuralcollapse.viz.html.HtmlReport`):

1. **Summary**: the settings (model, data and its preprocessing, head, n, d, N, the Sigma_Y
   NRC3 used) and one table of NRC1-NRC3 at the head's input, what each means, its value at
   exact collapse (0), the fitted gamma and n;
2. **NRC1 across depth**: NRC1 of every measured layer in the order given (``probe`` gives
   the model's registration order), the head's input last; a layer whose statistics are the
   head input's own (the module whose output the head reads) is drawn once;
3. **The head's W W^T against the UFM**: the eigenvalues of the two matrices NRC3 compares,
   each divided by its Frobenius norm as NRC3 divides it: ``W W^T`` and
   ``(Sigma_Y^{1/2} - sqrt(gamma) I)_+`` at the fitted gamma. Sorted spectra are at a
   Frobenius distance ``s <= NRC3`` (Hoffman-Wielandt), and ``NRC3^2 - s^2`` is what the
   eigenvectors' misalignment adds: the caption splits NRC3 that way.

Every caption is computed from the numbers; a value is called zero only to rounding
(:data:`ROUNDING`), and nothing is called "collapsed" short of that: no tolerance for
"nearly collapsed" is established, so the page states the shares and distances instead.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure

from neuralcollapse.integrations.regression import RegressionResults
from neuralcollapse.schema import PENULTIMATE
from neuralcollapse.viz.html import Column, HtmlReport, SectionLink
from neuralcollapse.viz.report.text import _join, _num, _percent
from neuralcollapse.viz.style import depth_trend, mark_empty, new_figure, run_colour

#: section titles of the regression page, in page order (the summary comes first)
REGRESSION_SUMMARY_TITLE = "Summary"
REGRESSION_DEPTH_TITLE = "NRC1 across depth"
REGRESSION_SPECTRUM_TITLE = "The head's W Wᵀ against the UFM's prediction (NRC3)"
REGRESSION_TITLES = (REGRESSION_SUMMARY_TITLE, REGRESSION_DEPTH_TITLE, REGRESSION_SPECTRUM_TITLE)

#: NRC1 and NRC2 (shares of variance) at or below this are zero to rounding. They are squared
#: quantities: float32 features exactly in an n-dimensional subspace leave ~(1e-7)^2 outside
ROUNDING = 1e-9
#: NRC3 is a distance (a norm, not squared): its rounding is the square root of the shares'
ROUNDING_DISTANCE = math.sqrt(ROUNDING)

#: the depth figure uses a log axis when its positive values span this ratio (one decade)
LOG_SPAN = 10.0

#: split -> (line style, marker), as on the classification snapshot page
_SPLIT_STYLES = {"train": ("-", "o"), "test": ("--", "s")}


# ----------------------------------------------------------------------------- the numbers


@dataclass(frozen=True)
class NRC3Spectra:
    """The two matrices NRC3 compares on one split, as sorted spectra (descending).

    ``weights``: eigenvalues of ``W W^T / ||W W^T||_F``; ``predicted``: of
    ``A / ||A||_F`` with ``A = (Sigma_Y^{1/2} - sqrt(gamma) I)_+`` at the fitted ``gamma``;
    ``target_eigenvalues``: of Sigma_Y; ``active``: how many of them exceed gamma (the
    directions the UFM fits; A is 0 on the others); ``nrc3``: the measured distance.
    """

    split: str
    weights: np.ndarray
    predicted: np.ndarray
    target_eigenvalues: np.ndarray
    gamma: float
    active: int
    nrc3: float

    @property
    def spectral_distance(self) -> float:
        """``s``: the Frobenius distance NRC3 would have at this gamma if W W^T had Sigma_Y's
        eigenvectors; ``s <= NRC3`` always (Hoffman-Wielandt)."""
        return float(np.linalg.norm(self.weights - self.predicted))

    @property
    def spectral_share(self) -> float | None:
        """``s^2 / NRC3^2``: the part of NRC3^2 the eigenvalues account for (the rest is the
        eigenvectors'), None when NRC3 is 0."""
        if self.nrc3 <= 0:
            return None
        return min(self.spectral_distance**2 / self.nrc3**2, 1.0)


def nrc3_spectra(result: RegressionResults, split: str = "train") -> NRC3Spectra | None:
    """The spectra of NRC3's two matrices, normalised as NRC3 normalises them; None when the
    result lacks the head or its weights (results built by hand, or before they were kept)."""
    head, weights = result.head, result.weights
    if head is None or weights is None:
        return None
    w = weights.detach().to(dtype=torch.float64, device="cpu")
    gram = w @ w.T
    # eigvalsh of a PSD matrix may return -1e-17 for a 0: that is 0, as NRC3's matrix has it
    spectrum = torch.linalg.eigvalsh((gram + gram.T) / 2).flip(0).clamp_min(0.0)
    norm = float(torch.linalg.matrix_norm(gram))
    if norm > 0:  # NRC3 leaves a zero matrix as it is (nrc3_distance's _normalised)
        spectrum = spectrum / norm
    eigenvalues = head.target_eigenvalues.detach().to(torch.float64).cpu()
    # exactly nrc3_distance's A(gamma): square roots of the clipped eigenvalues, shrunk
    shrunk = (eigenvalues.clamp_min(0.0).sqrt() - math.sqrt(head.gamma)).clamp_min(0.0)
    size = float(torch.linalg.vector_norm(shrunk))
    predicted = shrunk / size if size > 0 else shrunk
    return NRC3Spectra(
        split=split,
        weights=spectrum.numpy(),
        predicted=predicted.numpy(),
        target_eigenvalues=eigenvalues.numpy(),
        gamma=head.gamma,
        active=int((shrunk > 0).sum()),
        nrc3=head.nrc3,
    )


def _same_statistics(result: RegressionResults, layer: str) -> bool:
    """Whether ``layer``'s statistics are the head input's own: the module whose output the
    head reads, measured twice (one depth, not two)."""
    mine, head = result.stats.get(layer), result.stats.get(PENULTIMATE)
    if mine is None or head is None or mine.feature_sum is None or head.feature_sum is None:
        return False
    return (
        mine.count == head.count
        and mine.feature_sum.shape == head.feature_sum.shape
        and bool(torch.equal(mine.feature_sum, head.feature_sum))
        and bool(torch.equal(mine.feature_square, head.feature_square))
    )


def _merged_layers(results: Mapping[str, RegressionResults], layers: Sequence[str]) -> list[str]:
    """The layers that are the head's input itself on every split."""
    return [
        layer
        for layer in layers
        if layer != PENULTIMATE
        and all(_same_statistics(result, layer) for result in results.values())
    ]


def _check_results(results: Mapping[str, RegressionResults]) -> None:
    if not isinstance(results, Mapping) or not results:
        raise ValueError("results must map each split to its RegressionResults; got none")
    for split, result in results.items():
        if not isinstance(result, RegressionResults):
            raise TypeError(
                f"results[{split!r}] must be RegressionResults (measure_regression's result); "
                f"got {type(result).__name__}"
            )


def _layer_order(
    results: Mapping[str, RegressionResults], layers: Sequence[str] | None
) -> list[str]:
    """The layers to draw, in the order given (the model's); default: as measured, the head's
    input last."""
    measured = list(dict.fromkeys(name for result in results.values() for name in result.nrc1))
    if layers is None:
        return [name for name in measured if name != PENULTIMATE] + (
            [PENULTIMATE] if PENULTIMATE in measured else []
        )
    layers = list(layers)
    if sorted(layers) != sorted(measured):
        raise ValueError(f"layers must order exactly the measured layers {measured}; got {layers}")
    return layers


def _layer_label(layer: str, merged: Sequence[str] = ()) -> str:
    if layer == PENULTIMATE and merged:
        return f"{PENULTIMATE} (= {', '.join(merged)})"
    return layer


def _dims(results: Mapping[str, RegressionResults], layer: str) -> tuple[int, int] | None:
    """(d, n) of ``layer`` on the first split that measured it."""
    for result in results.values():
        stats = result.stats.get(layer)
        if stats is not None and stats.feature_sum is not None:
            return stats.dims
    return None


def depth_scale(values: Sequence[float]) -> tuple[str, float | None]:
    """The y axis of the depth figure: ``("log", None)`` when the positive values span a
    decade or more, ``("symlog", linthresh)`` when they do and some value is exactly 0 (a
    log axis cannot show it), else ``("linear", None)``."""
    finite = [value for value in values if math.isfinite(value)]
    positive = [value for value in finite if value > 0]
    if len(positive) < 2 or max(positive) / min(positive) < LOG_SPAN:
        return "linear", None
    if any(value <= 0 for value in finite):
        return "symlog", min(positive)
    return "log", None


# ----------------------------------------------------------------------------- figures


def _decade_ticks(values: Sequence[float], *, with_zero: bool, most: int = 7) -> list[float]:
    """At most ``most`` powers of ten covering the positive values (and 0 on a symlog axis):
    matplotlib labels every decade, and rounding-level values make 15 of them."""
    positive = [value for value in values if math.isfinite(value) and value > 0]
    low = math.floor(math.log10(min(positive)))
    high = math.ceil(math.log10(max(positive)))
    step = max(1, math.ceil((high - low) / (most - 1)))
    ticks = [10.0**power for power in range(high, low - 1, -step)][::-1]
    return [0.0, *ticks] if with_zero else ticks


def plot_regression_depth(
    results: Mapping[str, RegressionResults],
    layers: Sequence[str] | None = None,
) -> Figure:
    """NRC1 of every measured layer in the order of ``layers`` (default: as measured, the
    head's input last), one line per split (train solid, test dashed); a log y axis when the
    values span a decade (:func:`depth_scale`)."""
    _check_results(results)
    order = _layer_order(results, layers)
    merged = _merged_layers(results, order)
    drawn_layers = [layer for layer in order if layer not in merged]
    figure, grid = new_figure(1, 1, panel_size=(max(4.2, 0.9 * len(drawn_layers) + 1.5), 3.4))
    axes = grid[0][0]
    x = np.arange(len(drawn_layers), dtype=float)
    every: list[float] = []
    drawn = False
    for index, (split, result) in enumerate(results.items()):
        style, marker = _SPLIT_STYLES.get(split, (":", "^"))
        values = np.array([result.nrc1.get(layer, math.nan) for layer in drawn_layers])
        finite = np.isfinite(values)
        if finite.any():
            axes.plot(
                x[finite], values[finite], linestyle=style, marker=marker, markersize=5,
                color=run_colour(index), label=f"{split} split",
            )  # fmt: skip
            every += values[finite].tolist()
            drawn = True
    scale, linthresh = depth_scale(every)
    if scale == "linear":
        axes.set_ylim(bottom=0)  # 0 is exact collapse: keep it on the axis
    else:
        if scale == "symlog":
            axes.set_yscale("symlog", linthresh=linthresh)
        else:
            axes.set_yscale("log")
        axes.set_yticks(_decade_ticks(every, with_zero=scale == "symlog"))
        axes.minorticks_off()  # rounding-level values span ~15 decades: minor ticks clutter
    axes.set_xticks(x)
    axes.set_xticklabels(
        [_layer_label(layer, merged) for layer in drawn_layers], rotation=30, ha="right", fontsize=8
    )
    axes.set_xlabel("layer (input → output)")
    axes.set_ylabel("NRC1 (0 at collapse)")
    if drawn:
        axes.legend(fontsize=7, frameon=False)
    else:
        mark_empty(axes)
    dims = _dims(results, PENULTIMATE)
    figure.suptitle(f"NRC1 across depth{f' (n = {dims[1]})' if dims else ''}")
    return figure


def plot_regression_spectrum(results: Mapping[str, RegressionResults]) -> Figure:
    """The eigenvalues of the head's ``W W^T`` (black diamonds) and of the UFM's
    ``(Sigma_Y^{1/2} - sqrt(gamma) I)_+`` at each split's fitted gamma (coloured), each divided
    by its matrix's Frobenius norm: the two matrices NRC3 compares, as NRC3 normalises them."""
    _check_results(results)
    spectra = [
        spectra
        for split, result in results.items()
        if (spectra := nrc3_spectra(result, split)) is not None
    ]
    n = len(spectra[0].weights) if spectra else 0
    figure, grid = new_figure(1, 1, panel_size=(max(5.0, 0.5 * n + 2.5), 3.6))
    axes = grid[0][0]
    if not spectra:
        mark_empty(axes, "the head's weights were not recorded")
        figure.suptitle(r"NRC3: the head's $WW^\top$ against the UFM")
        return figure
    index = np.arange(1, n + 1)
    splits = list(results)
    for spectrum in spectra:
        style, marker = _SPLIT_STYLES.get(spectrum.split, (":", "^"))
        axes.plot(
            index, spectrum.predicted, linestyle=style, linewidth=0.8, marker=marker,
            markersize=8, markerfacecolor="none", color=run_colour(splits.index(spectrum.split)),
            label=rf"UFM $(\Sigma_Y^{{1/2}} - \sqrt{{\gamma}}\,I)_+$, {spectrum.split}: "
            rf"$\gamma$ = {_num(spectrum.gamma)}",
        )  # fmt: skip
    axes.plot(
        index, spectra[0].weights, linestyle="none", marker="D", markersize=5, color="#000000",
        label=r"head's $WW^\top$", zorder=3,
    )  # fmt: skip
    axes.set_xticks(index)
    axes.set_xlabel("eigenvalue (largest first)")
    axes.set_ylabel("eigenvalue / Frobenius norm")
    axes.set_ylim(bottom=0, top=1.08)  # normalised spectra lie in [0, 1]
    axes.legend(fontsize=7, frameon=False)
    figure.suptitle(rf"NRC3: the head's $WW^\top$ against the UFM (n = {n})")
    return figure


# ----------------------------------------------------------------------------- captions


def _share_phrase(value: float, outside: str) -> str:
    if value <= ROUNDING:
        return f"0 to rounding (≤ {ROUNDING:g}): no centred variance outside {outside}"
    return f"{_percent(value)} of the centred variance lies outside {outside}"


def summary_caption(results: Mapping[str, RegressionResults]) -> str:
    """What the summary table says, per split, from its numbers."""
    parts = [
        "Look at: NRC1–NRC3 against 0, their value at exact collapse (every column is also in "
        "tables/regression_summary.csv, at full precision)."
    ]
    for split, result in results.items():
        head = result.head
        if head is None:
            parts.append(f"{split.capitalize()}: the head's input was not measured.")
            continue
        n = len(head.target_eigenvalues)
        principal = _share_phrase(head.nrc1, f"the top {n} principal directions")
        rows = _share_phrase(head.nrc2, "the span of the head's rows")
        sentence = (
            f"{split.capitalize()} (N = {head.num_samples:,}): NRC1 = {_num(head.nrc1)}, "
            f"{principal}; NRC2 = {_num(head.nrc2)}, {rows}; NRC3 = {_num(head.nrc3)}"
        )
        if n == 1 and head.nrc3 <= ROUNDING_DISTANCE:
            sentence += " (with n = 1 it is 0 for any nonzero head: it tells nothing here)"
        elif head.nrc3 <= ROUNDING_DISTANCE:
            sentence += (
                f", 0 to rounding (≤ {ROUNDING_DISTANCE:.2g}): W Wᵀ has the UFM's form at "
                f"γ = {_num(head.gamma)}, up to scale"
            )
        else:
            sentence += f" at the best γ = {_num(head.gamma)} (0 to 2; 0 = the UFM's form)"
        parts.append(sentence + ".")
    parts.append(
        "One snapshot shows where the model sits, not a trend: Andriopoulos et al. report the "
        "three falling towards 0 through training."
    )
    return " ".join(parts)


def depth_caption(
    results: Mapping[str, RegressionResults], layers: Sequence[str] | None = None
) -> str:
    """What the depth figure shows, from its numbers."""
    order = _layer_order(results, layers)
    merged = _merged_layers(results, order)
    drawn = [layer for layer in order if layer not in merged]
    every = [result.nrc1.get(layer, math.nan) for result in results.values() for layer in drawn]
    scale, linthresh = depth_scale(every)
    axis = {
        "log": "log axis, as the values span decades",
        "symlog": f"symmetric-log axis, linear below {_num(linthresh)} so that exact zeros show",
        "linear": "linear axis from 0",
    }[scale]
    dims = _dims(results, PENULTIMATE) or _dims(results, drawn[0])
    n = dims[1] if dims else None
    parts = [
        "Look at: NRC1 of each measured layer, in the model's order (training split solid, test "
        f"split dashed; {axis}). NRC1 is the share of a layer's centred feature variance outside "
        f"its top n{f' = {n}' if n else ''} principal directions, 0 at exact collapse."
    ]
    for split, result in results.items():
        values = [(layer, result.nrc1[layer]) for layer in drawn if layer in result.nrc1]
        label = f"{split.capitalize()}: NRC1"
        if len(values) == 1:
            parts.append(
                f"{label} = {_num(values[0][1])} at {_layer_label(values[0][0], merged)}, the "
                "only layer measured (--layers names more)."
            )
            continue
        if len(values) < 2:
            continue
        shape = depth_trend([value for _, value in values])
        parts.append(
            f"{label} {shape}, from {_num(values[0][1])} ({_layer_label(values[0][0], merged)}) "
            f"to {_num(values[-1][1])} ({_layer_label(values[-1][0], merged)})."
        )
    narrow = [layer for layer in drawn if (d := _dims(results, layer)) is not None and d[0] <= d[1]]
    if narrow:
        parts.append(
            f"{_join([_layer_label(layer, merged) for layer in narrow])} "
            f"{'has' if len(narrow) == 1 else 'have'} at most n features, so NRC1 is 0 there "
            "whatever the features: no direction lies outside the top n."
        )
    zero = [
        layer
        for layer in drawn
        if layer not in narrow
        and all(r.nrc1.get(layer, math.inf) <= ROUNDING for r in results.values())
    ]
    if zero:
        parts.append(
            f"At {_join([_layer_label(layer, merged) for layer in zero])} NRC1 is 0 to rounding "
            f"(≤ {ROUNDING:g}) on every split: the centred features lie in n directions."
        )
    if merged:
        parts.append(
            f"{_join(list(merged))} {'is' if len(merged) == 1 else 'are'} drawn once, as the "
            "head's input (penultimate): the same statistics, one depth."
        )
    return " ".join(parts)


def spectrum_caption(results: Mapping[str, RegressionResults]) -> str:
    """What the spectrum figure shows, from its numbers."""
    spectra = [
        spectra
        for split, result in results.items()
        if (spectra := nrc3_spectra(result, split)) is not None
    ]
    if not spectra:
        return (
            "Not drawn: the results do not hold the head's weights (measure_regression keeps "
            "them; results built by hand may not)."
        )
    n = len(spectra[0].weights)
    first = next(iter(results.values()))
    centred = {
        True: "centred covariance (the head has a bias)",
        False: "uncentred second moment (the head has no bias)",
        None: "covariance",
    }[first.centred_targets]
    parts = [
        "Look at: whether the black diamonds (the eigenvalues of the head's W Wᵀ) sit on the "
        "open markers (those of the UFM's (Σ_Y^½ − √γ I)₊ at the fitted γ), each divided by its "
        "matrix's Frobenius norm: the two matrices NRC3 compares, normalised as NRC3 does. "
        f"Σ_Y is the targets' {centred}, n = {n}."
    ]
    if n == 1:
        parts.append(
            "With n = 1 both matrices are single positive numbers: after normalising both are "
            "1, so NRC3 is 0 for any nonzero head and says nothing here."
        )
    for spectrum in spectra:
        s = spectrum.spectral_distance
        gamma = (
            "γ = 0: the UFM's form is Σ_Y^½ itself"
            if spectrum.gamma == 0
            else f"γ = {_num(spectrum.gamma)}: {spectrum.active} of the {n} eigenvalues of Σ_Y "
            "lie above it (the directions the UFM fits; the others get 0)"
        )
        sentence = f"{spectrum.split.capitalize()}: {gamma}; NRC3 = {_num(spectrum.nrc3)}"
        if spectrum.nrc3 <= ROUNDING_DISTANCE:
            sentence += ", 0 to rounding: W Wᵀ has the UFM's form (up to scale)."
        elif s <= ROUNDING_DISTANCE:
            sentence += (
                ". The spectra agree to rounding, so all of NRC3 is the eigenvectors: W Wᵀ "
                "has the predicted eigenvalues in other directions than Σ_Y's."
            )
        else:
            share = spectrum.spectral_share or 0.0
            where = "eigenvalues" if share >= 0.5 else "eigenvectors"
            sentence += (
                f". The sorted eigenvalues are {_num(s)} apart: the NRC3 W Wᵀ would have if its "
                f"eigenvectors were Σ_Y's (NRC3 is never below it); of NRC3² they account for "
                f"{_percent(share)}, the eigenvectors' misalignment for the rest: the mismatch is "
                f"mostly in the {where}."
            )
        parts.append(sentence)
    return " ".join(parts)


# ----------------------------------------------------------------------------- the page


def _intro(
    results: Mapping[str, RegressionResults],
    config: Mapping[str, object],
    layers: Sequence[str],
) -> str:
    parts = []
    if config.get("model"):
        parts.append(f"Model: {config['model']}.")
    if config.get("checkpoint"):
        parts.append(f"Checkpoint: {config['checkpoint']}.")
    data = config.get("data") or config.get("dataset")
    if data:
        parts.append(f"Data: {data}.")
    if config.get("preprocessing"):
        text = str(config["preprocessing"])
        parts.append(f"Preprocessing: {text}" + ("" if text.endswith(".") else "."))
    dims = _dims(results, PENULTIMATE)
    head = config.get("head")
    if dims:
        d, n = dims
        parts.append(
            f"Regression head{f' {head}' if head else ''}: n = {n} outputs from d = {d} "
            "features (its input, named penultimate)."
        )
    sizes = [
        f"{result.head.num_samples:,} {split} samples"
        for split, result in results.items()
        if result.head is not None
    ]
    if sizes:
        parts.append(_join(sizes).capitalize() + ".")
    first = next(iter(results.values()))
    if first.centred_targets is not None:
        parts.append(
            "NRC3 compares W Wᵀ with the targets' "
            + (
                "centred covariance Σ_Y (the head has a bias)."
                if first.centred_targets
                else "uncentred second moment Σ_Y (the head has no bias)."
            )
        )
    parts.append(f"Layers measured, in the model's order: {', '.join(layers)}.")
    parts.append(
        "Each layer's output is one row per sample (conv maps averaged over space, sequences "
        "over their positions). NRC1 and NRC2 are ratios of sums (streamed, docs/theory.md), "
        "not the paper's average over per-sample normalised features; both are 0 at collapse. "
        "One snapshot of the model (one measurement, no training)."
    )
    return " ".join(parts)


#: the rows of the summary table: (key, measurement, what it means, value at exact collapse)
_SUMMARY_ROWS = (
    (
        "nrc1",
        "NRC1",
        "share of the head input's centred feature variance outside its top n principal directions",
        0.0,
    ),
    ("nrc2", "NRC2", "share of that variance outside the span of the head's weight rows", 0.0),
    (
        "nrc3",
        "NRC3",
        "distance of W Wᵀ to (Σ_Y^½ − √γ I)₊, both divided by their Frobenius norm, at the best "
        "γ ≥ 0 (0 to 2)",
        0.0,
    ),
    ("gamma", "fitted γ", "the γ at which NRC3's distance is least (the UFM's N λ_W λ_H)", None),
    ("n", "n", "the targets' dimension (the head's outputs)", None),
    ("d", "d", "the head input's dimension", None),
    ("samples", "N", "samples measured", None),
)


def _summary_rows(results: Mapping[str, RegressionResults]) -> list[dict[str, object]]:
    sections = {
        "nrc1": SectionLink(REGRESSION_DEPTH_TITLE),
        "nrc3": SectionLink(REGRESSION_SPECTRUM_TITLE),
        "gamma": SectionLink(REGRESSION_SPECTRUM_TITLE, short=True),
    }
    rows = []
    for key, name, meaning, collapse in _SUMMARY_ROWS:
        row: dict[str, object] = {
            "measurement": name,
            "meaning": meaning,
            "collapse": collapse,
            "section": sections.get(key),
        }
        for split, result in results.items():
            head, dims = result.head, None
            stats = result.stats.get(PENULTIMATE)
            if stats is not None and stats.feature_sum is not None:
                dims = stats.dims
            value: object = {
                "nrc1": None if head is None else head.nrc1,
                "nrc2": None if head is None else head.nrc2,
                "nrc3": None if head is None else head.nrc3,
                "gamma": None if head is None else head.gamma,
                "n": None if dims is None else dims[1],
                "d": None if dims is None else dims[0],
                "samples": None if head is None else head.num_samples,
            }[key]
            row[split] = value
        rows.append(row)
    return rows


def add_regression_sections(
    report: HtmlReport,
    results: Mapping[str, RegressionResults],
    *,
    layers: Sequence[str] | None = None,
    config: Mapping[str, object] | None = None,
) -> None:
    """Add the regression sections of ``results`` (split -> :class:`RegressionResults`) to
    ``report``, the summary first. ``layers``: the measured layers in the model's order
    (default: as measured, the head's input last); ``config``: what the intro states (model,
    checkpoint, data, preprocessing, head)."""
    _check_results(results)
    order = _layer_order(results, layers)
    merged = _merged_layers(results, order)
    drawn = [layer for layer in order if layer not in merged]

    depth = report.section(
        REGRESSION_DEPTH_TITLE,
        "NRC1 needs no head, so every measured layer has it (Andriopoulos et al. measure it at "
        "the head's input only).",
    )
    depth.add_figure(
        "nrc1_depth", plot_regression_depth(results, order), depth_caption(results, order)
    )
    splits = list(results)
    rows = []
    for layer in drawn:
        dims = _dims(results, layer)
        row: dict[str, object] = {
            "layer": _layer_label(layer, merged),
            "d": None if dims is None else dims[0],
        }
        for split in splits:
            row[split] = results[split].nrc1.get(layer)
        rows.append(row)
    depth.add_table(
        "nrc1_layers",
        rows,
        "NRC1 of each drawn layer and split (0 at collapse); d: the layer's feature dimension.",
        columns=[Column("layer", kind="text"), Column("d", "d"), *(Column(s) for s in splits)],
    )

    spectrum = report.section(
        REGRESSION_SPECTRUM_TITLE,
        "NRC3 = min over γ ≥ 0 of ‖W Wᵀ/‖W Wᵀ‖_F − A(γ)/‖A(γ)‖_F‖_F with A(γ) = "
        "(Σ_Y^½ − √γ I)₊, the form the regression UFM predicts for the head (docs/theory.md).",
    )
    spectrum.add_figure(
        "nrc3_spectrum", plot_regression_spectrum(results), spectrum_caption(results)
    )
    all_spectra = [
        s for split, result in results.items() if (s := nrc3_spectra(result, split)) is not None
    ]
    if all_spectra:
        spectrum_rows = []
        for i, value in enumerate(all_spectra[0].weights):
            row = {"index": i + 1, "weights": float(value)}
            for s in all_spectra:
                row[f"predicted_{s.split}"] = float(s.predicted[i])
                row[f"sigma_y_{s.split}"] = float(s.target_eigenvalues[i])
            spectrum_rows.append(row)
        columns = [Column("index", "i"), Column("weights", "W Wᵀ (normalised)")]
        for s in all_spectra:
            columns.append(Column(f"predicted_{s.split}", f"UFM, {s.split} (normalised)"))
        for s in all_spectra:
            columns.append(Column(f"sigma_y_{s.split}", f"eigenvalue of Σ_Y, {s.split}"))
        spectrum.add_table(
            "nrc3_spectrum",
            spectrum_rows,
            "The drawn eigenvalues, largest first, and Σ_Y's own (not normalised).",
            columns=columns,
        )

    summary = report.section(
        REGRESSION_SUMMARY_TITLE, _intro(results, config or {}, order), first=True
    )
    summary.add_table(
        "regression_summary",
        _summary_rows(results),
        summary_caption(results),
        columns=[
            Column("measurement", kind="text"),
            Column("meaning", "what it measures", kind="text"),
            Column("collapse", "at exact collapse"),
            *(Column(split, split) for split in splits),
            Column("section", "shown in", "where the figure is", kind="text"),
        ],
    )


def build_regression_report(
    results: Mapping[str, RegressionResults],
    out_dir: str | Path,
    *,
    layers: Sequence[str] | None = None,
    config: Mapping[str, object] | None = None,
    title: str | None = None,
    subtitle: str | None = None,
) -> Path:
    """Write the page of a regression snapshot: OUT/report.html, OUT/figures/*.png,
    OUT/tables/*.csv.

    Parameters
    ----------
    results : split ("train", "test") -> :func:`~neuralcollapse.integrations.measure_regression`'s
        result.
    out_dir : where to write the page (created if needed).
    layers : the measured layers in the model's order (default: as measured, the head's input
        last); must name exactly the measured layers.
    config : what the summary states: "model", "checkpoint", "data" or "dataset",
        "preprocessing", "head".
    title, subtitle : of the page.

    Returns
    -------
    Path of report.html.
    """
    _check_results(results)
    report = HtmlReport(
        title or "Neural regression collapse snapshot",
        subtitle=subtitle
        or "One measurement of a regression model. NRC1–NRC3 as defined in Andriopoulos et al. "
        "(NeurIPS 2024), with the project's conventions (docs/theory.md, 'Neural regression "
        "collapse').",
    )
    add_regression_sections(report, results, layers=layers, config=config)
    return report.write(out_dir)


__all__ = [
    "REGRESSION_DEPTH_TITLE",
    "REGRESSION_SPECTRUM_TITLE",
    "REGRESSION_SUMMARY_TITLE",
    "REGRESSION_TITLES",
    "NRC3Spectra",
    "add_regression_sections",
    "build_regression_report",
    "depth_caption",
    "depth_scale",
    "nrc3_spectra",
    "plot_regression_depth",
    "plot_regression_spectrum",
    "spectrum_caption",
    "summary_caption",
]
