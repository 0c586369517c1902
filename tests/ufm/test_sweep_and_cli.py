"""Phase diagrams (sweep, CSV, figure) and the ufm / ufm-sweep commands."""

import csv
import json
import math

import pytest

from neuralcollapse.cli import main
from neuralcollapse.ufm import UFMProblem
from neuralcollapse.ufm.sweeps import sweep
from neuralcollapse.viz.style import save_figure
from neuralcollapse.viz.ufm_figures import plot_phase_diagram


def test_lam_b_sweep_moves_class_means_from_etf_to_orthogonal_frame(tmp_path):
    base = UFMProblem(4, 2, 5, bias=1.0, lam_w=1e-2, lam_h=1e-2)
    result = sweep(base, lam_b=[1e-2, 1e-1, 1.0, 10.0, 1e3], restarts=1, progress=False)
    rows = result.rows
    assert [row["geometry"] for row in rows][0] == "etf"
    assert rows[-1]["geometry"] == "of"
    of_gaps = [row["of_gap_means"] for row in rows]
    assert all(b < a for a, b in zip(of_gaps, of_gaps[1:], strict=False))
    ratios = [row["global_mean_ratio"] for row in rows]
    assert ratios[0] < 1e-6 and ratios[-1] == pytest.approx(0.5, abs=1e-3)  # 1/sqrt(K)
    assert max(abs(row["rel_gap"]) for row in rows) < 1e-6
    assert result.control_name == "K sqrt(n lam_W lam_H)"
    assert save_figure(plot_phase_diagram(result), tmp_path / "bias.png").stat().st_size > 0


def test_two_dimensional_sweep_marks_the_zero_phase_like_theory(tmp_path):
    base = UFMProblem(3, 2, 4)
    grid = [1e-3, 1e-2, 0.1, 0.5]
    result = sweep(base, lam_w=grid, lam_h=grid, restarts=1, progress=False)
    assert len(result.rows) == 16
    for row in result.rows:
        assert (row["geometry"] == "zero") == row["theory_zero"]
        assert abs(row["rel_gap"]) < 1e-6
    path = result.to_csv(tmp_path / "grid.csv")
    with path.open() as handle:
        table = list(csv.DictReader(handle))
    assert len(table) == 16 and float(table[5]["lam_h"]) == pytest.approx(grid[1])
    assert save_figure(plot_phase_diagram(result), tmp_path / "grid.png").stat().st_size > 0


def test_sweep_without_a_grid_is_an_error():
    with pytest.raises(ValueError, match="at least one grid"):
        sweep(UFMProblem(3, 2, 4))
    with pytest.raises(ValueError, match=r"lam_w\[1\] must be a finite number > 0 .*got -1\.0"):
        sweep(UFMProblem(3, 2, 4), lam_w=[0.1, -1.0])


def test_ufm_command_prints_theory_next_to_solution_as_json(capsys, tmp_path):
    status = main(
        [
            "ufm",
            "--K",
            "3",
            "--n",
            "2",
            "--d",
            "4",
            "--lambda-w",
            "1e-2",
            "--lambda-h",
            "1e-2",
            "--bias",
            "free",
            "--json",
            "--plot",
            str(tmp_path / "ufm.png"),
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    summary = json.loads(out[: out.rindex("}") + 1])
    assert summary["geometry"] == summary["theory"]["geometry"] == "etf"
    assert abs(summary["rel_gap"]) < 1e-6
    mu = math.sqrt(2 * 1e-2 * 1e-2)
    assert summary["f_star"] == pytest.approx(2 * (mu - 3 * mu * mu / 2))
    assert (tmp_path / "ufm.png").stat().st_size > 0


def test_ufm_command_with_gd_and_relu_prints_a_table(capsys):
    status = main(
        [
            "ufm",
            "--K",
            "3",
            "--n",
            "2",
            "--d",
            "4",
            "--depth",
            "2",
            "--activation",
            "relu",
            "--solver",
            "gd",
            "--steps",
            "50",
        ]
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "theory" in out and "solution" in out and "not unique" in out


def test_ufm_sweep_command_writes_csv_and_png(tmp_path, capsys):
    prefix = tmp_path / "phase"
    status = main(
        [
            "ufm-sweep",
            "--K",
            "3",
            "--n",
            "2",
            "--d",
            "4",
            "--restarts",
            "1",
            "--lambda-w-range",
            "1e-3",
            "1e-1",
            "3",
            "--lambda-h-range",
            "1e-3",
            "1",
            "3",
            "--out",
            str(prefix),
        ]
    )
    assert status == 0
    assert (tmp_path / "phase.csv").read_text().count("\n") == 10
    assert (tmp_path / "phase.png").stat().st_size > 0


@pytest.mark.parametrize(
    "arguments,message",
    [
        (["ufm", "--K", "1"], "num_classes must be an integer >= 2"),
        (["ufm", "--lambda-h", "0"], "lam_h must be a finite number > 0"),
        (["ufm", "--solver", "gd", "--lr", "1e6", "--steps", "100"], "diverged"),
        (["ufm-sweep"], "give at least one of --lambda-w-range"),
    ],
)
def test_bad_command_line_input_gives_a_clean_error(arguments, message, capsys):
    assert main(arguments) == 2
    assert message in capsys.readouterr().err


def test_ufm_uses_the_same_flag_names_as_measure_and_train_and_keeps_the_old_ones(capsys):
    new = ["ufm", "--num-classes", "3", "--per-class", "2", "--dim", "4", "--json"]
    old = ["ufm", "--K", "3", "--n", "2", "--d", "4", "--json"]
    assert main(new) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(old) == 0
    assert json.loads(capsys.readouterr().out)["objective"] == first["objective"]


def test_ufm_loss_and_activation_have_choices_and_help_shows_defaults(capsys):
    # an unknown loss or activation is refused by the parser, which lists the choices
    for flag, value in (("--loss", "hinge"), ("--activation", "tanh")):
        with pytest.raises(SystemExit) as stop:
            main(["ufm", flag, value])
        assert stop.value.code == 2
        assert f"invalid choice: '{value}'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["ufm", "--help"])
    assert "(default: mse)" in capsys.readouterr().out


def test_zero_decay_ce_with_gd_reports_the_direction_against_the_max_margin(capsys):
    arguments = ["ufm", "--loss", "ce", "--solver", "gd", "--lambda-w", "0", "--lambda-h", "0"]
    assert main([*arguments, "--steps", "3000", "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    # gamma* = 1 / ((K - 1) sqrt(n)) for the default K = 4, n = 5
    assert summary["theory_margin"] == pytest.approx(1 / (3 * math.sqrt(5)))
    assert 0.9 < summary["margin_ratio"] <= 1.0
    assert summary["etf_gap_means"] < 0.05 and "objective" not in summary


@pytest.mark.parametrize(
    "extra,message",
    [
        (["--loss", "mse", "--solver", "gd"], "needs --loss ce --solver gd"),
        (["--loss", "ce"], "'lbfgs' has nothing to converge to"),
    ],
)
def test_zero_decay_elsewhere_names_gd_and_ce(extra, message, capsys):
    assert main(["ufm", "--lambda-w", "0", "--lambda-h", "0", *extra]) == 2
    assert message in capsys.readouterr().err
