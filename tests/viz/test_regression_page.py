"""The page of a regression snapshot (``probe --regression``): build_regression_report and its
figures and captions, on results of measure_regression and on results built by hand."""

from __future__ import annotations

import csv
import html
import math
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from neuralcollapse.frontier.regression import (
    RegressionStats,
    nrc1,
    nrc3_distance,
    regression_collapse,
)
from neuralcollapse.integrations import measure_regression
from neuralcollapse.integrations.regression import RegressionResults
from neuralcollapse.schema import PENULTIMATE
from neuralcollapse.viz.regression_page import (
    REGRESSION_TITLES,
    ROUNDING,
    build_regression_report,
    depth_caption,
    depth_scale,
    nrc3_spectra,
    plot_regression_depth,
    plot_regression_spectrum,
    spectrum_caption,
    summary_caption,
)

# ----------------------------------------------------------------------------- helpers


def _data(samples: int = 120, seed: int = 3) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    inputs = torch.randn(samples, 5, generator=generator)
    targets = torch.stack([inputs[:, 0] + inputs[:, 1], 0.4 * inputs[:, 2]], dim=1)
    return inputs, targets


def _batches(inputs: torch.Tensor, targets: torch.Tensor) -> list:
    return [(inputs[i : i + 40], targets[i : i + 40]) for i in range(0, len(inputs), 40)]


