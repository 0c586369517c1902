"""The report's summary: verdicts computed from constructed runs whose answer is known."""

from __future__ import annotations

import math

import pytest

from neuralcollapse import schema
from neuralcollapse.viz.report import (
    CENTRED_ETF,
    ETF,
    FAILS,
    FRAME_TOLERANCE,
    HOLDS,
    NC4_TOLERANCE,
    NEITHER,
    ORTHOGONAL,
    UNKNOWN,
    classify_frame,
    frame_tolerances,
    measured_frame,
    overview_caption,
    predicted_frame,
    run_checks,
)
from neuralcollapse.viz.runs import load_run

from .fake_runs import write_fake_run


def _checks(run) -> dict:
    return {check.check: check for check in run_checks(run)}


def _frame_check(path) -> object:
    return _checks(load_run(path))["frame of the penultimate means"]


def test_mse_without_bias_reaching_an_orthogonal_frame_holds(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run", loss="mse", bias=False, frame="orthogonal"))
    assert measured_frame(run).frame == ORTHOGONAL
    check = _checks(run)["frame of the penultimate means"]
    assert check.verdict == HOLDS
    assert check.expected.startswith("orthogonal frame (MSE, no classifier bias")
    assert check.measured.startswith("orthogonal frame (OF gap")


def test_mse_without_bias_ending_at_a_simplex_etf_does_not_hold(tmp_path):
    check = _frame_check(write_fake_run(tmp_path / "run", loss="mse", bias=False, frame="etf"))
    assert check.verdict == FAILS
    assert check.measured.startswith("simplex ETF (OF gap")


def test_with_a_bias_the_centred_etf_is_predicted_and_an_etf_holds(tmp_path):
    ce = _frame_check(write_fake_run(tmp_path / "ce", loss="ce", bias=True, frame="etf"))
    assert ce.verdict == HOLDS and "centred means" in ce.expected
    mse = _frame_check(write_fake_run(tmp_path / "mse", loss="mse", bias=True, frame="etf"))
    assert mse.verdict == HOLDS


def test_ce_without_bias_predicts_an_etf_and_an_orthogonal_frame_does_not_hold(tmp_path):
    path = write_fake_run(tmp_path / "run", loss="ce", bias=False, frame="orthogonal")
    check = _frame_check(path)
    assert check.expected.startswith("simplex ETF, global mean 0")
    assert check.verdict == FAILS


def test_a_run_without_loss_or_bias_in_its_config_is_unknown(tmp_path):
    check = _frame_check(write_fake_run(tmp_path / "run", loss=None, bias=None))
    assert check.verdict == UNKNOWN
    assert check.expected == "unknown: config.json does not record the loss and bias"
    # the measured frame is still reported
    assert check.measured.startswith("orthogonal frame")


def test_a_collapse_tracker_run_gets_an_unknown_frame_prediction(tmp_path):
    """A real CollapseTracker run directory: its config has no loss or bias."""
    torch = pytest.importorskip("torch")
    from torch import nn

    from neuralcollapse.integrations import CollapseTracker

    torch.manual_seed(0)
    labels = torch.arange(60) % 3
    inputs = torch.randn(60, 6) + 2 * labels.view(-1, 1).float()
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    batches = [(inputs[:30], labels[:30]), (inputs[30:], labels[30:])]
    tracker = CollapseTracker(tmp_path / "run", model, batches, classifier="2")
    for epoch in (1, 2):
        tracker(epoch, train_error=0.5 / epoch)
    tracker.close()
    checks = _checks(load_run(tmp_path / "run"))
    assert checks["frame of the penultimate means"].verdict == UNKNOWN
    assert "does not record the loss and bias" in checks["frame of the penultimate means"].expected
    assert checks["terminal phase"].verdict == FAILS
    assert checks["terminal phase"].measured == "not reached (training error 25% at epoch 2)"


def test_terminal_phase_reached_or_not(tmp_path):
    reached = _checks(load_run(write_fake_run(tmp_path / "a")))["terminal phase"]
    assert (reached.measured, reached.verdict) == ("epoch 5", HOLDS)
    never = _checks(load_run(write_fake_run(tmp_path / "b", final_train_error=0.03)))
    assert never["terminal phase"].verdict == FAILS
    assert never["terminal phase"].measured == "not reached (training error 3% at epoch 11)"


def test_tpt_is_computed_from_the_epochs_when_there_is_no_summary(tmp_path):
    run = load_run(write_fake_run(tmp_path / "run", write_summary=False))
    assert run.summary is None
    assert _checks(run)["terminal phase"].measured == "epoch 5"


def test_nc1_first_to_last_with_the_factor(tmp_path):
    falling = load_run(write_fake_run(tmp_path / "falling"))
    _, nc1 = falling.series("nc1")
    check = _checks(falling)["NC1 over training"]
    assert check.verdict == HOLDS
    assert f"÷{nc1[0] / nc1[-1]:.3g}" in check.measured
    assert "(epoch 0) →" in check.measured and "(epoch 11)" in check.measured
    rising = load_run(write_fake_run(tmp_path / "rising", rising=("nc1",)))
    check = _checks(rising)["NC1 over training"]
    assert check.verdict == FAILS and "×" in check.measured


def test_ncc_mismatch_at_the_end_against_its_tolerance(tmp_path):
    run = load_run(write_fake_run(tmp_path / "fast"))
    _, mismatch = run.series("ncc_mismatch")
    assert mismatch[-1] <= NC4_TOLERANCE
    assert _checks(run)["NC4: classifier = nearest centre"].verdict == HOLDS
    slow = load_run(write_fake_run(tmp_path / "slow", decay=0.1))
    _, mismatch = slow.series("ncc_mismatch")
    assert mismatch[-1] > NC4_TOLERANCE
    check = _checks(slow)["NC4: classifier = nearest centre"]
    assert check.verdict == FAILS and check.measured == f"{100 * mismatch[-1]:.3g}% at epoch 11"


def test_a_last_row_not_computed_is_skipped_for_the_last_computed_one(tmp_path):
    path = write_fake_run(
        tmp_path / "run", not_computed={(11, "penultimate_post"): "class means coincide"}
    )
    run = load_run(path)
    assert run.last_row()["nc1"] is None
    assert measured_frame(run).epoch == 8
    assert "(epoch 8)" in _checks(run)["NC1 over training"].measured


@pytest.mark.parametrize("k", [2, 4, 10, 100])
def test_exact_frames_are_classified_as_themselves(k):
    def level(key, frame):
        return schema.theory_value(key, frame, k) or 0.0

    keys = ("of_gap_means", "global_mean_ratio", "etf_gap_means")
    assert classify_frame(*(level(key, "orthogonal") for key in keys), k) == ORTHOGONAL
    assert classify_frame(*(level(key, "etf") for key in keys), k) == ETF
    gap_tol, ratio_tol = frame_tolerances(k)
    assert gap_tol == pytest.approx(FRAME_TOLERANCE * level("of_gap_means", "etf"))
    assert ratio_tol == pytest.approx(FRAME_TOLERANCE / math.sqrt(k))
    # just inside and just outside the tolerance of the OF gap
    of_ratio = level("global_mean_ratio", "orthogonal")
    assert classify_frame(0.99 * gap_tol, of_ratio, 0.0, k) == ORTHOGONAL
    assert classify_frame(1.01 * gap_tol, of_ratio, 0.0, k) == CENTRED_ETF
    # centred means far from an ETF: neither frame
    assert classify_frame(0.0, of_ratio, 3 * gap_tol, k) == NEITHER


def test_classify_frame_needs_two_classes():
    with pytest.raises(ValueError, match="at least 2 classes"):
        classify_frame(0.0, 1.0, 0.0, 1)


def test_predicted_frame_follows_the_theory_for_loss_and_bias():
    assert predicted_frame("mse", False)[0] == ORTHOGONAL
    assert predicted_frame("ce", False)[0] == ETF
    assert predicted_frame("ce", True)[0] == CENTRED_ETF
    assert predicted_frame("mse", True)[0] == CENTRED_ETF
    assert predicted_frame("mse", None) == (None, "unknown: config.json does not record the bias")
    assert predicted_frame("hinge", False)[0] is None


def test_overview_caption_counts_what_holds_and_names_what_does_not(tmp_path):
    good = load_run(write_fake_run(tmp_path / "good"))
    bad = load_run(write_fake_run(tmp_path / "bad", rising=("nc1",), frame="etf"))
    checks = run_checks(good) + run_checks(bad)
    caption = overview_caption(checks)
    holds = sum(check.verdict == HOLDS for check in checks)
    assert f"{holds} of {len(checks)} checks hold" in caption
    assert "bad: NC1 over training" in caption and "bad: frame of the penultimate means" in caption
    assert "good:" not in caption
    assert f"within {FRAME_TOLERANCE:g} of the distance" in caption
