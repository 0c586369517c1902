"""Analytic MLP and ResNet NTKs: independent recursions, limits, symmetry, PSD, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from neuralcollapse.ntk.analytic import MLPKernel, ResNetKernel, mlp_ntk, resnet_ntk


def _arccos_expectations(var_a, var_b, cov):
    """Cho & Saul arc-cosine kernels of degree 1 and 0, written from the normalised form."""
    norm = np.sqrt(var_a * var_b)
    rho = np.clip(cov / norm, -1.0, 1.0)
    # equal inputs: the recursion's rounding leaves rho = 1 - 1e-16, and arccos turns that
    # into t = 1e-8; the exact value there is t = 0 (the package avoids this with cosine gaps)
    rho = np.where(rho > 1.0 - 1e-12, 1.0, rho)
    theta = np.arccos(rho)
    kappa_1 = (np.sin(theta) + (np.pi - theta) * np.cos(theta)) / np.pi  # E[2 s s]/norm
    kappa_0 = (np.pi - theta) / np.pi  # E[2 s' s']
    return norm * kappa_1 / 2.0, kappa_0 / 2.0


def _reference_mlp_ntk(x1, x2, depth):
    """Theta = sum_l S_l prod_{j>l} Sd_j written as an explicit sum of products (numpy)."""
    d = x1.shape[1]
    var_a = np.sum(x1 * x1, axis=1)[:, None] / d * np.ones((1, len(x2)))
    var_b = np.sum(x2 * x2, axis=1)[None, :] / d * np.ones((len(x1), 1))
    forward = [x1 @ x2.T / d]
    derivative = [None]
    for _ in range(depth):
        moment, dmoment = _arccos_expectations(var_a, var_b, forward[-1])
        forward.append(moment)
        derivative.append(dmoment)
        var_a, var_b = var_a / 2.0, var_b / 2.0
    total = np.zeros_like(forward[0])
    for layer in range(depth + 1):
        product = np.ones_like(total)
        for later in range(layer + 1, depth + 1):
            product = product * derivative[later]
        total += forward[layer] * product
    return total


def _reference_resnet_ntk(x1, x2, depth, alpha):
    """docs/theory.md's ResNet recursion with P_l as explicit products (numpy)."""
    d = x1.shape[1]
    norm_a = np.sum(x1 * x1, axis=1)[:, None] / d * np.ones((1, len(x2)))
    norm_b = np.sum(x2 * x2, axis=1)[None, :] / d * np.ones((len(x1), 1))
    covs, diag_a, diag_b = [x1 @ x2.T / d], [norm_a], [norm_b]
    moments, dmoments = [], []
    for layer in range(depth):
        moment, dmoment = _arccos_expectations(diag_a[layer], diag_b[layer], covs[layer])
        moments.append(moment)
        dmoments.append(dmoment)
        covs.append(covs[layer] + alpha**2 * moment)
        diag_a.append(diag_a[layer] + alpha**2 * diag_a[layer] / 2)
        diag_b.append(diag_b[layer] + alpha**2 * diag_b[layer] / 2)

    def backward(start):  # P_start = prod_{j=start}^{L} (1 + alpha^2 Ed_j), 1-based blocks
        product = np.ones_like(covs[0])
        for block in range(start, depth + 1):
            product = product * (1 + alpha**2 * dmoments[block - 1])
        return product

    total = covs[depth] + backward(1) * covs[0]
    for block in range(1, depth + 1):
        branch = moments[block - 1] + covs[block - 1] * dmoments[block - 1]
        total += alpha**2 * backward(block + 1) * branch
    return total


@pytest.mark.parametrize("depth", [1, 2, 5])
def test_mlp_ntk_matches_independent_arccos_recursion(random_inputs, depth):
    x = random_inputs.numpy()
    expected = _reference_mlp_ntk(x, x[:4] * 0.7, depth)
    actual = mlp_ntk(random_inputs, random_inputs[:4] * 0.7, depth=depth)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("depth", "alpha"), [(1, 0.5), (3, 1.0), (4, 2.5)])
