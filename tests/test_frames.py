"""One frame classifier (issue 22, item 5): exact frames, the tolerance rule, the users."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcollapse import frames, schema
from neuralcollapse.geometry import of_etf_distance, orthogonal_frame, simplex_etf
from neuralcollapse.metrics import measure


def _measured(means: torch.Tensor, per_class: int = 3) -> tuple[float, float, float, int]:
    """(OF gap, ratio, ETF gap, K) of features sitting exactly at the class means."""
    k = means.shape[0]
    features = means.repeat_interleave(per_class, dim=0)
    labels = torch.arange(k).repeat_interleave(per_class)
    result = measure(features, labels, num_classes=k)
    return (*(getattr(result, key) for key in schema.FRAME_KEYS), k)


@pytest.mark.parametrize("k", [2, 3, 4, 10, 50])
def test_exact_frames_read_their_levels_and_are_named(k):
    levels = frames.frame_levels(k)
    assert levels[frames.ORTHOGONAL] == pytest.approx((0.0, 1 / math.sqrt(k), 0.0))
    assert levels[frames.ETF] == pytest.approx((of_etf_distance(k), 0.0, 0.0))
    of_values = _measured(3.0 * orthogonal_frame(k, k + 2, seed=1))
    etf_values = _measured(2.0 * simplex_etf(k, k + 2, seed=2))
    for tolerance in (frames.SOLVER_TOLERANCE, frames.NETWORK_TOLERANCE):
        assert frames.classify_frame(*of_values, tolerance=tolerance) == frames.ORTHOGONAL
        assert frames.classify_frame(*etf_values, tolerance=tolerance) == frames.ETF


def test_a_simplex_etf_shifted_by_a_global_mean_is_a_centred_etf():
    k = 5
    etf = simplex_etf(k, k + 1, seed=3)
    shift = torch.zeros(k + 1, dtype=torch.float64)
    shift[-1] = 0.4  # orthogonal to the ETF's span: the centred means stay an ETF
    assert frames.classify_frame(*_measured(etf + shift)) == frames.CENTRED_ETF


def test_the_tolerance_is_a_fraction_of_the_distance_between_the_frames():
    k = 4
    for tolerance in (frames.SOLVER_TOLERANCE, frames.NETWORK_TOLERANCE):
        gap_tol, ratio_tol = frames.frame_tolerances(k, tolerance)
        assert gap_tol == pytest.approx(tolerance * of_etf_distance(k))
        assert ratio_tol == pytest.approx(tolerance / math.sqrt(k))
        of_ratio = 1 / math.sqrt(k)
        inside = frames.classify_frame(0.99 * gap_tol, of_ratio, 0.0, k, tolerance=tolerance)
        outside = frames.classify_frame(1.01 * gap_tol, of_ratio, 0.0, k, tolerance=tolerance)
        assert (inside, outside) == (frames.ORTHOGONAL, frames.CENTRED_ETF)
        far = frames.classify_frame(0.0, of_ratio, 3 * gap_tol, k, tolerance=tolerance)
        assert far == frames.NEITHER
        # the ratio alone can move an OF out of the orthogonal frame
        off = frames.classify_frame(0.0, of_ratio + 1.01 * ratio_tol, 0.0, k, tolerance=tolerance)
        assert off == frames.CENTRED_ETF


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match="at least 2 classes"):
        frames.classify_frame(0.0, 1.0, 0.0, 1)
    with pytest.raises(TypeError, match="num_classes"):
        frames.classify_frame(0.0, 1.0, 0.0, 4.0)
    with pytest.raises(ValueError, match=r"\(0, 1/2\)"):
        frames.frame_tolerances(4, 0.5)
    with pytest.raises(ValueError, match="frame code"):
        frames.frame_matches("orthogonal frame", frames.ORTHOGONAL)


def test_a_centred_etf_prediction_is_met_by_every_frame_with_centred_etf_means():
    met = [code for code in frames.FRAMES if frames.frame_matches(frames.CENTRED_ETF, code)]
    assert sorted(met) == sorted((frames.ETF, frames.ORTHOGONAL, frames.CENTRED_ETF))
    assert frames.frame_matches(frames.ETF, frames.ETF)
    assert not frames.frame_matches(frames.ORTHOGONAL, frames.ETF)


def test_the_ufm_verdict_is_the_classifier_with_the_solver_tolerance():
    from neuralcollapse.ufm.evaluate import GEOMETRY_TOL, ZERO_NORM, geometry_verdict

    assert GEOMETRY_TOL == frames.SOLVER_TOLERANCE
    k = 4
    cases = {
        frames.ORTHOGONAL: orthogonal_frame(k, 6, seed=0),
        frames.ETF: simplex_etf(k, 6, seed=0),
    }
    for expected, means in cases.items():
        features = means.repeat_interleave(2, dim=0)
        result = measure(features, torch.arange(k).repeat_interleave(2), num_classes=k)
        assert geometry_verdict(result, 1.0) == expected
        assert geometry_verdict(result, ZERO_NORM / 2) == frames.ZERO
    assert geometry_verdict(None, 1.0) == frames.ZERO


def test_the_closed_forms_speak_the_same_vocabulary():
    from neuralcollapse.ufm.closed_forms import theory
    from neuralcollapse.ufm.problem import UFMProblem

    codes = set()
    for bias in ("none", "free", 3.0):  # an OF, an ETF, a centred ETF with a global mean
        problem = UFMProblem(num_classes=4, per_class=2, dim=8, bias=bias)
        codes.add(theory(problem).geometry)
    assert codes == {frames.ORTHOGONAL, frames.ETF, frames.CENTRED_ETF}
