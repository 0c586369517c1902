"""Block Lanczos against dense eigendecompositions: exactly repeated eigenvalues above 1,024
parameters, the multiplicity limit, deflation, b = 1 against vector Lanczos, bad arguments."""

from __future__ import annotations

import pytest
import torch

from neuralcollapse.spectra import (
    curvature_operator,
    dense_spectrum,
    feature_moment_operator,
    spectral_summary,
    top_eigenpairs,
)
from neuralcollapse.spectra.lanczos import _block_operator, block_lanczos, lanczos


class KroneckerOperator:
    """``I_C (x) Sigma`` (p = C d), matrix-free: ``(I (x) Sigma) vec(V) = vec(V Sigma)`` for V
    (C, d) row-major, so every eigenvalue of Sigma is an eigenvalue C times exactly."""

    def __init__(self, sigma: torch.Tensor, classes: int) -> None:
        self.sigma = sigma
        self.classes = classes
        self.dim = classes * sigma.shape[0]
        self.matvecs = 0

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        self.matvecs += 1
        return (vector.reshape(self.classes, -1) @ self.sigma).reshape(-1)

    def dense(self) -> torch.Tensor:
        return torch.kron(torch.eye(self.classes, dtype=torch.float64), self.sigma)


def spiked(values: list[float], dim: int, seed: int) -> torch.Tensor:
    """A random symmetric d x d matrix: the given top eigenvalues over a bulk in [0, 1)."""
    generator = torch.Generator().manual_seed(seed)
    bulk = torch.rand(dim - len(values), generator=generator, dtype=torch.float64)
    spectrum = torch.cat([torch.tensor(values, dtype=torch.float64), bulk])
    rotation, _ = torch.linalg.qr(torch.randn(dim, dim, generator=generator, dtype=torch.float64))
    return rotation @ torch.diag(spectrum) @ rotation.T


def multiplicities(values: torch.Tensor, rtol: float = 1e-8) -> list[tuple[float, int]]:
    """(value, count) of runs of values equal to ``rtol`` relative, largest first."""
    runs: list[tuple[float, int]] = []
    for value in values.tolist():
        if runs and abs(value - runs[-1][0]) <= rtol * abs(runs[-1][0]):
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((value, 1))
    return runs


