"""theory(): where no closed form exists it says so; dimensions too small give clear errors."""

import pytest

from neuralcollapse.ufm import UFMProblem, theory
from neuralcollapse.ufm.closed_forms import deep_linear_singular_value


@pytest.mark.parametrize(
    "fields,reason",
    [
        (dict(per_class=(2, 3, 4)), "imbalanced"),
        (dict(loss="ce", depth=2), "cross-entropy with depth >= 2"),
        (dict(depth=2, bias="free"), "depth >= 2 with a bias"),
        (dict(depth=3, activation="relu"), "ReLU with depth >= 3"),
    ],
)
def test_no_closed_form_is_reported_not_guessed(fields, reason):
    result = theory(UFMProblem(3, **{"per_class": 2, "dim": 6, **fields}))
    assert not result.available
    assert reason in result.reason
    assert result.f_star is None and result.gram_means is None and result.is_zero is None


@pytest.mark.parametrize(
    "fields,message",
    [
        (dict(dim=3), "d=3 < 4"),  # no bias needs d >= K
        (dict(dim=2, bias="free"), "d=2 < 3"),  # free bias needs d >= K-1
        (dict(dim=2, loss="ce"), "d=2 < 3"),
        (dict(dim=6, depth=2, hidden_dims=(3,)), "hidden width 3"),
    ],
)
def test_dimensions_too_small_for_a_closed_form_raise(fields, message):
    with pytest.raises(ValueError, match=message):
        theory(UFMProblem(4, **{"per_class": 2, **fields}))


def test_free_bias_closed_form_accepts_d_equal_k_minus_one():
    assert theory(UFMProblem(4, 2, 3, bias="free")).available


@pytest.mark.parametrize("layers", [2, 3, 4])
def test_deep_singular_value_solves_the_stationarity_equation(layers):
    t = 0.05
    s = deep_linear_singular_value(layers, t)
    assert s ** ((layers - 1) / (layers + 1)) * (1 - s) == pytest.approx(t, rel=1e-12)
    assert s > (layers - 1) / (2 * layers)  # the largest root
    assert deep_linear_singular_value(layers, 10.0) is None


@pytest.mark.parametrize("layers", [2, 3])
def test_deep_threshold_is_where_the_nonzero_value_reaches_one_half(layers):
    # (L-1)^(L-1)/L^(2L) is where g(s*) = g(0) = 1/2 (L = 2: 1/16)
    k, n = 3, 2
    critical = (layers - 1) ** (layers - 1) / layers ** (2 * layers)
    for ratio, zero in ((0.98, False), (1.02, True)):
        lam = (ratio * critical / (k ** (layers + 1) * n)) ** (1 / (layers + 1))
        result = theory(UFMProblem(k, n, 4, depth=layers, lam_w=lam, lam_h=lam))
        assert result.is_zero == zero
        assert result.f_star <= 0.5
