"""Spectra against dense eigendecompositions, closed forms and invariances (float64 throughout)."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch

from neuralcollapse.spectra import (
    class_mean_prediction,
    curvature_operator,
    dense_spectrum,
    exact_density,
    feature_moment_operator,
    hutchinson_trace,
    layer_names,
    papyan_decomposition,
    select_parameters,
    spectral_density,
    spectral_summary,
    theory_prediction,
    top_eigenpairs,
    ufm_network,
)
from neuralcollapse.ufm import UFMProblem, solve_lbfgs


def small_net(seed: int = 0, classes: int = 3):
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, classes)
    ).double()
    x = torch.randn(36, 5, dtype=torch.float64)
    y = torch.arange(36) % classes
    return model, [(x[:20], y[:20]), (x[20:], y[20:])]


@pytest.mark.parametrize("kind", ["hessian", "gauss_newton", "gradient_moment"])
@pytest.mark.parametrize("loss", ["ce", "mse"])
def test_lanczos_top_eigenvalues_match_dense_to_1e8(kind, loss):
    model, data = small_net()
    op = curvature_operator(model, data, kind=kind, loss=loss)
    exact = dense_spectrum(op)
    top = top_eigenpairs(op, k=6, tol=1e-12)
    assert top.converged
    assert torch.allclose(top.values, exact.values[:6], rtol=0, atol=1e-8)
    # the Ritz vectors are eigenvectors of the dense matrix
    residual = exact.matrix @ top.vectors - top.vectors * top.values
    assert float(residual.abs().max()) < 1e-7


def test_products_match_dense_matrix_and_gauss_newton_equals_hessian_for_last_layer():
    model, data = small_net(1)
    hess = curvature_operator(model, data, kind="hessian", params="2")
    ggn = curvature_operator(model, data, kind="gauss_newton", params="2")
    v = torch.randn(hess.dim, dtype=torch.float64)
    assert torch.allclose(hess.matvec(v), hess.dense() @ v, atol=1e-12)
    # logits are linear in the last layer, so H = G there
    assert torch.allclose(hess.dense(), ggn.dense(), atol=1e-12)
    # the full-network Hessian differs from G (residual term)
    full_h = curvature_operator(model, data, kind="hessian").dense()
    full_g = curvature_operator(model, data, kind="gauss_newton").dense()
    assert float((full_h - full_g).abs().max()) > 1e-6


def test_gradient_moment_trace_is_mean_squared_gradient_norm():
    model, data = small_net(2)
    op = curvature_operator(model, data, kind="gradient_moment")
    total = sum(float(op.per_sample_gradients(x, y).pow(2).sum()) for x, y in op.batches())
    assert dense_spectrum(op).trace == pytest.approx(total / op.num_samples, rel=1e-12)


def test_weight_decay_shifts_the_hessian_spectrum():
    model, data = small_net(3)
    plain = dense_spectrum(curvature_operator(model, data, kind="hessian")).values
    shifted = dense_spectrum(curvature_operator(model, data, kind="hessian", weight_decay=0.3))
    assert torch.allclose(shifted.values, plain + 0.3, atol=1e-12)


def test_batching_does_not_change_the_operator():
    model, data = small_net(4)
    whole = [(torch.cat([x for x, _ in data]), torch.cat([y for _, y in data]))]
    a = curvature_operator(model, data, kind="gauss_newton").dense()
    b = curvature_operator(model, whole, kind="gauss_newton").dense()
    assert torch.allclose(a, b, atol=1e-13)


def test_repeated_eigenvalues_need_exhaust_and_then_match():
    values = torch.tensor([5.0, 5.0, 5.0, 2.0, 1.0, 0.5] + [0.0] * 14, dtype=torch.float64)
    q, _ = torch.linalg.qr(torch.randn(20, 20, dtype=torch.float64))
    matrix = q @ torch.diag(values) @ q.T
    top = top_eigenpairs(matrix, k=5, exhaust=True)
    assert torch.allclose(top.values, values[:5], atol=1e-10)


def test_hutchinson_trace_within_its_stated_error():
    model, data = small_net(5)
    op = curvature_operator(model, data, kind="gauss_newton")
    exact = dense_spectrum(op).trace
    estimate = hutchinson_trace(op, probes=64, seed=1)
    assert abs(estimate.trace - exact) <= 4 * estimate.stderr
    # a diagonal matrix has zero Rademacher variance: the estimate is exact
    diag = hutchinson_trace(torch.diag(torch.arange(1.0, 11.0, dtype=torch.float64)), probes=3)
    assert diag.trace == pytest.approx(55.0, abs=1e-12) and diag.stderr == pytest.approx(0)


def test_slq_density_within_stated_error_and_exact_with_full_krylov_space():
    model, data = small_net(6)
    op = curvature_operator(model, data, kind="gauss_newton", loss="mse", params="2")
    exact = dense_spectrum(op)
    density = spectral_density(op, probes=10, steps=op.dim, seed=2)
    reference = exact_density(exact.values, density.grid, density.sigma)
    assert torch.all((density.density - reference).abs() <= 5 * density.stderr + 1e-10)
    assert abs(density.trace - exact.trace) <= 5 * density.trace_stderr + 1e-10
    step = float(density.grid[1] - density.grid[0])
    assert float(density.density.sum()) * step == pytest.approx(1.0, abs=1e-3)


def test_feature_moment_matches_direct_computation_and_its_between_part():
    model, data = small_net(7)
    op = feature_moment_operator(model, data, "1")
    h = torch.cat([torch.tanh(model[0](x)) for x, _ in data]).detach()
    y = torch.cat([y for _, y in data])
    assert torch.allclose(op.dense(), h.T @ h / len(h), atol=1e-13)
    means = torch.stack([h[y == c].mean(0) for c in range(3)])
    assert torch.allclose(op.class_means, means, atol=1e-13)


def test_papyan_decomposition_is_exact_on_collapsed_data_and_sums_otherwise():
    model, data = small_net(8)
    centres = torch.randn(3, 5, dtype=torch.float64)
    labels = torch.arange(30) % 3
    collapsed = [(centres[labels], labels)]
    op = curvature_operator(model, collapsed, kind="gauss_newton", loss="ce")
    exact = dense_spectrum(op)
    dec = papyan_decomposition(model, collapsed, loss="ce")
    assert torch.allclose(dec.gram_eigenvalues, exact.values[:9], atol=1e-12)
    assert torch.allclose(dec.between_matrix(), exact.matrix, atol=1e-12)
    # general data: G = G_between + G_within with G_within PSD, traces adding up
    general = papyan_decomposition(model, data, loss="ce")
    g = curvature_operator(model, data, kind="gauss_newton").dense()
    within = g - general.between_matrix()
    assert float(torch.linalg.eigvalsh(within).min()) > -1e-12
    assert general.trace_total == pytest.approx(float(torch.trace(g)), rel=1e-12)
    assert general.trace_within == pytest.approx(float(torch.trace(within)), abs=1e-12)


def test_papyan_mse_last_layer_spans_and_fractions():
    # MSE, last layer without bias, collapsed features: delta_{c,c'} = e_c' (x) mu_c; with
    # orthogonal means (the MSE UFM's frame) the class span and the cross-class span are
    # orthogonal and every eigenvector of G lies in their sum
    torch.manual_seed(9)
    k, d = 3, 4
    model = torch.nn.Linear(d, k, bias=False).double()
    frame, _ = torch.linalg.qr(torch.randn(d, k, dtype=torch.float64))
    centres = frame.T * torch.tensor([[1.0], [2.0], [0.5]], dtype=torch.float64)
    labels = torch.arange(12) % k
    dec = papyan_decomposition(model, [(centres[labels], labels)], loss="mse")
    expected = torch.outer(torch.eye(k, dtype=torch.float64)[2], centres[1]).reshape(-1)
    assert torch.allclose(dec.means[1, 2], expected, atol=1e-14)
    values, vectors = dec.averaging_eigenpairs()
    fractions = dec.span_fractions(vectors[:, values > 1e-12])
    for a, b in zip(fractions["class"], fractions["cross"], strict=True):
        assert a + b == pytest.approx(1.0, abs=1e-10)
    assert all(f == pytest.approx(1.0, abs=1e-10) for f in fractions["all"])


PROBLEMS = [
    dict(loss="mse"),
    dict(loss="mse", bias="free"),
    dict(loss="ce"),
    dict(loss="ce", bias="free"),
    dict(loss="mse", depth=2),
    dict(loss="mse", depth=2, activation="relu"),
]


@pytest.fixture(scope="module")
def solutions():
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for index, fields in enumerate(PROBLEMS):
            problem = UFMProblem(3, 4, 5, lam_w=1e-3, lam_h=1e-3, **fields)
            out[index] = (problem, solve_lbfgs(problem, restarts=2))
    return out


@pytest.mark.parametrize("index", range(len(PROBLEMS)))
def test_ufm_prediction_from_class_means_matches_numerical_spectrum(solutions, index):
    problem, solution = solutions[index]
    model, data = ufm_network(problem, solution.weights, solution.features, solution.bias)
    names = [layer_names(problem)[f"W{l + 1}"] for l in range(problem.depth)]
    op = curvature_operator(model, data, kind="gauss_newton", loss=problem.loss, params=names)
    exact = dense_spectrum(op)
    means = solution.features.reshape(problem.dim, 3, 4).mean(2)
    prediction = class_mean_prediction(
        solution.weights,
        means,
        bias=solution.bias,
        loss=problem.loss,
        activation=problem.activation,
    )
    assert torch.allclose(prediction.values, exact.values[:9], atol=1e-6)
    positive = prediction.values > 1e-8
    vectors = prediction.vectors[:, positive]
    # predicted eigenvectors are eigenvectors of the numerical G
    residual = exact.matrix @ vectors - vectors * prediction.values[positive]
    assert float(residual.abs().max()) < 1e-6
    if problem.depth == 1:
        closed = theory_prediction(problem)
        assert torch.allclose(closed.values, exact.values[:9], atol=1e-6)
        # Lanczos on the Hessian of the objective in W: G + lam_W I
        hess = curvature_operator(
            model, data, kind="hessian", loss=problem.loss, params=names, weight_decay=1e-3
        )
        top = top_eigenpairs(hess, k=9, exhaust=True)
        assert torch.allclose(top.values, closed.values + 1e-3, atol=1e-6)


def test_mse_closed_forms_orthogonal_frame_and_etf():
    n, lam_w, lam_h, k = 4, 1e-3, 2e-3, 3
    mu = math.sqrt(n * lam_w * lam_h)
    g = (1 - k * mu) * math.sqrt(lam_w / (n * lam_h))
    no_bias = theory_prediction(UFMProblem(k, n, 5, lam_w=lam_w, lam_h=lam_h)).values
    assert torch.allclose(no_bias, torch.full((k * k,), g / k, dtype=torch.float64), atol=1e-12)
    free = theory_prediction(UFMProblem(k, n, 5, lam_w=lam_w, lam_h=lam_h, bias="free")).values
    expected = torch.tensor([g / k] * (k * (k - 1)) + [0.0] * k, dtype=torch.float64)
    assert torch.allclose(free, expected, atol=1e-12)


def test_prediction_is_invariant_under_rotating_the_features():
    problem = UFMProblem(3, 4, 5, loss="ce", lam_w=1e-3, lam_h=1e-3)
    base = theory_prediction(problem)
    rotation, _ = torch.linalg.qr(torch.randn(3, 3, dtype=torch.float64))
    means = torch.randn(3, 3, dtype=torch.float64)
    weight = means.T
    a = class_mean_prediction([weight], means, loss="ce").values
    b = class_mean_prediction([weight @ rotation.T], rotation @ means, loss="ce").values
    assert torch.allclose(a, b, atol=1e-12)
    assert base.values.shape == (9,)


def test_summary_is_strict_json_and_consistent():
    model, data = small_net(10)
    summary = spectral_summary(model, data, params="2", subsample=30, probes=4)
    text = json.dumps(summary, allow_nan=False)
    assert json.loads(text)["num_samples"] == 30
    exact = dense_spectrum(curvature_operator(model, data, kind="gauss_newton", params="2"))
    assert summary["num_parameters"] == exact.values.numel()
    assert summary["outliers"]["count"] >= 1


def test_bad_inputs_give_clear_errors():
    model, data = small_net()
    with pytest.raises(ValueError, match="no trainable parameter.*available"):
        select_parameters(model, "classifier")
    with pytest.raises(TypeError, match="re-iterable"):
        curvature_operator(model, iter(data))
    with pytest.raises(ValueError, match="unknown kind"):
        curvature_operator(model, data, kind="fisher")
    with pytest.raises(ValueError, match="unknown loss"):
        curvature_operator(model, data, loss="hinge")
    with pytest.raises(ValueError, match="weight_decay applies to kind='hessian'"):
        curvature_operator(model, data, kind="gauss_newton", weight_decay=0.1)
    with pytest.raises(ValueError, match="labels must lie in"):
        curvature_operator(model, [(data[0][0], data[0][1] + 5)])
    with pytest.raises(ValueError, match="k must be an integer"):
        top_eigenpairs(torch.eye(4, dtype=torch.float64), k=0)
    with pytest.raises(ValueError, match="max_dim"):
        curvature_operator(model, data).dense(max_dim=10)
    with pytest.raises(ValueError, match="no submodule named"):
        feature_moment_operator(model, data, "penultimate")
    with pytest.raises(ValueError, match="depth 1"):
        theory_prediction(UFMProblem(3, 4, 5, depth=2))
