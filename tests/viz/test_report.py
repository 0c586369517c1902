import csv
import re

import pytest

from neuralcollapse.cli import main
from neuralcollapse.viz.report import build_run_report

TRAINING_SECTIONS = (
    "Summary",
    "Neural collapse over training",
    "ETF or orthogonal frame: pre- and post-ReLU features",
    "Depth-wise NC1 profile",
    "Tables",
)


def test_report_has_every_section_figure_and_table(built_report):
    page = built_report["page"].read_text()
    titles = re.findall(r"<h2>\d+\. (.*?)</h2>", page)
    assert titles == list(TRAINING_SECTIONS)
    figures = sorted(p.stem for p in (built_report["out"] / "figures").glob("*.png"))
    assert figures == sorted(
        ["training_panels", "training_panels_test", "frame_gaps", "depth_profile"]
    )
    assert page.count("<img ") == len(figures)
    assert page.count("<figcaption>") == len(figures)


def test_summary_table_has_one_row_per_run_with_its_status(built_report):
    with (built_report["out"] / "tables" / "summary.csv").open() as handle:
        rows = list(csv.DictReader(handle))
    assert [row["run"] for row in rows] == ["run_mse", "run_ce"]
    assert [row["epochs_done"] for row in rows] == ["12", "8"]
    assert [row["measured_epoch"] for row in rows] == ["11", "7"]
    assert all(row["tpt_epoch"] == "5" for row in rows)


def test_final_metrics_table_has_every_split_and_layer(built_report):
    with (built_report["out"] / "tables" / "final_metrics.csv").open() as handle:
        rows = [row for row in csv.DictReader(handle) if row["run"] == "run_mse"]
    assert {(row["split"], row["layer"]) for row in rows} == {
        (split, layer)
        for split in ("train", "test")
        for layer in ("layer1", "layer2", "penultimate_pre", "penultimate_post")
    }
    assert {row["epoch"] for row in rows} == {"11"}


def test_report_command_rebuilds_the_same_figures(built_report, tmp_path, capsys):
    runs = [str(path) for path in built_report["runs"]]
    status = main(["report", *runs, "--out", str(tmp_path / "out"), "--title", "Mine"])
    assert status == 0
    assert "<title>Mine</title>" in (tmp_path / "out" / "report.html").read_text()
    assert "wrote" in capsys.readouterr().out
    for figure in (built_report["out"] / "figures").glob("*.png"):
        assert (tmp_path / "out" / "figures" / figure.name).read_bytes() == figure.read_bytes()


def test_report_command_on_a_missing_run_is_a_clean_error(tmp_path, capsys):
    status = main(["report", str(tmp_path / "missing"), "--out", str(tmp_path / "out")])
    assert status == 2
    error = capsys.readouterr().err
    assert "does not exist" in error and "Traceback" not in error


def test_report_command_takes_a_linear_epoch_axis(built_report, tmp_path):
    runs = [str(path) for path in built_report["runs"]]
    status = main(["report", *runs, "--out", str(tmp_path / "out"), "--epoch-axis", "linear"])
    assert status == 0
    page = (tmp_path / "out" / "report.html").read_text()
    assert "Epochs on a linear axis." in page and "symmetric-log" not in page
    # the same data on another axis: every epoch-axis figure differs from the log one
    for name in ("training_panels", "training_panels_test", "frame_gaps"):
        linear = (tmp_path / "out" / "figures" / f"{name}.png").read_bytes()
        assert linear != (built_report["out"] / "figures" / f"{name}.png").read_bytes()


def test_report_command_refuses_an_unknown_epoch_axis(built_report, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["report", str(built_report["runs"][0]), "--out", str(tmp_path), "--epoch-axis", "x"])
    assert "invalid choice" in capsys.readouterr().err


def test_build_run_report_refuses_an_unknown_epoch_axis(built_report, tmp_path):
    with pytest.raises(ValueError, match=r"epoch_axis must be one of \('log', 'linear'\)"):
        build_run_report(built_report["runs"], tmp_path, epoch_axis="loglog")
