"""The shared scalar argument checker: what it accepts, what it refuses, how it says so."""

from __future__ import annotations

import math

import numpy as np
import pytest

from neuralcollapse.checks import check_float, check_int


@pytest.mark.parametrize("value", [3, np.int64(3), np.int32(3), np.uint8(3)])
def test_check_int_accepts_python_and_numpy_integers_and_returns_a_python_int(value):
    result = check_int("size", value, minimum=1)
    assert result == 3 and type(result) is int


@pytest.mark.parametrize("value", [True, False, np.bool_(True), 3.0, np.float64(3.0), "3", None])
def test_check_int_refuses_bool_floats_strings_and_none(value):
    with pytest.raises(ValueError, match=r"^size must be an integer; got "):
        check_int("size", value)


def test_check_int_bounds_are_inclusive_and_named_in_the_message():
    assert check_int("k", 2, minimum=2, maximum=5) == 2
    assert check_int("k", 5, minimum=2, maximum=5) == 5
    with pytest.raises(ValueError, match=r"^k must be an integer in \[2, 5\]; got 1$"):
        check_int("k", 1, minimum=2, maximum=5)
    with pytest.raises(
        ValueError, match=r"^k must be an integer in \[2, 5\]; got (np\.int64\()?6\)?$"
    ):
        check_int("k", np.int64(6), minimum=2, maximum=5)
    with pytest.raises(ValueError, match=r"^k must be an integer >= 2; got 1$"):
        check_int("k", 1, minimum=2)
    with pytest.raises(ValueError, match=r"^k must be an integer <= 5; got 6$"):
        check_int("k", 6, maximum=5)


def test_check_int_message_carries_meaning_alternative_and_hint():
    with pytest.raises(ValueError) as caught:
        check_int(
            "tile_size",
            0,
            minimum=1,
            meaning="side of the blocks",
            alternative="or None for the default",
            hint="Try 1024.",
        )
    assert str(caught.value) == (
        "tile_size must be an integer >= 1 (side of the blocks), or None for the default; "
        "got 0. Try 1024."
    )


@pytest.mark.parametrize("value", [0.5, 1, np.float32(0.5), np.float64(0.5), np.int64(1)])
def test_check_float_accepts_python_and_numpy_numbers_and_returns_a_python_float(value):
    result = check_float("lr", value, minimum=0.0, strict=True)
    assert result == float(value) and type(result) is float


@pytest.mark.parametrize("value", [True, np.bool_(False), "0.5", None, [0.5]])
def test_check_float_refuses_bool_strings_and_containers(value):
    with pytest.raises(ValueError, match=r"^lr must be a finite number; got "):
        check_float("lr", value)


@pytest.mark.parametrize("value", [math.nan, np.float64("nan"), math.inf, -math.inf])
def test_check_float_refuses_nan_and_infinities_by_default(value):
    with pytest.raises(ValueError, match="lr must be a finite number"):
        check_float("lr", value)


def test_check_float_finite_false_allows_infinity_but_never_nan():
    assert check_float("cap", math.inf, minimum=0.0, finite=False) == math.inf
    with pytest.raises(ValueError, match=r"^cap must be a number \(not NaN\) >= 0; got nan$"):
        check_float("cap", math.nan, minimum=0.0, finite=False)


def test_check_float_bounds_inclusive_or_strict():
    assert check_float("x", 0.0, minimum=0.0) == 0.0
    with pytest.raises(ValueError, match=r"^x must be a finite number > 0; got 0.0$"):
        check_float("x", 0.0, minimum=0.0, strict=True)
    with pytest.raises(ValueError, match=r"^x must be a finite number >= 0; got -1e-09$"):
        check_float("x", -1e-9, minimum=0.0)
    assert check_float("p", 1.0, minimum=0.0, maximum=1.0) == 1.0
    with pytest.raises(ValueError, match=r"^p must be a finite number in \(0, 1\); got 1.0$"):
        check_float("p", 1.0, minimum=0.0, maximum=1.0, strict=True)
    with pytest.raises(ValueError, match=r"^p must be a finite number <= 1; got 2$"):
        check_float("p", 2, maximum=1.0)
    with pytest.raises(ValueError, match=r"positive\.$"):
        check_float("lam", -1.0, minimum=0.0, strict=True, hint="Decay must be positive.")


def test_check_float_half_open_intervals_set_each_end():
    assert check_float("m", 0.0, minimum=0.0, maximum=1.0, strict=(False, True)) == 0.0
    with pytest.raises(ValueError, match=r"^m must be a finite number in \[0, 1\); got 1.0$"):
        check_float("m", 1.0, minimum=0.0, maximum=1.0, strict=(False, True))
    assert check_float("q", 1.0, minimum=0.0, maximum=1.0, strict=(True, False)) == 1.0
    with pytest.raises(ValueError, match=r"^q must be a finite number in \(0, 1\]; got 0.0$"):
        check_float("q", 0.0, minimum=0.0, maximum=1.0, strict=(True, False))
    with pytest.raises(ValueError, match=r"^r must be a finite number > 0; got 0$"):
        check_float("r", 0, minimum=0.0, strict=(True, False))


@pytest.mark.parametrize("value", ["3", None, True, 2.5, [3]])
def test_a_wrong_type_is_a_type_error_and_still_a_value_error(value):
    from neuralcollapse.checks import ArgumentTypeError

    with pytest.raises(TypeError, match="must be an integer"):
        check_int("size", value, minimum=1)
    with pytest.raises(ArgumentTypeError):
        check_int("size", value, minimum=1)
    with pytest.raises(ValueError):  # the earlier contract holds
        check_int("size", value, minimum=1)


def test_a_number_out_of_bounds_is_a_value_error_not_a_type_error():
    with pytest.raises(ValueError, match=r"must be an integer >= 1") as caught:
        check_int("size", 0, minimum=1)
    assert not isinstance(caught.value, TypeError)
    with pytest.raises(TypeError, match="finite number"):
        check_float("lr", "0.1", minimum=0.0)
