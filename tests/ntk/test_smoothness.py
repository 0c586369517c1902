"""Kernel profiles, ridgeless interpolation on the circle and the kinks at training points."""

from __future__ import annotations

import math

import pytest
import torch

from neuralcollapse.ntk.analytic import MLPKernel, ResNetKernel
from neuralcollapse.ntk.smoothness import (
    circle_points,
    fit_ridgeless,
    kernel_profile,
    paper_target,
    profile_slope_at_zero,
    summarize_smoothness,
    training_angles,
)


@pytest.mark.parametrize("depth", [1, 2, 3, 5])
def test_mlp_profile_slope_at_zero_is_minus_depth_over_two_pi(depth):
    # each of the L derivative factors (pi - t)/(2 pi) loses gamma/(2 pi); forward terms are flat
    slope = profile_slope_at_zero(MLPKernel(depth))
    assert slope == pytest.approx(-depth / (2 * math.pi), rel=1e-7)


@pytest.mark.parametrize("depth", [1, 3, 5])
def test_resnet_profile_is_flatter_than_mlp_and_steepens_with_alpha(depth):
    mlp_slope = profile_slope_at_zero(MLPKernel(depth))
    slopes = [profile_slope_at_zero(ResNetKernel(depth, a)) for a in (0.1, 0.5, 1.0, 2.0, 5.0)]
    assert all(mlp_slope < slope < 0 for slope in slopes)
    assert all(later < earlier for earlier, later in zip(slopes, slopes[1:], strict=False))
    # large alpha: the branches dominate the skip connections and the MLP cusp returns
    assert profile_slope_at_zero(ResNetKernel(depth, 100.0)) == pytest.approx(mlp_slope, rel=1e-3)
    # small alpha: the kernel tends to the (smooth) linear one
    assert abs(profile_slope_at_zero(ResNetKernel(depth, 1e-3))) < 1e-5


@pytest.mark.parametrize("kernel", [MLPKernel(3), ResNetKernel(3, 0.5)])
def test_profile_is_one_at_zero_symmetric_and_rotation_invariant(kernel):
    gammas = torch.linspace(-3.0, 3.0, 61, dtype=torch.float64)
    profile = kernel_profile(kernel, gammas)
    assert float(kernel_profile(kernel, [0.0])[0]) == pytest.approx(1.0, abs=1e-15)
    assert torch.allclose(profile, profile.flip(0), rtol=1e-12)
    # k(x(s), x(s + gamma)) does not depend on s
    shifted = kernel(circle_points([0.7]), circle_points(gammas + 0.7))[0]
    assert torch.allclose(shifted / kernel(circle_points([0.7]))[0, 0], profile, rtol=1e-12)


@pytest.mark.parametrize("sampling", ["equispaced", "random"])
def test_ridgeless_interpolant_passes_through_training_points(sampling):
    angles = training_angles(10, sampling, seed=3)
    for kernel in (MLPKernel(4), ResNetKernel(4, 0.5)):
        interpolant = fit_ridgeless(kernel, angles)
        assert torch.allclose(interpolant(angles), paper_target(angles), atol=1e-8)


def test_interpolant_is_invariant_to_kernel_scale():
    angles = training_angles(8, "random", seed=1)
    grid = torch.linspace(0, 6, 50, dtype=torch.float64)
    kernel = ResNetKernel(3, 1.0)
    base = fit_ridgeless(kernel, angles)
    scaled = fit_ridgeless(lambda a, b=None: 7.5 * kernel(a, b), angles)
    assert torch.allclose(scaled(grid), base(grid), rtol=1e-9)
    assert torch.allclose(scaled.kinks(), base.kinks(), rtol=1e-9)


@pytest.mark.parametrize("kernel", [MLPKernel(5), ResNetKernel(5, 0.5), ResNetKernel(5, 2.0)])
def test_kinks_from_coefficients_match_one_sided_finite_differences(kernel):
    interpolant = fit_ridgeless(kernel, training_angles(12, "random", seed=2))
    analytic = interpolant.kinks()
    numerical = interpolant.numerical_kinks()
    assert torch.allclose(numerical, analytic, rtol=1e-4, atol=1e-6 * analytic.abs().max())


def test_interpolant_has_no_kink_between_training_points():
    interpolant = fit_ridgeless(MLPKernel(5), training_angles(12, "equispaced"))
    midpoints = interpolant.train_angles + math.pi / 12
    shifted = fit_ridgeless(MLPKernel(5), midpoints)  # same kernel, kinks now at midpoints
    assert shifted.kinks().abs().min() > 0.1
    step = 1e-5
    values = interpolant(torch.stack([midpoints - step, midpoints, midpoints + step], dim=1))
    values = values.reshape(-1, 3)
    jump = (values[:, 2] - values[:, 1]) / step - (values[:, 1] - values[:, 0]) / step
    assert jump.abs().max() < 1e-3


def test_summary_reports_mlp_kinks_larger_than_resnet_kinks_on_equispaced_points():
    # the claim of Tirer, Bruna & Giryes: ResNet interpolants are smoother than the MLP's
    angles = training_angles(12, "equispaced")
    mlp = summarize_smoothness(MLPKernel(5), angles)
    for alpha in (0.1, 0.5, 1.0, 2.0):
        resnet = summarize_smoothness(ResNetKernel(5, alpha), angles)
        assert resnet.mean_abs_kink < mlp.mean_abs_kink
        assert resnet.profile_slope > mlp.profile_slope
    assert mlp.max_abs_kink >= mlp.mean_abs_kink > 0
    assert 0 < mlp.rmse_to_target < 1


def test_random_training_angles_are_sorted_reproducible_and_in_range():
    first = training_angles(9, "random", seed=4)
    assert torch.equal(first, training_angles(9, "random", seed=4))
    assert not torch.equal(first, training_angles(9, "random", seed=5))
    assert torch.all(first[1:] >= first[:-1]) and first.min() >= 0 and first.max() < 2 * math.pi


# ---- bad input ---------------------------------------------------------------------------


def test_unknown_sampling_is_rejected():
    with pytest.raises(ValueError, match="sampling must be 'equispaced' or 'random'; got 'grid'"):
        training_angles(8, "grid")


@pytest.mark.parametrize("count", [1, 0, 2.0])
def test_too_few_training_points_are_rejected(count):
    with pytest.raises(ValueError, match="num_points must be an integer >= 2"):
        training_angles(count)


def test_targets_of_wrong_length_are_rejected():
    with pytest.raises(ValueError, match="one value per training angle; got 3 values for 4"):
        fit_ridgeless(MLPKernel(2), [0.0, 1.0, 2.0, 3.0], [1.0, 2.0, 3.0])


def test_non_finite_targets_are_rejected():
    with pytest.raises(ValueError, match="targets contain NaN or inf"):
        fit_ridgeless(MLPKernel(2), [0.0, 1.0], [1.0, math.inf])


def test_bad_finite_difference_step_is_rejected():
    with pytest.raises(ValueError, match=r"step must be a finite number in \(0, 0.1\)"):
        profile_slope_at_zero(MLPKernel(2), step=0.5)
