"""The report's sections of the per-epoch measures that ride along (docs/training.md): the
depth fit, the MSE decomposition, robustness and generalisation, imbalanced classes.

Each section appears exactly when some run has its data, draws its figure, and its caption's
computed claims follow the data (a run whose minority cosine rises says so, ...)."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pytest

from neuralcollapse import schema
from neuralcollapse.measures.depth import fit_separation_law
from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.report import (
    GENERALISATION_TITLE,
    IMBALANCE_TITLE,
    MSE_TITLE,
    ROBUSTNESS_TITLE,
    add_measure_sections,
    build_run_report,
    depth_caption,
    generalisation_caption,
    generalisation_rows,
    imbalance_caption,
    mse_caption,
    robustness_caption,
)
from neuralcollapse.viz.runs import load_run, load_runs
from neuralcollapse.viz.style import REFERENCE_COLOUR, nice_number
from neuralcollapse.viz.training_figures import plot_depth_profile, separation_fit

from .fake_runs import write_fake_run

#: a short run keeps the figures quick
SHORT = {"epochs": 8, "measured": (0, 1, 3, 7)}


@pytest.fixture(scope="module")
def full_report(tmp_path_factory) -> dict:
    """One report of a run with every measure and a CE run that never reaches zero error
    and measured one intermediate layer only (built once: a report takes a few seconds)."""
    root = tmp_path_factory.mktemp("new_sections")
    runs = [
        write_fake_run(
            root / "all",
            mse_terms=True,
            robustness=True,
            minority_classes=2,
            generalisation=True,
            final_test_error=0.1,
            **SHORT,
        ),
        write_fake_run(
            root / "plain",
            loss="ce",
            bias=True,
            frame="etf",
            final_train_error=0.05,
            generalisation=True,
            layers=("layer1", "penultimate_pre", "penultimate_post"),
            **SHORT,
        ),
    ]
    page = build_run_report(runs, root / "out")
    return {"runs": runs, "out": root / "out", "html": page.read_text()}


def _sections(page: str) -> dict[str, str]:
    """Section title -> its HTML."""
    parts = re.split(r"<h2>\d+\. (.*?)</h2>", page)
    return {title: body for title, body in zip(parts[1::2], parts[2::2], strict=True)}


def _has_image(html: str) -> bool:
    return re.search(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]{100,}"', html) is not None


def test_report_orders_the_new_sections_before_the_tables(full_report):
    titles = re.findall(r"<h2>\d+\. (.*?)</h2>", full_report["html"])
    assert titles == [
        "Summary",
        "Neural collapse over training",
        "ETF or orthogonal frame: pre- and post-ReLU features",
        "Depth-wise NC1 profile",
        MSE_TITLE,
        ROBUSTNESS_TITLE,
        IMBALANCE_TITLE,
        "Tables",
    ]
    sections = _sections(full_report["html"])
    for title in (MSE_TITLE, ROBUSTNESS_TITLE, IMBALANCE_TITLE):
        assert _has_image(sections[title]), title
    figures = {path.stem for path in (full_report["out"] / "figures").glob("*.png")}
    assert {"mse_terms", "robustness", "imbalance"} <= figures


def test_report_without_the_measures_has_none_of_their_sections(built_report):
    titles = re.findall(r"<h2>\d+\. (.*?)</h2>", built_report["page"].read_text())
    assert not {MSE_TITLE, ROBUSTNESS_TITLE, IMBALANCE_TITLE} & set(titles)


def test_tables_use_the_schema_labels(full_report):
    headers = set(re.findall(r"<th[^>]*>(.*?)</th>", full_report["html"]))
    for key in ("mse_nc1", "mse_nc2_3", "mse_ls_perp", "minority_cosine_weights"):
        assert schema.RUN_COLUMNS[key].label in headers, key
    # accuracies are fractions: shown as percentages
    assert schema.RUN_COLUMNS["accuracy_minority"].label + " (%)" in headers
    assert "test accuracy at TPT (%)" in headers


def test_generalisation_table_has_every_run_and_says_not_reached(full_report):
    sections = _sections(full_report["html"])
    table = sections[ROBUSTNESS_TITLE].split('id="table-generalisation"')[1]
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert [re.search(r"<td[^>]*>(.*?)</td>", row).group(1) for row in rows] == ["all", "plain"]
    assert "not reached" in rows[1] and "not reached" not in rows[0]
    with (full_report["out"] / "tables" / "generalisation.csv").open() as handle:
        csv_rows = list(csv.DictReader(handle))
    assert csv_rows[0]["tpt_epoch"] == "5" and csv_rows[1]["accuracy_tpt"] == ""
    assert float(csv_rows[0]["accuracy_last"]) == pytest.approx(0.9)


def _measure_titles(runs) -> list[str]:
    report = HtmlReport("t")
    added = add_measure_sections(report, runs)
    assert [section.title for section in report.sections] == added
    return added


def test_each_section_appears_exactly_when_its_data_exist(tmp_path):
    cases = {
        "none": ({}, []),
        "mse": ({"mse_terms": True}, [MSE_TITLE]),
        "deepfool": ({"robustness": True}, [ROBUSTNESS_TITLE]),
        # no DeepFool: the title promises only the table it shows
        "generalisation": ({"generalisation": True}, [GENERALISATION_TITLE]),
        "imbalance": ({"minority_classes": 2}, [IMBALANCE_TITLE]),
    }
    for name, (options, expected) in cases.items():
        run = load_run(write_fake_run(tmp_path / name, **SHORT, **options))
        assert _measure_titles([run]) == expected, name


def test_generalisation_alone_gives_the_table_without_a_figure(tmp_path):
    run = load_run(write_fake_run(tmp_path / "g", generalisation=True, **SHORT))
    report = HtmlReport("t")
    add_measure_sections(report, [run])
    (section,) = report.sections
    assert [type(item).__name__ for item in section.items] == ["ReportTable"]
    # the title and introduction promise no robustness figure the section does not have
    assert "robustness" not in section.title.lower()
    assert "no robustness figure" in section.intro


def test_depth_figure_draws_the_fit_and_the_caption_gives_rho_and_r2(tmp_path):
    run = load_run(write_fake_run(tmp_path / "deep", **SHORT))
    last = max(row["epoch"] for row in run.metrics)
    rows = {
        layer: next(r for r in run.rows(layer=layer) if r["epoch"] == last)
        for layer in ("layer1", "layer2", "penultimate_post")
    }
    expected = fit_separation_law(rows)
    assert separation_fit(run).fit.rho == pytest.approx(expected.rho)
    caption = depth_caption([run], fit=True)
    assert f"ρ = {expected.rho:.3g} and R² = {expected.r_squared:.3f}" in caption
    assert "falls ÷" in caption  # rho < 1 here
    dashed = [
        line
        for line in plot_depth_profile([run], fit=True).axes[0].get_lines()
        if line.get_linestyle() == "--"
    ]
    assert len(dashed) == 1 and dashed[0].get_color() == REFERENCE_COLOUR
    assert f"ρ = {expected.rho:.3g}" in dashed[0].get_label()
    # the fitted NC1 at layer1 is exp(a + rho) / K
    k = run.num_classes
    assert dashed[0].get_ydata()[0] == pytest.approx(expected.fitted([1.0])[0] / k)
    # without fit=, the figure and caption are as before
    assert not any(
        line.get_linestyle() == "--" for line in plot_depth_profile([run]).axes[0].get_lines()
    )
    assert "ρ" not in depth_caption([run])


def test_depth_caption_says_why_no_fit_is_possible(tmp_path):
    shallow = load_run(
        write_fake_run(
            tmp_path / "shallow", layers=("layer1", "penultimate_pre", "penultimate_post"), **SHORT
        )
    )
    caption = depth_caption([shallow], fit=True)
    assert "shallow: no fit of the law of data separation: it measured 1 intermediate layer" in (
        caption
    )
    assert "Grey dashed" not in caption
    rising = load_run(write_fake_run(tmp_path / "rising", rising=("nc1",), **SHORT))
    for row in rising.metrics:  # NC1 grows with depth at the last epoch
        if row["epoch"] == 7 and row["split"] == "train":
            row["nc1"] = {"layer1": 0.1, "layer2": 0.2, "penultimate_pre": 0.3}.get(
                row["layer"], 0.4
            )
    assert "ρ ≥ 1: the fuzziness does not fall with depth" in depth_caption([rising], fit=True)


def test_mse_caption_follows_the_terms(tmp_path):
    falling = load_run(write_fake_run(tmp_path / "down", mse_terms=True, **SHORT))
    epochs, nc1 = falling.series("mse_nc1")
    caption = mse_caption([falling])
    assert f"L_NC1 falls ÷{nc1[0] / nc1[-1]:.3g}" in caption
    assert "(all three fell)" in caption and "rises" not in caption
    up = load_run(write_fake_run(tmp_path / "up", mse_terms=True, rising=("mse_nc1",), **SHORT))
    caption = mse_caption([up])
    assert "L_NC1 rises ×" in caption and "L_NC2/3 falls ÷" in caption
    assert "(2 of 3 fell)" in caption
    figure_lines = [len(axes.get_lines()) for axes in _mse_figure([falling]).axes]
    assert all(count >= 1 for count in figure_lines)


def _mse_figure(runs):
    from neuralcollapse.viz.training_figures import plot_mse_terms

    return plot_mse_terms(runs)


def test_robustness_caption_follows_the_deepfool_distance(tmp_path):
    grows = load_run(write_fake_run(tmp_path / "grows", robustness=True, **SHORT))
    caption = robustness_caption([grows])
    assert "grows: ‖r‖/‖x‖ rises ×" in caption and "NC1 falls ÷" in caption
    assert "every attacked image was fooled" in caption
    shrinks = load_run(
        write_fake_run(tmp_path / "shrinks", robustness=True, deepfool_growth=-0.1, **SHORT)
    )
    assert "shrinks: ‖r‖/‖x‖ falls ÷" in robustness_caption([shrinks])


def test_generalisation_caption_follows_the_test_accuracy(tmp_path):
    better = load_run(
        write_fake_run(tmp_path / "better", generalisation=True, final_test_error=0.1, **SHORT)
    )
    worse = load_run(
        write_fake_run(tmp_path / "worse", generalisation=True, final_test_error=0.3, **SHORT)
    )
    never = load_run(
        write_fake_run(tmp_path / "never", generalisation=True, final_train_error=0.1, **SHORT)
    )
    caption = generalisation_caption([better, worse, never])
    table = better.summary["generalisation"]
    before, after = table["accuracy_tpt"], table["accuracy_last"]
    assert after > before
    assert (
        f"better: {nice_number(100 * before)}% at epoch 5 → {nice_number(100 * after)}% at "
        f"epoch 7 ({100 * (after - before):+.3g} points, higher at the end)"
    ) in caption
    assert "worse: " in caption and "lower at the end" in caption.split("worse: ")[1]
    assert "never: not reached" in caption
    rows = generalisation_rows([never])
    assert str(rows[0]["accuracy_tpt"]) == "not reached"


def test_generalisation_of_a_run_without_a_summary_entry_is_computed_from_its_epochs(tmp_path):
    old = load_run(write_fake_run(tmp_path / "old", **SHORT))
    rows = generalisation_rows([old])
    assert rows[0]["tpt_epoch"] == 5 and rows[0]["accuracy_last"] == pytest.approx(0.8)
    assert "Computed from epochs.jsonl (summary.json holds none): old." in (
        generalisation_caption([old])
    )


def test_imbalance_caption_follows_the_minority_cosine(tmp_path):
    runs = load_runs(
        [
            write_fake_run(tmp_path / "merging", minority_classes=2, **SHORT),
            write_fake_run(
                tmp_path / "spreading", minority_classes=2, minority_collapse=False, **SHORT
            ),
        ]
    )
    caption = imbalance_caption(runs)
    merging = caption.split("merging (R = 10, K_B = 2): ")[1].split(". ")[0]
    spreading = caption.split("spreading (R = 10, K_B = 2): ")[1].split(". ")[0]
    assert "the cosine of the rows rises from -0.333 (epoch 0)" in merging
    assert "closer to 1 (merged) than to the ETF level" in merging
    assert "the cosine of the rows falls from 0.8 (epoch 0)" in spreading
    assert "closer to the ETF level than to 1 (merged)" in spreading
    assert "minority accuracy" in merging and "points below the majority" in merging
    assert "(-0.333 for K = 4)" in caption


def test_imbalance_figure_draws_the_etf_level(tmp_path):
    from neuralcollapse.viz.imbalance_figures import plot_imbalance_over_epochs

    run = load_run(write_fake_run(tmp_path / "r", minority_classes=2, **SHORT))
    figure = plot_imbalance_over_epochs([run])
    levels = {
        float(line.get_ydata()[0])
        for line in figure.axes[0].get_lines()
        if len(set(np.atleast_1d(line.get_ydata()))) == 1
    }
    assert any(level == pytest.approx(-1 / 3) for level in levels) and 1.0 in levels


def test_fake_run_options_leave_the_default_files_unchanged(tmp_path):
    plain = write_fake_run(tmp_path / "a")
    again = write_fake_run(tmp_path / "b", layers=("layer1", "layer2", "penultimate_pre",
                                                   "penultimate_post"))  # fmt: skip
    for name in ("config.json", "epochs.jsonl", "metrics.jsonl", "summary.json"):
        assert (Path(plain) / name).read_text() == (Path(again) / name).read_text()