def test_block_lanczos_finds_kronecker_multiplicities_above_1024_without_exhausting():
    classes, d = 10, 110  # p = 1,100 > 1,024: where the summary used to give up exhausting
    spikes = [6.0, 5.5, 5.0, 4.6, 4.2, 3.8, 3.4, 3.0, 2.6, 2.2, 1.8]  # over a bulk in [0, 1)
    op = KroneckerOperator(spiked(spikes, d, 0), classes)
    exact = dense_spectrum(op.dense())
    k = classes * classes + classes  # the summary's default k: 11 distinct values, 10 each
    top = top_eigenpairs(op, k, block_size=classes)
    assert top.converged
    relative = (top.values - exact.values[:k]).abs() / exact.values[:k]
    assert float(relative.max()) < 1e-8
    assert multiplicities(top.values) == [
        (pytest.approx(v, rel=1e-8), n) for v, n in multiplicities(exact.values[:k])
    ]
    assert [n for _, n in multiplicities(top.values)] == [classes] * (k // classes)
    # far fewer products than the p an exhausted run needs, counted by the operator
    assert top.steps == op.matvecs and top.steps <= 40 * classes + k < op.dim
    # orthonormal Ritz vectors that are eigenvectors of the dense matrix
    eye = torch.eye(k, dtype=torch.float64)
    assert torch.allclose(top.vectors.T @ top.vectors, eye, atol=1e-10)
    residual = exact.matrix @ top.vectors - top.vectors * top.values
    assert float(residual.norm(dim=0).max()) < 1e-8 * float(top.values[0])


def test_vector_lanczos_misses_the_copies_within_one_krylov_space():
    # the gap block Lanczos closes: one start vector spans a Krylov space of dimension at
    # most d = 110 (one direction per eigenspace in exact arithmetic; rounding adds a few
    # copies), so after d products the top 110 are far from the exact list
    classes, d = 10, 110
    spikes = [6.0, 5.5, 5.0, 4.6, 4.2, 3.8, 3.4, 3.0, 2.6, 2.2, 1.8]
    op = KroneckerOperator(spiked(spikes, d, 0), classes)
    exact = torch.linalg.eigvalsh(op.sigma).flip(0).repeat_interleave(classes)[:d]
    with pytest.warns(RuntimeWarning, match="Lanczos stopped"):
        vector = top_eigenpairs(op, d, max_steps=d)
    assert float(((vector.values - exact).abs() / exact).max()) > 0.5
    assert multiplicities(vector.values)[0][1] < classes


@pytest.fixture(scope="module")
def last_layer():
    """A net's last layer (107 features + bias, 10 classes: p = 1,080) under MSE: G is
    ``I_C (x) Sigma`` with Sigma the second moment of (h, 1), built independently by dense()."""
    torch.manual_seed(0)
    classes, inputs, width, samples = 10, 20, 107, 120
    model = torch.nn.Sequential(
        torch.nn.Linear(inputs, width), torch.nn.Tanh(), torch.nn.Linear(width, classes)
    ).double()
    labels = torch.arange(samples) % classes
    x = 3 * torch.randn(classes, inputs, dtype=torch.float64)[labels]
    x = x + torch.randn(samples, inputs, dtype=torch.float64)
    data = [(x[:64], labels[:64]), (x[64:], labels[64:])]
    op = curvature_operator(model, data, kind="gauss_newton", loss="mse", params="2")
    return model, data, op, dense_spectrum(op)


def test_block_lanczos_on_a_last_layer_gauss_newton_under_mse(last_layer):
    model, data, op, exact = last_layer
    assert op.dim > 1024 and op.num_classes == 10
    k = 50
    op.matvecs = 0
    top = top_eigenpairs(op, k, block_size=op.num_classes)
    assert top.converged and top.steps == op.matvecs < op.dim
    relative = (top.values - exact.values[:k]).abs() / exact.values[:k]
    assert float(relative.max()) < 1e-8
    assert [n for _, n in multiplicities(top.values)] == [10] * 5
    assert [n for _, n in multiplicities(exact.values[:k])] == [10] * 5
    # the summary above exhaust_below chooses b = C itself and says so
    summary = spectral_summary(
        model, data, params="2", loss="mse", subsample=None, k=k, probes=2, tol=1e-10
    )
    assert summary["lanczos"]["block_size"] == 10 and summary["lanczos"]["converged"]
    values = torch.tensor(summary["top_eigenvalues"], dtype=torch.float64)
    assert float(((values - exact.values[:k]).abs() / exact.values[:k]).max()) < 1e-8


def test_summary_below_exhaust_below_is_unchanged_and_block_size_is_chosen_above():
    torch.manual_seed(11)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()
    x = torch.randn(36, 5, dtype=torch.float64)
    data = [(x, torch.arange(36) % 3)]
    kwargs = dict(params="2", loss="mse", subsample=None, probes=2, k=9)
    small = spectral_summary(model, data, **kwargs)  # p = 24 <= 1,024: exhausted, no block
    assert small["lanczos"]["block_size"] is None and small["lanczos"]["steps"] == 24
    exhausted = top_eigenpairs(
        curvature_operator(model, data, params="2", loss="mse"), 9, tol=1e-6, exhaust=True
    )
    assert small["top_eigenvalues"] == exhausted.values.tolist()
    block = spectral_summary(model, data, exhaust_below=10, **kwargs)  # C = 3 per block
    assert block["lanczos"]["block_size"] == 3
    assert block["top_eigenvalues"] == pytest.approx(small["top_eigenvalues"], rel=1e-8)
    assert [n for _, n in multiplicities(torch.tensor(block["top_eigenvalues"]))] == [3] * 3


def test_multiplicity_above_the_block_size_is_under_counted():
    # 8 copies of each eigenvalue, blocks of 3: the block Krylov space holds 3 directions of
    # each eigenspace, so a run that converges early reports 3 copies of each (every value a
    # true eigenvalue, residuals small, converged=True: the limit the docstring states)
    op = KroneckerOperator(spiked([10.0, 7.0, 5.0, 3.5, 2.5], 130, 1), 8)
    top = top_eigenpairs(op, 9, block_size=3)
    assert top.converged
    assert top.values == pytest.approx([10.0] * 3 + [7.0] * 3 + [5.0] * 3, rel=1e-10)
    # a block as large as the multiplicity counts it
    full = top_eigenpairs(op, 9, block_size=8)
    assert full.values == pytest.approx([10.0] * 8 + [7.0], rel=1e-10)


def test_block_size_one_is_vector_lanczos():
    sigma = spiked([9.0, 7.0, 6.0, 4.0, 3.5, 3.0], 60, 2)
    a = top_eigenpairs(sigma, 6, tol=1e-12)
    b = top_eigenpairs(sigma, 6, tol=1e-12, block_size=1)
    assert a.steps == b.steps and a.converged and b.converged
    assert torch.allclose(a.values, b.values, rtol=1e-13, atol=0)
    # distinct eigenvalues: the same eigenvectors, up to sign
    overlap = (a.vectors.T @ b.vectors).diagonal().abs()
    assert torch.allclose(overlap, torch.ones(6, dtype=torch.float64), atol=1e-10)
    # the same tridiagonal matrix, step by step (same start vector from the same seed)
    matvec = lambda v: sigma @ v  # noqa: E731
    vector_run = lanczos(matvec, 60, 25, generator=torch.Generator().manual_seed(4))
    block_run = block_lanczos(matvec, 60, 1, 25, generator=torch.Generator().manual_seed(4))
    assert torch.allclose(vector_run.tridiagonal, block_run.tridiagonal, atol=1e-12)
    assert torch.allclose(vector_run.basis, block_run.basis, atol=1e-10)


def test_block_recurrence_and_deflation_on_an_early_invariant_subspace():
    # eigenvalues 5, 3, 2 twice each and 0 (44 times): from 4 start vectors the block Krylov
    # space is 2 + 2 + 2 + 4 = 10-dimensional, so the third block is only 2 columns wide
    generator = torch.Generator().manual_seed(5)
    spectrum = torch.tensor([5.0, 5.0, 3.0, 3.0, 2.0, 2.0] + [0.0] * 44, dtype=torch.float64)
    rotation, _ = torch.linalg.qr(torch.randn(50, 50, generator=generator, dtype=torch.float64))
    matrix = rotation @ torch.diag(spectrum) @ rotation.T
    matmat, dim = _block_operator(matrix)
    run = block_lanczos(matmat, dim, 4, 50, restart=False)
    assert run.block_sizes == [4, 4, 2] and run.deflations == 2 + 2
    q, t = run.basis, run.tridiagonal
    assert torch.allclose(q.T @ q, torch.eye(10, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(q.T @ matrix @ q, t, atol=1e-12)  # T = Q^T A Q, block tridiagonal
    assert float(t[8:, :4].abs().max()) == 0.0
    assert torch.linalg.eigvalsh(t).flip(0)[:6] == pytest.approx(spectrum[:6].tolist(), abs=1e-12)
    assert run.last_coupling.numel() == 0  # an invariant subspace: the Ritz pairs are exact
    # with restarts, deflated columns are replaced by fresh directions and T stays Q^T A Q
    restarted = block_lanczos(matmat, dim, 4, 50, restart=True)
    q, t = restarted.basis, restarted.tridiagonal
    assert restarted.deflations >= 2 and q.shape[1] == 50
    assert torch.allclose(q.T @ q, torch.eye(50, dtype=torch.float64), atol=1e-12)
    assert torch.allclose(q.T @ matrix @ q, t, atol=1e-12)


def test_matmat_equals_matvec_column_by_column():
    torch.manual_seed(6)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()
    x = torch.randn(30, 5, dtype=torch.float64)
    data = [(x[:17], torch.arange(17) % 3), (x[17:], torch.arange(13) % 3)]
    operators = [
        curvature_operator(model, data, kind=kind, loss=loss, weight_decay=wd)
        for kind, wd in [("hessian", 0.1), ("gauss_newton", 0.0), ("gradient_moment", 0.0)]
        for loss in ("ce", "mse")
    ] + [feature_moment_operator(model, data, "1")]
    for op in operators:
        block = torch.randn(op.dim, 4, dtype=torch.float64)
        columns = torch.stack([op.matvec(block[:, i]) for i in range(4)], dim=1)
        before = op.matvecs
        assert torch.allclose(op.matmat(block), columns, rtol=1e-12, atol=1e-13), op.kind
        assert op.matvecs == before + 4
    with pytest.raises(ValueError, match=r"block must have shape \(7, b\)"):
        operators[-1].matmat(torch.zeros(4, 2, dtype=torch.float64))


def test_bad_block_arguments_give_clear_errors():
    matrix = torch.eye(12, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"block_size must be an integer in \[1, 12\]"):
        top_eigenpairs(matrix, 2, block_size=0)
    with pytest.raises(ValueError, match=r"block_size must be an integer in \[1, 12\].*got 13"):
        top_eigenpairs(matrix, 2, block_size=13)
    with pytest.raises(TypeError, match="block_size must be an integer"):
        top_eigenpairs(matrix, 2, block_size=2.0)
    with pytest.raises(ValueError, match=r"max_steps must be an integer >= 5"):
        top_eigenpairs(matrix, 2, block_size=5, max_steps=4)
    matmat, dim = _block_operator(matrix)
    with pytest.raises(ValueError, match="start block must have rank 2"):
        block_lanczos(matmat, dim, 2, 12, start=torch.ones(12, 2, dtype=torch.float64))
    with pytest.raises(ValueError, match=r"start block must be a finite \(12, 2\) matrix"):
        block_lanczos(matmat, dim, 2, 12, start=torch.ones(12, dtype=torch.float64))
    model = torch.nn.Linear(4, 3).double()
    data = [(torch.randn(9, 4, dtype=torch.float64), torch.arange(9) % 3)]
    with pytest.raises(ValueError, match=r"block_size must be an integer in \[1, 15\]"):
        spectral_summary(model, data, subsample=None, block_size=16)
