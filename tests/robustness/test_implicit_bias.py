"""Gradient descent on the unregularised CE UFM approaches the max-margin simplex ETF."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from neuralcollapse.geometry import simplex_etf
from neuralcollapse.ufm.implicit_bias import (
    describe,
    implicit_bias_gd,
    max_margin,
    record_steps,
    validate_zero_decay,
)


def _normalised_margin(weights, features, labels):
    logits = weights @ features
    columns = np.arange(len(labels))
    own = logits[labels, columns]
    others = logits.copy()
    others[labels, columns] = -np.inf
    return np.min(own - others.max(axis=0)) / (np.linalg.norm(weights) * np.linalg.norm(features))


@pytest.mark.parametrize("k, n, d", [(4, 5, 20), (3, 2, 2), (10, 3, 12)])
def test_max_margin_is_attained_by_the_etf_and_bounds_random_directions(k, n, d):
    labels = np.repeat(np.arange(k), n)
    if d >= k:
        etf = simplex_etf(k, d, seed=k).numpy()
    else:  # d = K - 1: the ETF written in an orthonormal basis of its own span
        full = simplex_etf(k).numpy()
        etf = full @ np.linalg.svd(full)[2][: k - 1].T
    weights = 2.5 * etf
    features = 0.3 * etf[labels].T  # collapsed, self-dual
    assert _normalised_margin(weights, features, labels) == pytest.approx(
        max_margin(k, n), rel=1e-12
    )
    rng = np.random.default_rng(0)
    for _ in range(200):
        w = rng.standard_normal((k, d))
        h = w[labels].T + 0.3 * rng.standard_normal((d, k * n))  # separating, not an ETF
        assert _normalised_margin(w, h, labels) < max_margin(k, n)


def test_gradient_descent_approaches_the_etf_from_below():
    result = implicit_bias_gd(4, 5, 20, steps=5000, lr=1.0, init_scale=1e-2, seed=0)
    theory = 1 / (3 * math.sqrt(5))
    assert result.theory_margin == pytest.approx(theory)
    assert result.loss_increases == 0
    assert result.separated_step is not None
    steps, margin = result.series("margin")
    _, gap = result.series("etf_gap_means")
    _, gap_w = result.series("etf_gap_weights")
    _, loss = result.series("loss")
    assert np.all(margin <= theory * (1 + 1e-12))  # the bound holds at every step
    after = steps >= result.separated_step  # burn-in: until every sample has p_y > 1/2
    assert after.sum() >= 10
    assert np.all(np.diff(gap[after]) < 0), "ETF gap of the means must fall after burn-in"
    assert np.all(np.diff(gap_w[after]) < 0), "ETF gap of the classifier must fall"
    assert np.all(np.diff(margin[after]) > 0), "the normalised margin must grow"
    assert np.all(np.diff(loss) < 0)
    assert gap[0] > 0.3 and gap[-1] < 0.02 and gap_w[-1] < 0.02
    assert 0.97 < margin[-1] / theory < 1
    final = result.final
    assert final["nc1"] < 1e-4 and final["self_duality_uncentred"] < 1e-3
    # balanced factors (GD from a small start conserves W^T W - H H^T to first order)
    assert final["norm_w"] == pytest.approx(final["norm_h"], rel=1e-2)
    assert final["margin_lyu_li"] == pytest.approx(final["margin"] / 2, rel=1e-3)
    json.dumps(result.summary(), allow_nan=False)


def test_longer_runs_get_closer():
    short = implicit_bias_gd(3, 4, 6, steps=500, seed=1)
    long = implicit_bias_gd(3, 4, 6, steps=8000, seed=1)
    assert long.final["margin_ratio"] > short.final["margin_ratio"]
    assert long.final["etf_gap_means"] < short.final["etf_gap_means"]


def test_record_steps_are_log_spaced():
    steps = record_steps(100_000, 40)
    assert steps[0] == 0 and steps[1] == 1 and steps[-1] == 100_000
    assert len(steps) == len(set(steps)) and steps == sorted(steps)
    ratios = np.diff(np.log(steps[10:]))
    assert ratios.max() < 2 * ratios.min() + 1e-9  # evenly spaced in log once rounding is gone


def test_bad_settings():
    with pytest.raises(ValueError, match="dim must be"):
        implicit_bias_gd(5, 2, 3)
    with pytest.raises(ValueError, match="lr"):
        implicit_bias_gd(lr=0)
    with pytest.raises(ValueError, match="steps"):
        implicit_bias_gd(steps=0)
    with pytest.raises(ValueError, match="diverged"):
        implicit_bias_gd(3, 2, 4, steps=200, lr=1e6, init_scale=1.0)


def test_zero_decay_needs_ce_with_gd():
    validate_zero_decay(loss="ce", solver="gd")
    with pytest.raises(ValueError, match="--loss ce --solver gd"):
        validate_zero_decay(loss="mse", solver="gd")
    with pytest.raises(ValueError, match="--solver gd"):
        validate_zero_decay(loss="ce", solver="lbfgs")
    with pytest.raises(ValueError, match="--bias none"):
        validate_zero_decay(loss="ce", solver="gd", bias="free")
    with pytest.raises(ValueError, match="--depth 1"):
        validate_zero_decay(loss="ce", solver="gd", depth=2)
    with pytest.raises(ValueError, match="balanced classes"):
        validate_zero_decay(loss="ce", solver="gd", balanced=False)


def test_description_reports_direction_not_objective():
    result = implicit_bias_gd(3, 2, 4, steps=200, record_points=5)
    text = describe(result)
    assert "no minimiser" in text and "objective" not in text
    assert f"{result.theory_margin:.6g}" in text and f"{result.final['margin']:.6g}" in text
