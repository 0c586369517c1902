"""DeepFool's and the generalisation table's scalar arguments go through the shared checker
(issue 13): NumPy scalars are accepted, ``True`` and NaN are refused, naming the argument."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuralcollapse.robustness import (
    deepfool,
    generalisation_table,
    robustness,
    seconds_per_image,
    subset_indices,
)


def _affine() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(6, 3).double()


def _images() -> torch.Tensor:
    return torch.randn(10, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)


def test_numpy_settings_give_the_same_attack():
    model, images = _affine(), _images()
    plain = deepfool(model, images, overshoot=0.02, max_steps=5, batch_size=4)
    numpy = deepfool(
        model, images, overshoot=np.float64(0.02), max_steps=np.int64(5), batch_size=np.int32(4)
    )
    assert torch.equal(plain.perturbations, numpy.perturbations)
    assert torch.equal(plain.steps, numpy.steps)


def test_numpy_subset_and_seed_give_the_same_images():
    assert torch.equal(subset_indices(50, np.int64(7), np.int64(3)), subset_indices(50, 7, 3))
    result = robustness(_affine(), _images(), subset=np.int64(4), seed=np.int64(2))
    assert result.count == 4 and type(result.seed) is int and type(result.max_steps) is int
    assert seconds_per_image(_affine(), _images(), probe=np.int64(3)) > 0


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"overshoot": float("nan")}, r"^overshoot \(eta\) must be a finite number >= 0; got nan"),
        ({"overshoot": float("inf")}, r"^overshoot \(eta\) must be a finite number >= 0; got inf"),
        ({"overshoot": True}, r"^overshoot \(eta\) must be a finite number >= 0; got True"),
        ({"max_steps": True}, r"^max_steps must be an integer >= 1 .*; got True"),
        ({"max_steps": 5.0}, r"^max_steps must be an integer >= 1 .*; got 5.0"),
        ({"batch_size": True}, r"^batch_size must be an integer >= 1 .*; got True"),
        ({"batch_size": float("nan")}, r"^batch_size must be an integer >= 1 .*; got nan"),
    ],
)
def test_bad_settings_name_the_argument(options, message):
    with pytest.raises(ValueError, match=message):
        deepfool(_affine(), _images(), **options)
    with pytest.raises(ValueError, match=message):
        robustness(_affine(), _images(), **options)


@pytest.mark.parametrize("bad", [True, float("nan"), 3.0])
def test_bad_subset_seed_and_probe_name_the_argument(bad):
    with pytest.raises(ValueError, match=r"^subset must be an integer >= 1 .*or None"):
        subset_indices(50, bad)
    with pytest.raises(ValueError, match=r"^seed must be an integer; got "):
        subset_indices(50, 5, bad)
    with pytest.raises(ValueError, match=r"^seed must be an integer; got "):
        robustness(_affine(), _images(), seed=bad)
    with pytest.raises(ValueError, match=r"^probe must be an integer >= 1 .*; got "):
        seconds_per_image(_affine(), _images(), probe=bad)


def test_generalisation_rows_accept_numpy_epochs_and_refuse_bool_and_nan():
    rows = [
        {"epoch": np.int64(1), "train_error": 0.0, "test_error": 0.25, "test_loss": 1.0},
        {"epoch": np.int64(3), "train_error": 0.0, "test_error": 0.2, "test_loss": 0.5},
    ]
    table = generalisation_table(rows)
    assert (table.tpt_epoch, table.last_epoch, table.terminal_epochs) == (1, 3, 2)
    assert type(table.last_epoch) is int
    for bad in (True, float("nan")):
        with pytest.raises(ValueError, match=r"^'epoch' of row 2 must be an integer; got "):
            generalisation_table([rows[0], {"epoch": bad, "train_error": 0.0}])
