"""The summary's checks of the measures that ride along (:func:`ride_along_checks`): one line
per claim the run has data for, its verdict following the data."""

from __future__ import annotations

from neuralcollapse.viz.report.captions import overview_caption
from neuralcollapse.viz.report.checks import (
    ANSATZ_CHECK,
    CODE_CHECK,
    CODE_TOLERANCE,
    FAILS,
    HOLDS,
    TRANSFER_CHECK,
    UNKNOWN,
    ride_along_checks,
    summary_checks,
)
from neuralcollapse.viz.runs import load_run

from .fake_runs import write_fake_run
from .test_agop_report import write_agop_run
from .test_codes_report import EXACT, ROWS_KEY, TAMMES_10_3, write_code_run
from .test_transfer_report import _falling, _flat, _rising, write_transfer_run

TRANSFER, CODES, ANSATZ = TRANSFER_CHECK, CODE_CHECK, ANSATZ_CHECK


def _verdicts(run_dir) -> dict[str, str]:
    return {check.check: check.verdict for check in ride_along_checks(load_run(run_dir))}


def test_a_plain_run_gets_no_ride_along_check(tmp_path):
    assert ride_along_checks(load_run(write_fake_run(tmp_path / "plain"))) == []


def test_the_few_shot_verdict_follows_twice_the_combined_standard_error(tmp_path):
    assert _verdicts(write_transfer_run(tmp_path / "falling", _falling)) == {TRANSFER: HOLDS}
    assert _verdicts(write_transfer_run(tmp_path / "flat", _flat)) == {TRANSFER: FAILS}
    assert _verdicts(write_transfer_run(tmp_path / "rising", _rising)) == {TRANSFER: FAILS}
    (check,) = ride_along_checks(load_run(tmp_path / "flat"))
    assert "no change beyond 2 s.e." in check.measured


def _angles(last_angle: float):
    def values(epoch: int) -> dict[str, float]:
        return {ROWS_KEY: last_angle - 7 + epoch}  # the fixture's last measured epoch is 7

    return values


def test_the_code_verdict_reads_the_last_angle_against_the_best_known(tmp_path):
    inside = TAMMES_10_3 * (1 - CODE_TOLERANCE) + 0.01
    outside = TAMMES_10_3 * (1 - CODE_TOLERANCE) - 0.01
    assert _verdicts(write_code_run(tmp_path / "in", _angles(inside))) == {CODES: HOLDS}
    assert _verdicts(write_code_run(tmp_path / "out", _angles(outside))) == {CODES: FAILS}
    unknown = write_code_run(tmp_path / "none", _angles(inside), code=None)
    assert _verdicts(unknown) == {CODES: UNKNOWN}
    (check,) = ride_along_checks(load_run(tmp_path / "out"))
    assert f"{EXACT['optimum_angle_degrees']:.3g}" in check.expected and "optimum" in check.expected


def test_the_ansatz_verdict_follows_the_mean_over_hidden_layers(tmp_path):
    assert _verdicts(write_agop_run(tmp_path / "up", rising=True)) == {ANSATZ: HOLDS}
    assert _verdicts(write_agop_run(tmp_path / "down", rising=False)) == {ANSATZ: FAILS}
    assert _verdicts(write_agop_run(tmp_path / "broken", not_computed=True)) == {}


def test_the_summary_lists_them_after_each_runs_own_checks(tmp_path):
    runs = [
        load_run(write_transfer_run(tmp_path / "t", _falling)),
        load_run(write_fake_run(tmp_path / "p")),
    ]
    names = [(check.run, check.check) for check in summary_checks(runs)]
    transfer_at = names.index(("t", TRANSFER))
    assert all(run == "t" for run, _ in names[: transfer_at + 1])
    assert all(run == "p" for run, _ in names[transfer_at + 1 :])


def test_the_summary_caption_states_the_rule_of_each_check_it_shows(tmp_path):
    plain = summary_checks([load_run(write_fake_run(tmp_path / "p"))])
    assert "withheld classes" not in overview_caption(plain)
    ride = summary_checks([load_run(write_transfer_run(tmp_path / "t", _falling))])
    caption = overview_caption(ride)
    assert "twice the combined standard error" in caption and "AGOP" not in caption