def test_resnet_ntk_matches_theory_recursion_written_independently(random_inputs, depth, alpha):
    x = random_inputs.numpy()
    expected = _reference_resnet_ntk(x, x, depth, alpha)
    actual = resnet_ntk(random_inputs, depth=depth, alpha=alpha)
    np.testing.assert_allclose(actual.numpy(), expected, rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("depth", [1, 3, 6])
def test_mlp_ntk_diagonal_is_closed_form(random_inputs, depth):
    # on the diagonal S_l = q 2^-l and Sd_l = 1/2, so Theta(x, x) = (L + 1) 2^-L |x|^2 / d
    q = (random_inputs**2).sum(dim=1) / random_inputs.shape[1]
    diagonal = torch.diagonal(mlp_ntk(random_inputs, depth=depth))
    assert torch.allclose(diagonal, (depth + 1) * 2.0**-depth * q, rtol=1e-13)


@pytest.mark.parametrize(("depth", "alpha"), [(1, 0.3), (4, 1.0), (5, 2.0)])
def test_resnet_ntk_diagonal_is_closed_form(random_inputs, depth, alpha):
    # K_l = q c^(l-1) with c = 1 + alpha^2/2, E[s s] = K_l/2, E[s' s'] = 1/2, P_l = c^(L-l+1)
    q = (random_inputs**2).sum(dim=1) / random_inputs.shape[1]
    c = 1 + alpha**2 / 2
    expected = q * c**depth + q * c**depth
    for block in range(1, depth + 1):
        expected = expected + alpha**2 * c ** (depth - block) * q * c ** (block - 1)
    diagonal = torch.diagonal(resnet_ntk(random_inputs, depth=depth, alpha=alpha))
    assert torch.allclose(diagonal, expected, rtol=1e-13)


def test_resnet_ntk_tends_to_twice_linear_kernel_as_alpha_vanishes(random_inputs):
    linear = random_inputs @ random_inputs.T / random_inputs.shape[1]
    assert torch.allclose(resnet_ntk(random_inputs, depth=4, alpha=0.0), 2 * linear, rtol=1e-14)
    # the deviation from 2 x.x'/d is O(alpha^2): halving alpha divides it by 4
    small = resnet_ntk(random_inputs, depth=4, alpha=1e-3) - 2 * linear
    smaller = resnet_ntk(random_inputs, depth=4, alpha=5e-4) - 2 * linear
    assert small.abs().max() < 1e-4 * linear.abs().max()
    assert float(small.norm() / smaller.norm()) == pytest.approx(4.0, rel=1e-3)


def test_resnet_ntk_differs_from_linear_at_moderate_alpha(random_inputs):
    linear = random_inputs @ random_inputs.T / random_inputs.shape[1]
    kernel = resnet_ntk(random_inputs, depth=2, alpha=1.0)
    assert (kernel - 2 * linear).abs().max() > 0.1


@pytest.mark.parametrize("kernel", [MLPKernel(4), ResNetKernel(4, 0.5), ResNetKernel(2, 3.0)])
def test_gram_matrices_are_symmetric_and_positive_semidefinite(kernel):
    generator = torch.Generator().manual_seed(7)
    points = torch.randn(60, 3, generator=generator, dtype=torch.float64)
    gram = kernel(points)
    assert torch.allclose(gram, gram.T, rtol=0, atol=1e-14)
    eigenvalues = torch.linalg.eigvalsh(gram)
    assert eigenvalues.min() > -1e-12 * eigenvalues.max()


@pytest.mark.parametrize("kernel", [MLPKernel(3), ResNetKernel(3, 0.8)])
def test_kernels_are_rotation_invariant_and_positively_homogeneous(random_inputs, kernel):
    rotation, _ = torch.linalg.qr(
        torch.randn(4, 4, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    )
    gram = kernel(random_inputs)
    assert torch.allclose(kernel(random_inputs @ rotation.T), gram, rtol=1e-12)
    # degree-1 homogeneity in each argument: Theta(c x, x') = c Theta(x, x') for c > 0
    assert torch.allclose(kernel(3.0 * random_inputs, random_inputs), 3.0 * gram, rtol=1e-12)


def test_pairwise_mode_equals_gram_diagonal_of_pairs(random_inputs):
    other = random_inputs.flip(0)
    for kernel_fn in (
        lambda a, b, **kw: mlp_ntk(a, b, depth=3, **kw),
        lambda a, b, **kw: resnet_ntk(a, b, depth=3, alpha=0.7, **kw),
    ):
        pairs = kernel_fn(random_inputs, other, pairwise=True)
        gram = kernel_fn(random_inputs, other)
        assert pairs.shape == (7,)
        assert torch.allclose(pairs, torch.diagonal(gram), rtol=1e-14)


def test_numpy_and_float32_inputs_give_float64_kernel(random_inputs):
    from_numpy = mlp_ntk(random_inputs.numpy(), depth=2)
    from_float32 = mlp_ntk(random_inputs.float(), depth=2)
    assert from_numpy.dtype == torch.float64 and from_float32.dtype == torch.float64
    assert torch.allclose(from_numpy, mlp_ntk(random_inputs, depth=2), rtol=1e-15)
    assert torch.allclose(from_float32, from_numpy, rtol=1e-5)


def test_mlp_kernel_profile_has_cusp_not_smooth_at_equal_inputs():
    # the left and right slopes of gamma -> Theta(x(0), x(gamma)) differ by a sign
    angles = torch.tensor([-1e-4, 0.0, 1e-4], dtype=torch.float64)
    points = torch.stack([torch.cos(angles), torch.sin(angles)], dim=1)
    values = mlp_ntk(points[1:2], points, depth=2)[0]
    right, left = (values[2] - values[1]) / 1e-4, (values[1] - values[0]) / 1e-4
    assert right < 0 < left
    assert float(right) == pytest.approx(-float(left), rel=1e-3)


# ---- bad input ---------------------------------------------------------------------------


@pytest.mark.parametrize("alpha", [-0.1, float("nan"), float("inf"), "big"])
def test_invalid_alpha_is_rejected_with_message(random_inputs, alpha):
    with pytest.raises(ValueError, match="alpha .*must be a finite number >= 0"):
        resnet_ntk(random_inputs, depth=2, alpha=alpha)
    with pytest.raises(ValueError, match="alpha"):
        ResNetKernel(2, alpha)


@pytest.mark.parametrize("depth", [0, -3, 2.5, True, "3"])
def test_invalid_depth_is_rejected_with_message(random_inputs, depth):
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        mlp_ntk(random_inputs, depth=depth)
    with pytest.raises(ValueError, match="depth must be an integer >= 1"):
        resnet_ntk(random_inputs, depth=depth, alpha=1.0)


def test_mismatched_input_dimensions_are_rejected(random_inputs):
    with pytest.raises(ValueError, match=r"same input dimension; got x1 with d=4 and x2 with d=3"):
        mlp_ntk(random_inputs, random_inputs[:, :3], depth=2)


def test_pairwise_with_different_row_counts_is_rejected(random_inputs):
    with pytest.raises(ValueError, match="same number of rows; got 7 and 3"):
        resnet_ntk(random_inputs, random_inputs[:3], depth=2, alpha=1.0, pairwise=True)


def test_one_dimensional_input_is_rejected_with_reshape_hint():
    with pytest.raises(ValueError, match=r"x1 must be 2-D .*reshape\(1, -1\)"):
        mlp_ntk(torch.ones(4), depth=2)


def test_non_finite_input_is_rejected_naming_the_row(random_inputs):
    broken = random_inputs.clone()
    broken[5, 1] = math.nan
    with pytest.raises(ValueError, match="x2 contains NaN or inf .*row 5"):
        mlp_ntk(random_inputs, broken, depth=2)


def test_zero_input_is_rejected_naming_the_row(random_inputs):
    broken = random_inputs.clone()
    broken[2] = 0.0
    with pytest.raises(ValueError, match="x1 row 2 is the zero vector"):
        resnet_ntk(broken, depth=2, alpha=0.5)


@pytest.mark.parametrize("depth", [1, 4])
def test_kernel_keeps_full_precision_for_nearly_parallel_inputs(depth):
    # the MLP profile is 1 - L gamma / (2 pi) + O(gamma^2); arccos of a rounded cosine would
    # put an error of ~1e-8 into the angle and destroy this first-order term at gamma = 1e-7
    gamma = 1e-7
    points = torch.tensor([[1.0, 0.0], [math.cos(gamma), math.sin(gamma)]], dtype=torch.float64)
    gram = mlp_ntk(points, depth=depth)
    slope = (float(gram[0, 1] / gram[0, 0]) - 1.0) / gamma
    assert slope == pytest.approx(-depth / (2 * math.pi), rel=1e-6)


def test_gram_built_in_row_blocks_equals_single_block(random_inputs, monkeypatch):
    import neuralcollapse.ntk.analytic as analytic

    other = random_inputs[:5] + 0.1
    whole = [resnet_ntk(random_inputs, other, depth=3, alpha=0.6), mlp_ntk(random_inputs, depth=3)]
    monkeypatch.setattr(analytic, "_BLOCK_ENTRIES", 6)  # one or two rows per block
    blocked = [
        resnet_ntk(random_inputs, other, depth=3, alpha=0.6),
        mlp_ntk(random_inputs, depth=3),
    ]
    for single, several in zip(whole, blocked, strict=True):
        assert torch.equal(single, several)
