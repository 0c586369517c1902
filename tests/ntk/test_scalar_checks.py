"""The smoothness functions and the finite networks check their scalar arguments with the
shared checker (issue 13)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcollapse.ntk import MLPKernel
from neuralcollapse.ntk.models import build_network
from neuralcollapse.ntk.smoothness import profile_slope_at_zero, training_angles


def test_numpy_scalars_are_accepted():
    assert torch.equal(training_angles(np.int64(8)), training_angles(8))
    assert torch.equal(
        training_angles(np.int32(8), "random", seed=np.int64(5)),
        training_angles(8, "random", seed=5),
    )
    kernel = MLPKernel(2)
    assert profile_slope_at_zero(kernel, step=np.float64(1e-4)) == profile_slope_at_zero(kernel)


@pytest.mark.parametrize("bad", [True, float("nan")])
def test_bool_and_nan_are_refused_by_name(bad):
    with pytest.raises(ValueError, match=r"^num_points must be an integer >= 2 .*; got "):
        training_angles(bad)
    with pytest.raises(ValueError, match=r"^seed must be an integer; got "):
        training_angles(8, "random", seed=bad)
    with pytest.raises(ValueError, match=r"^step must be a finite number in \(0, 0.1\) .*; got "):
        profile_slope_at_zero(MLPKernel(2), step=bad)


def test_infinite_step_is_refused():
    with pytest.raises(ValueError, match=r"^step must be a finite number in \(0, 0.1\)"):
        profile_slope_at_zero(MLPKernel(2), step=float("inf"))


@pytest.mark.parametrize("architecture", ["mlp", "resnet"])
def test_network_sizes_and_seed_accept_numpy_integers(architecture):
    sizes = {"in_dim": 3, "width": 4, "depth": 2, "alpha": 0.5, "seed": 7}
    numpy_sizes = {
        "in_dim": np.int64(3),
        "width": np.int32(4),
        "depth": np.int64(2),
        "alpha": np.float64(0.5),
        "seed": np.int64(7),
    }
    plain = build_network(architecture, **sizes)
    numpy = build_network(architecture, **numpy_sizes)
    for first, second in zip(plain.parameters(), numpy.parameters(), strict=True):
        assert torch.equal(first, second)


@pytest.mark.parametrize("bad", [True, float("nan")])
def test_network_in_dim_and_seed_refuse_bool_and_nan(bad):
    with pytest.raises(ValueError, match=r"^in_dim must be an integer >= 1 .*; got "):
        build_network("mlp", in_dim=bad, width=4, depth=2)
    with pytest.raises(ValueError, match=r"^seed must be an integer, or None .*; got "):
        build_network("resnet", in_dim=3, width=4, depth=2, alpha=0.5, seed=bad)


def test_fit_and_summary_arguments_are_checked_by_name():
    from neuralcollapse.ntk.smoothness import fit_ridgeless, summarize_smoothness

    kernel = MLPKernel(2)
    angles = training_angles(6)
    with pytest.raises(ValueError, match=r"^rcond must be a finite number in \[0, 1\]"):
        fit_ridgeless(kernel, angles, rcond=-1.0)
    with pytest.raises(ValueError, match=r"^grid_size must be an integer >= 1"):
        summarize_smoothness(kernel, angles, grid_size=0)
    with pytest.raises(ValueError, match=r"^step \(h\) must be a finite number > 0"):
        fit_ridgeless(kernel, angles).numerical_kinks(step=0.0)
    from_numpy = summarize_smoothness(kernel, angles, grid_size=np.int64(64))
    assert from_numpy == summarize_smoothness(kernel, angles, grid_size=64)
