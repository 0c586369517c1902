"""The demo in quick mode, run once through the command line, then inspected."""

import csv
import math
import re
from pathlib import Path

import pytest

from neuralcollapse.cli import main
from neuralcollapse.geometry import of_etf_distance
from neuralcollapse.viz.demo import SECTION_TITLES, TRAINING_RUNS, run_demo

from .test_render import CHROMIUM, assert_report_renders


@pytest.fixture(scope="module")
def quick_demo(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo") / "out"
    assert main(["demo", "--quick", "--out", str(out), "--no-progress"]) == 0
    return out


def _table(out: Path, name: str) -> list[dict]:
    with (out / "tables" / f"{name}.csv").open() as handle:
        return list(csv.DictReader(handle))


def test_quick_demo_report_has_every_section(quick_demo):
    page = (quick_demo / "report.html").read_text()
    assert re.findall(r"<h2>\d+\. (.*?)</h2>", page) == list(SECTION_TITLES)


def test_every_figure_is_embedded_captioned_and_saved_as_png(quick_demo):
    page = (quick_demo / "report.html").read_text()
    figures = sorted(path.stem for path in (quick_demo / "figures").glob("*.png"))
    for expected in (
        "ufm_gd_trajectories",
        "ufm_phase_diagram",
        "ufm_bias_path",
        "mlp_training_panels",
        "mlp_frame_gaps",
        "mlp_depth_profile",
        "ntk_profiles",
        "ntk_interpolants",
        "ntk_kinks",
    ):
        assert expected in figures
    assert page.count('src="data:image/png;base64,') == len(figures)
    assert page.count("<figcaption><b>Look at:</b>") >= len(figures) - 1


def test_training_runs_are_ordinary_run_directories(quick_demo):
    for name, options in TRAINING_RUNS:
        run = quick_demo / "runs" / name
        for file in ("config.json", "epochs.jsonl", "metrics.jsonl", "summary.json"):
            assert (run / file).is_file()
        assert f'"loss": "{options["loss"]}"' in (run / "config.json").read_text()


def test_report_on_the_demo_runs_rebuilds_the_same_figures(quick_demo, tmp_path):
    runs = [str(quick_demo / "runs" / name) for name, _ in TRAINING_RUNS]
    assert main(["report", *runs, "--out", str(tmp_path)]) == 0
    for name in ("training_panels", "training_panels_test", "frame_gaps", "depth_profile"):
        rebuilt = (tmp_path / "figures" / f"{name}.png").read_bytes()
        assert rebuilt == (quick_demo / "figures" / f"mlp_{name}.png").read_bytes()


def test_phase_points_collapse_to_zero_exactly_where_theory_says(quick_demo):
    rows = _table(quick_demo, "ufm_phase_points")
    assert any(row["theory_zero"] == "True" for row in rows)
    assert any(row["theory_zero"] == "False" for row in rows)
    for row in rows:
        assert (row["theory_zero"] == "True") == (float(row["control_K_sqrt_n_lamW_lamH"]) >= 1)
        collapsed = float(row["measured_mean_norm"]) < 1e-4
        assert collapsed == (row["theory_zero"] == "True")


def test_bias_path_runs_from_etf_to_orthogonal_frame(quick_demo):
    rows = sorted(_table(quick_demo, "ufm_bias_path"), key=lambda row: float(row["lam_b"]))
    smallest, largest = rows[0], rows[-1]
    k = 4
    assert float(smallest["of_gap_means"]) == pytest.approx(of_etf_distance(k), abs=1e-3)
    assert float(smallest["global_mean_ratio"]) < 1e-3
    assert float(largest["of_gap_means"]) < 1e-2
    assert float(largest["global_mean_ratio"]) == pytest.approx(1 / math.sqrt(k), abs=1e-2)


def test_gd_moves_no_bias_mse_towards_the_orthogonal_frame_and_ce_to_the_etf(quick_demo):
    rows = {row["model"]: row for row in _table(quick_demo, "ufm_gd_summary")}
    assert rows["MSE, no bias"]["theory_geometry"] == "of"
    assert rows["CE"]["theory_geometry"] == "etf"
    assert float(rows["MSE, no bias"]["of_gap_means"]) < 0.05
    assert float(rows["CE"]["of_gap_means"]) == pytest.approx(of_etf_distance(4), abs=0.02)
    for row in rows.values():
        assert float(row["rel_gap"]) < 0.6 and float(row["nc1"]) < 0.1


def test_timings_table_ends_with_the_total(quick_demo):
    rows = _table(quick_demo, "timings")
    assert rows[-1]["stage"] == "total"
    total = sum(float(row["seconds"]) for row in rows[:-1])
    assert float(rows[-1]["seconds"]) == pytest.approx(total)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (apt-get install chromium)")
def test_demo_report_renders_in_headless_chromium(quick_demo, tmp_path):
    expected = len(list((quick_demo / "figures").glob("*.png")))
    assert_report_renders(quick_demo / "report.html", tmp_path / "demo.png", expected)


def test_demo_rejects_a_negative_seed(tmp_path):
    with pytest.raises(ValueError, match="seed must be an integer >= 0"):
        run_demo(tmp_path, seed=-1)


def test_gd_caption_calls_a_run_stopped_above_f_star_unconverged():
    from neuralcollapse.ufm import UFMProblem, solve_gd
    from neuralcollapse.viz.demo import _gd_caption

    problem = UFMProblem(num_classes=4, per_class=5, dim=20, lam_w=5e-3, lam_h=5e-3)
    with pytest.warns(RuntimeWarning, match="NOT THE GLOBAL MINIMUM"):  # 3 steps: by design
        short = solve_gd(problem, lr=0.5, steps=3, seed=0)
    long = solve_gd(problem, lr=1.0, steps=4000, seed=0)
    assert short.measurement.geometry_features != short.theory.geometry  # the premise
    assert long.measurement.geometry_features == long.theory.geometry
    caption = _gd_caption({"short": short, "long": long})
    short_part, long_part = caption.split("long:")
    assert f"not converged: {short.iterations} steps leave it" in short_part
    assert "as theory predicts" in long_part and "not converged" not in long_part


def test_bias_table_caption_counts_agreement_and_explains_a_tolerance_label():
    from neuralcollapse.viz.demo import _bias_table_caption

    def row(lam_b, geometry, theory, rel_gap):
        return {
            "lam_b": lam_b,
            "of_gap_means": 3e-4,
            "global_mean_ratio": 0.5,
            "geometry": geometry,
            "theory_geometry": theory,
            "rel_gap": rel_gap,
        }

    rows = [row(1.0, "between", "between", 0.0), row(100.0, "of", "between", 3e-14)]
    caption = _bias_table_caption(rows)
    assert "theory's at 1 of 2 values" in caption
    assert "At λ_b = 100 the solver is at f*" in caption
    # a disagreement away from f* is a solver failure: no tolerance excuse is offered
    unsolved = _bias_table_caption([row(100.0, "of", "between", 0.2)])
    assert "theory's at 0 of 1" in unsolved and "at f*" not in unsolved


def test_demo_opens_with_its_findings_each_linking_to_its_section(quick_demo):
    import html

    page = (quick_demo / "report.html").read_text()
    titles = [html.unescape(t) for t in re.findall(r"<h2>\d+\. (.*?)</h2>", page)]
    assert titles[0] == "Findings"
    first = page.split('<section id="section-2">')[0]
    assert 'id="table-findings"' in first  # the verdicts come before every other section
    table = first.split('id="table-findings"')[1].split("</table>")[0]
    links = re.findall(r'<a href="#section-(\d+)" title="([^"]*)">', table)
    rows = _table(quick_demo, "findings")
    assert len(links) == len(rows) > 0
    for (number, title), row in zip(links, rows, strict=True):
        assert titles[int(number) - 1] == html.unescape(title) == row["section"]
    # every section that holds a check is in the summary, and none of the training verdicts
    # is left in the training section (the demo shows them at the top only)
    checked = {row["section"] for row in rows}
    for title in SECTION_TITLES[1:4] + SECTION_TITLES[5:8] + SECTION_TITLES[9:10]:
        assert title in checked, title
    assert not (quick_demo / "tables" / "mlp_overview.csv").exists()


def test_run_time_is_in_minutes_and_seconds(quick_demo):
    page = (quick_demo / "report.html").read_text()
    run_time = page.split("<h2>11. Run time</h2>")[1]
    cells = re.findall(r"<td>(.*?)</td>", run_time)
    times = cells[1::2]
    assert times and all(re.fullmatch(r"\d+(\.\d)? s|\d+ min \d\d s", t) for t in times), times
    assert "e+" not in run_time
    findings = page.split('<section id="section-2">')[0]
    assert re.search(r"The demo ran in (\d+(\.\d)? s|\d+ min \d\d s)", findings)


def test_section_titles_promise_only_what_the_sections_show(quick_demo):
    page = (quick_demo / "report.html").read_text()
    # the demo does not measure DeepFool: its section is named after its generalisation table
    assert not (quick_demo / "figures" / "mlp_robustness.png").exists()
    assert "DeepFool" not in re.findall(r"<h2>(.*?)</h2>", page)[7]
    assert "Robustness" not in " ".join(SECTION_TITLES)
    section = page.split("<h2>8. ")[1].split("</section>")[0]
    assert 'id="table-mlp_generalisation"' in section and "<img" not in section