def _spread_net() -> nn.Module:
    """A random MLP: nothing is collapsed."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(5, 16), nn.Tanh(), nn.Linear(16, 8), nn.Tanh(), nn.Linear(8, 2))


def _fourth_root(targets: torch.Tensor) -> torch.Tensor:
    """Sigma_Y^{1/4} of the centred targets (float64)."""
    y = targets.double() - targets.double().mean(dim=0)
    values, vectors = torch.linalg.eigh(y.T @ y / len(y))
    return (vectors * values.clamp_min(0).pow(0.25)) @ vectors.T


def _collapsed_net(targets: torch.Tensor) -> nn.Module:
    """Head input exactly in a 2-dim subspace of R^6 (= n), the head's rows spanning it, and
    W W^T = Sigma_Y^{1/2}: NRC1 = NRC2 = NRC3 = 0 up to rounding."""
    torch.manual_seed(0)
    model = nn.Sequential(
        nn.Linear(5, 4), nn.Tanh(), nn.Linear(4, 2), nn.Linear(2, 6, bias=False), nn.Linear(6, 2)
    )
    expand, _ = torch.linalg.qr(torch.randn(6, 2, dtype=torch.float64))  # orthonormal columns
    with torch.no_grad():
        model[3].weight.copy_(expand)
        model[4].weight.copy_(_fourth_root(targets) @ expand.T)  # W W^T = C E^T E C = C^2
    return model


def _results(model: nn.Module, layers=("1", "3")) -> dict[str, RegressionResults]:
    inputs, targets = _data()
    return {
        "train": measure_regression(model, _batches(inputs, targets), head="4", layers=layers),
        "test": measure_regression(
            model, _batches(*_data(80, seed=4)), head="4", layers=list(layers)
        ),
    }


def _text(page: str) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _csv(out: Path, name: str) -> list[dict]:
    with (out / "tables" / f"{name}.csv").open() as handle:
        return list(csv.DictReader(handle))


@pytest.fixture(scope="module")
def spread() -> dict[str, RegressionResults]:
    return _results(_spread_net())


@pytest.fixture(scope="module")
def collapsed() -> dict[str, RegressionResults]:
    return _results(_collapsed_net(_data()[1]), layers=("1", "2", "3"))


# ----------------------------------------------------------------------------- the page


def test_page_has_the_summary_first_two_figures_and_the_measured_values(spread, tmp_path):
    out = tmp_path / "page"
    page = build_regression_report(spread, out, layers=["1", "3", PENULTIMATE]).read_text()
    titles = [html.unescape(t) for t in re.findall(r"<h2>\d+\. (.*?)</h2>", page)]
    assert titles == list(REGRESSION_TITLES)
    assert sorted(p.name for p in (out / "figures").glob("*.png")) == [
        "nrc1_depth.png",
        "nrc3_spectrum.png",
    ]
    assert page.count('src="data:image/png;base64,') == 2
    rows = {row["measurement"]: row for row in _csv(out, "regression_summary")}
    text = _text(page)
    for split, result in spread.items():
        head = result.head
        for name, value in (("NRC1", head.nrc1), ("NRC2", head.nrc2), ("NRC3", head.nrc3)):
            assert float(rows[name][split]) == value  # the CSV keeps full precision
            assert float(rows[name]["collapse"]) == 0.0
            assert f"{value:.3g}" in text
        assert float(rows["fitted γ"][split]) == head.gamma
        assert int(rows["n"][split]) == 2 and int(rows["d"][split]) == 8
        assert int(rows["N"][split]) == head.num_samples
    # the summary table is the page's first table
    assert page.index('id="table-regression_summary"') < page.index('id="figure-nrc1_depth"')


def test_depth_table_is_in_the_given_order_and_merges_the_head_input(spread, tmp_path):
    out = tmp_path / "page"
    build_regression_report(spread, out, layers=["1", "3", PENULTIMATE])
    rows = _csv(out, "nrc1_layers")
    # module 3 (the last Tanh) is what the head reads: drawn once, as the head's input
    assert [row["layer"] for row in rows] == ["1", f"{PENULTIMATE} (= 3)"]
    for row, layer in zip(rows, ("1", PENULTIMATE), strict=True):
        assert float(row["train"]) == spread["train"].nrc1[layer]
        assert float(row["test"]) == spread["test"].nrc1[layer]
    with pytest.raises(ValueError, match="exactly the measured layers"):
        build_regression_report(spread, tmp_path / "bad", layers=["1", PENULTIMATE])


def test_settings_are_stated(spread, tmp_path):
    config = {
        "model": "pkg:make_net",
        "data": "pkg:loader",
        "preprocessing": "as pkg:loader returns the batches (none added by probe).",
        "head": "4",
    }
    page = build_regression_report(spread, tmp_path / "p", config=config).read_text()
    text = _text(page)
    assert "Model: pkg:make_net. Data: pkg:loader." in text
    assert "Preprocessing: as pkg:loader returns the batches (none added by probe)." in text
    assert "Regression head 4: n = 2 outputs from d = 8 features" in text
    assert "centred covariance Σ_Y (the head has a bias)" in text  # nn.Linear has a bias
    assert "120 train samples and 80 test samples" in text


# ----------------------------------------------------------------------------- the spectra


def test_spectra_are_nrc3s_matrices_normalised_as_nrc3_does(spread):
    for split, result in spread.items():
        spectra = nrc3_spectra(result, split)
        w = result.weights
        sigma = result.stats[PENULTIMATE].target_covariance(result.centred_targets)
        # the kept weights and Sigma_Y give back the measured NRC3 at the fitted gamma
        distance, _ = nrc3_distance(w @ w.T, sigma, result.head.gamma)
        assert distance == pytest.approx(result.head.nrc3, abs=1e-12)
        # independently: the two matrices, normalised, and their eigenvalues
        gram = w @ w.T
        values, vectors = torch.linalg.eigh(sigma)
        shrunk = (values.clamp_min(0).sqrt() - math.sqrt(result.head.gamma)).clamp_min(0)
        a = (vectors * shrunk) @ vectors.T
        expected_w = torch.linalg.eigvalsh(gram / torch.linalg.matrix_norm(gram)).flip(0)
        expected_a = torch.linalg.eigvalsh(a / torch.linalg.matrix_norm(a)).flip(0)
        np.testing.assert_allclose(spectra.weights, expected_w.numpy(), atol=1e-12)
        np.testing.assert_allclose(spectra.predicted, expected_a.numpy(), atol=1e-12)
        # Hoffman-Wielandt: the sorted spectra are never further apart than the matrices
        assert spectra.spectral_distance <= result.head.nrc3 + 1e-12


def test_spectrum_figure_draws_the_two_spectra_per_split(spread):
    figure = plot_regression_spectrum(spread)
    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    drawn = [label for label in lines if label.startswith("UFM")]
    assert len(drawn) == 2  # one prediction per split
    weights = next(line for label, line in lines.items() if label.startswith("head"))
    np.testing.assert_allclose(weights.get_ydata(), nrc3_spectra(spread["train"]).weights)
    for split in ("train", "test"):
        line = next(lines[label] for label in drawn if f", {split}:" in label)
        np.testing.assert_allclose(line.get_ydata(), nrc3_spectra(spread[split], split).predicted)


#: (2, 3): the first two coordinates of R^3 (E E^T = I)
_EMBED = torch.tensor([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]], dtype=torch.float64)


def _hand_results(weights: torch.Tensor) -> RegressionResults:
    """Targets with Sigma_Y = diag(4, 1) exactly (centred, uncorrelated columns)."""
    a = torch.tensor([1.0, -1.0, 1.0, -1.0], dtype=torch.float64)
    b = torch.tensor([1.0, 1.0, -1.0, -1.0], dtype=torch.float64)
    targets = torch.stack([2 * a, b], dim=1)
    features = torch.stack([a, b, a * b], dim=1)
    stats = RegressionStats().update(features, targets)
    head = regression_collapse(stats, weights)
    return RegressionResults(
        head, {PENULTIMATE: nrc1(stats)}, {PENULTIMATE: stats}, weights, centred_targets=True
    )


def test_caption_tells_rotated_eigenvectors_from_a_wrong_spectrum():
    root = torch.diag(torch.tensor([2.0, 1.0], dtype=torch.float64))  # Sigma_Y^{1/2}
    swap = torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=torch.float64)
    # W W^T = P Sigma^{1/2} P^T: the predicted eigenvalues on the wrong eigenvectors
    rotated = _hand_results(swap @ root.sqrt() @ swap.T @ _EMBED)
    spectra = nrc3_spectra(rotated)
    assert spectra.spectral_distance < 1e-12 and rotated.head.nrc3 > 0.5
    caption = spectrum_caption({"train": rotated})
    assert "all of NRC3 is the eigenvectors" in caption
    # W W^T = I: the right eigenvectors (any are), the wrong spectrum
    flat = _hand_results(_EMBED)
    spectra = nrc3_spectra(flat)
    share = spectra.spectral_share
    assert spectra.spectral_distance > 0.1 and share == pytest.approx(1.0, abs=1e-9)
    caption = spectrum_caption({"train": flat})
    assert "mostly in the eigenvalues" in caption and f"{100 * share:.3g}%" in caption
    assert "all of NRC3 is the eigenvectors" not in caption


def test_without_weights_the_spectrum_says_so_and_one_target_says_nrc3_is_empty():
    full = _hand_results(_EMBED)
    # a result built before weights were kept: still drawn, the figure says what is missing
    old = RegressionResults(full.head, full.nrc1, full.stats)
    assert nrc3_spectra(old) is None
    assert spectrum_caption({"train": old}).startswith("Not drawn")
    assert plot_regression_spectrum({"train": old}).axes[0].get_lines() == []
    stats = RegressionStats().update(
        torch.randn(30, 3, dtype=torch.float64), torch.randn(30, dtype=torch.float64)
    )
    weights = torch.randn(1, 3, dtype=torch.float64)
    one = RegressionResults(
        regression_collapse(stats, weights), {PENULTIMATE: nrc1(stats)}, {PENULTIMATE: stats},
        weights, centred_targets=True,
    )  # fmt: skip
    assert one.head.nrc3 == pytest.approx(0.0, abs=1e-12)
    assert "n = 1" in spectrum_caption({"train": one})
    assert "it tells nothing here" in summary_caption({"train": one})


# ----------------------------------------------------------------------------- captions


def test_captions_follow_collapse_and_its_absence(spread, collapsed):
    head = collapsed["train"].head
    assert head.nrc1 <= ROUNDING and head.nrc2 <= ROUNDING and head.nrc3 < 1e-5
    text = summary_caption(collapsed)
    assert "NRC1 = " in text and text.count("0 to rounding") >= 4  # NRC1, NRC2 on each split
    assert "W Wᵀ has the UFM's form" in text
    assert "has the UFM's form" in spectrum_caption(collapsed)

    head = spread["train"].head
    assert head.nrc1 > 0.01 and head.nrc2 > 0.01 and head.nrc3 > 0.01
    text = summary_caption(spread)
    assert "0 to rounding" not in text and "has the UFM's form" not in text
    assert f"{100 * head.nrc1:.3g}% of the centred variance lies outside the top 2" in text
    assert f"{100 * head.nrc2:.3g}% of the centred variance lies outside the span" in text
    assert "has the UFM's form" not in spectrum_caption(spread)


def test_depth_caption_names_trivial_and_exact_zeros(collapsed, spread):
    caption = depth_caption(collapsed, ["1", "2", "3", PENULTIMATE])
    # module 2 has 2 = n features: 0 whatever the features, said as such, not as collapse
    assert "2 has at most n features" in caption
    assert f"At {PENULTIMATE} (= 3) NRC1 is 0 to rounding" in caption
    assert "3 is drawn once" in caption
    values = [collapsed["train"].nrc1[name] for name in ("1", "2", PENULTIMATE)]
    falls = all(b < a for a, b in zip(values, values[1:], strict=False))
    assert ("falls at every step" in caption) == falls
    caption = depth_caption(spread, ["1", "3", PENULTIMATE])
    assert "to rounding" not in caption and "at most n features" not in caption
    first, last = spread["train"].nrc1["1"], spread["train"].nrc1[PENULTIMATE]
    assert f"from {first:.3g} (1) to {last:.3g} ({PENULTIMATE} (= 3))" in caption
    assert ("does not fall with depth" in caption) == (last >= first)


def test_depth_axis_is_log_only_when_values_span_decades(collapsed, spread):
    assert depth_scale([0.3, 0.2, 0.1]) == ("linear", None)
    assert depth_scale([0.3, 0.01]) == ("log", None)
    assert depth_scale([0.3, 0.01, 0.0]) == ("symlog", 0.01)
    assert depth_scale([0.3, 0.0]) == ("linear", None)
    spread_values = [v for r in spread.values() for v in r.nrc1.values()]
    expected = depth_scale(spread_values)[0]
    axes = plot_regression_depth(spread, ["1", "3", PENULTIMATE]).axes[0]
    assert axes.get_yscale() == expected
    # collapsed: 0-to-rounding values next to 0.1-ish ones span many decades
    axes = plot_regression_depth(collapsed, ["1", "2", "3", PENULTIMATE]).axes[0]
    assert axes.get_yscale() in ("log", "symlog")
    assert len(axes.get_lines()) == 2  # one line per split
    assert [t.get_text() for t in axes.get_xticklabels()] == ["1", "2", f"{PENULTIMATE} (= 3)"]
