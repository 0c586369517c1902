"""The alpha comparison table, the report helper and the ``neuralcollapse ntk`` command."""

from __future__ import annotations

import argparse
import csv
import io
import json

import pytest

from neuralcollapse.cli import ntk as ntk_cli
from neuralcollapse.ntk.analytic import MLPKernel, ResNetKernel
from neuralcollapse.ntk.compare import (
    TABLE_COLUMNS,
    compare_smoothness,
    rows_to_csv,
    rows_to_markdown,
)
from neuralcollapse.ntk.smoothness import profile_slope_at_zero
from neuralcollapse.viz.ntk_report import ntk_report_figures


def test_comparison_rows_follow_kernels_and_agree_with_direct_measures():
    rows = compare_smoothness(3, [0.5, 2.0], num_train=8, random_seeds=[0, 1])
    assert [row.model for row in rows] == [
        MLPKernel(3).label,
        ResNetKernel(3, 0.5).label,
        ResNetKernel(3, 2.0).label,
    ]
    assert [row.alpha for row in rows] == [None, 0.5, 2.0]
    assert rows[2].profile_slope == pytest.approx(profile_slope_at_zero(ResNetKernel(3, 2.0)))
    assert all(row.random_kink > 0 and row.equispaced_kink > 0 for row in rows)


def test_table_exports_carry_every_row_and_column():
    rows = compare_smoothness(2, [1.0], num_train=6, random_seeds=[0])
    parsed = list(csv.DictReader(io.StringIO(rows_to_csv(rows))))
    assert [list(record) for record in parsed] == [list(TABLE_COLUMNS)] * 2
    assert parsed[0]["alpha"] == "" and float(parsed[1]["alpha"]) == 1.0
    assert float(parsed[1]["random_kink"]) == pytest.approx(rows[1].random_kink)
    markdown = rows_to_markdown(rows).splitlines()
    assert len(markdown) == 4 and markdown[0].count("|") == len(TABLE_COLUMNS) + 1


def test_report_helper_writes_figures_and_tables(tmp_path):
    report = ntk_report_figures(
        tmp_path, depth=2, alphas=[0.5, 1.0], quick=True, num_train=6, widths=[8, 32]
    )
    assert set(report.figures) == {"profiles", "interpolants", "kinks", "convergence"}
    for path in [*report.figures.values(), *report.tables.values()]:
        assert path.is_file() and path.stat().st_size > 0
    assert report.figures["profiles"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    summary = json.loads(report.tables["json"].read_text())
    assert len(summary["rows"]) == 3 and summary["rows"] == report.table()
    # two architectures x two widths, two seeds each in quick mode
    assert [(p["architecture"], p["width"]) for p in summary["convergence"]] == [
        ("mlp", 8),
        ("mlp", 32),
        ("resnet", 8),
        ("resnet", 32),
    ]
    assert all(p["num_seeds"] == 2 for p in summary["convergence"])
    assert report.markdown == report.tables["markdown"].read_text()


def _run_cli(argv):
    parser = argparse.ArgumentParser()
    ntk_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)


def test_cli_writes_table_and_figures_and_can_skip_empirical_check(tmp_path, capsys):
    out = tmp_path / "ntk"
    status = _run_cli(
        ["ntk", "--depth", "1", "--alpha", "0.5", "1", "--out", str(out), "--quick"]
        + ["--num-train", "6", "--widths"]
    )
    assert status == 0
    printed = capsys.readouterr().out
    assert "| MLP (L=1) |" in printed and "ResNet (L=1, alpha=1)" in printed
    assert "empirical NTK" not in printed  # --widths with no value skips the check
    rows = list(csv.DictReader((out / "ntk_table.csv").open()))
    assert [row["alpha"] for row in rows] == ["", "0.5", "1.0"]
    assert (out / "ntk_interpolants.png").is_file()
    assert not (out / "ntk_convergence.png").exists()


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--alpha", "-1"], "alpha (residual branch scale) must be a finite number >= 0"),
        (["--depth", "0"], "depth must be an integer >= 1"),
        (["--num-train", "1"], "num_points must be an integer >= 2"),
    ],
)
def test_cli_reports_bad_arguments_as_clean_errors(tmp_path, capsys, argv, message):
    from neuralcollapse.cli import main

    status = main(["ntk", "--out", str(tmp_path), "--widths", *argv])
    assert status == 2
    assert message in capsys.readouterr().err
