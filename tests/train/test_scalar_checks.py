"""Training options, data subsets and network sizes check their scalars with the shared
checker (issue 13): NumPy scalars accepted (and stored as Python numbers), ``True`` and NaN
refused, naming the option."""

from __future__ import annotations

import json

import numpy as np
import pytest

from neuralcollapse.train.config import TrainConfig, build_config, config_to_dict, validate
from neuralcollapse.train.data import balanced_subset, step_imbalanced_subset
from neuralcollapse.train.nets import build_net

LABELS = np.repeat(np.arange(4), 6)


def test_numpy_options_are_accepted_and_stored_as_python_numbers():
    given = TrainConfig(
        width=np.int64(8), lr=np.float64(0.1), seed=np.int32(3), per_class=np.int64(5)
    )
    config = validate(given)
    assert (config.width, config.lr, config.seed, config.per_class) == (8, 0.1, 3, 5)
    assert [type(v) for v in (config.width, config.lr, config.seed, config.per_class)] == [
        int,
        float,
        int,
        int,
    ]
    json.dumps(config_to_dict(config))  # a NumPy scalar would not serialise
    assert type(given.width) is np.int64  # the caller's object is left as it was
    assert build_config({"momentum": np.float32(0.5)}).momentum == 0.5


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("width", r"^width must be an integer; got True"),
        ("per_class", r"^per_class must be an integer, or null/None \(unset\); got True"),
        ("robustness", r"^robustness must be an integer; got True"),
        ("lr", r"^lr must be a finite number; got True"),
        ("imbalance", r"^imbalance must be a finite number, or null/None \(unset\); got True"),
    ],
)
def test_bool_is_not_a_number(option, message):
    with pytest.raises(ValueError, match=message):
        build_config({option: True})


@pytest.mark.parametrize("option", ["label_smoothing", "feature_decay", "classifier_weight_decay"])
def test_nan_is_refused_by_name(option):
    with pytest.raises(ValueError, match=rf"^{option} must be a finite number.*; got nan"):
        build_config({option: float("nan")})


def test_numpy_nan_and_integer_where_a_float_is_needed():
    with pytest.raises(ValueError, match=r"^lr must be a finite number; got "):
        build_config({"lr": np.float64("nan")})
    assert build_config({"lr": np.int64(1)}).lr == 1.0


def test_half_open_options_name_both_ends():
    half_open = r"must be a finite number in \[0, 1\) "
    with pytest.raises(ValueError, match=rf"^momentum {half_open}.*; got -0.1"):
        build_config({"momentum": -0.1})
    with pytest.raises(ValueError, match=r"^label_smoothing must be a finite number in \[0, 1\) "):
        build_config({"label_smoothing": 1.0})
    assert build_config({"label_smoothing": 0.0, "momentum": 0.0}).momentum == 0.0


def test_balanced_subset_scalars():
    assert np.array_equal(
        balanced_subset(LABELS, np.int64(3), seed=1), balanced_subset(LABELS, 3, 1)
    )
    for bad in (True, float("nan"), 3.0):
        with pytest.raises(ValueError, match=r"^per_class must be an integer >= 1 .*; got "):
            balanced_subset(LABELS, bad)


def test_step_imbalance_scalars():
    expected = step_imbalanced_subset(LABELS, 2.0, 2, seed=0)
    got = step_imbalanced_subset(LABELS, np.float64(2.0), np.int64(2), seed=0)
    assert np.array_equal(got, expected)
    for bad in (True, float("nan")):
        with pytest.raises(
            ValueError, match=r"^ratio \(imbalance R\) must be a finite number >= 1"
        ):
            step_imbalanced_subset(LABELS, bad, 2)
        with pytest.raises(ValueError, match=r"^minority_classes \(K_B\) must be an integer in"):
            step_imbalanced_subset(LABELS, 2.0, bad)


def test_build_net_sizes():
    net = build_net("mlp", (1, 4, 4), 3, width=np.int64(5), depth=np.int32(2))
    reference = build_net("mlp", (1, 4, 4), 3, width=5, depth=2)
    shapes = [tuple(p.shape) for p in net.parameters()]
    assert shapes == [tuple(p.shape) for p in reference.parameters()]
    for option in ("width", "depth"):
        for bad in (True, float("nan"), 0):
            with pytest.raises(ValueError, match=rf"^{option} must be an integer >= 1 "):
                build_net("mlp", (1, 4, 4), 3, **{option: bad})


def test_sizes_that_had_no_check_are_refused_by_name():
    with pytest.raises(ValueError, match=r"^num_classes \(K\) must be an integer >= 2"):
        build_net("mlp", (1, 8, 8), 1)
    with pytest.raises(ValueError, match=r"^base_channels must be an integer >= 1"):
        build_net("cnn", (1, 8, 8), 3, base_channels=0)
    with pytest.raises(ValueError, match=r"^seed must be an integer >= 0"):
        validate(TrainConfig(seed=-1))


@pytest.mark.parametrize("fraction", [-0.1, 1.5, float("nan"), True])
def test_holdout_fraction_outside_zero_one_is_refused(fraction):
    from neuralcollapse.train.data import stratified_holdout

    with pytest.raises(ValueError, match=r"^fraction must be a finite number in \[0, 1\]"):
        stratified_holdout(LABELS, fraction)


def test_holdout_fraction_accepts_numpy_and_holds_out_round_fraction_per_class():
    from neuralcollapse.train.data import stratified_holdout

    keep, holdout = stratified_holdout(LABELS, np.float64(0.5))
    assert len(holdout) == 4 * 3 and len(keep) == 4 * 3
    assert sorted(np.bincount(LABELS[holdout]).tolist()) == [3, 3, 3, 3]
