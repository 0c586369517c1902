"""The SLQ density's quadrature-error estimate (``SpectralDensity.quadrature_error``).

The true quadrature error of an m-step run is isolated from the probe-sampling error by
comparing it with the same probes' exhaustive (p-step, exact) run: ``spectral_density`` draws
the same Rademacher probes for a seed whatever ``steps`` is, so ``phi_m - phi_p`` is the
quadrature error of the m-node rules alone.
"""

from __future__ import annotations

import math
import re

import pytest
import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.spectra import curvature_operator, exact_density, spectral_density
from neuralcollapse.spectra.density import gaussian_density
from neuralcollapse.spectra.lanczos import _operator, lanczos

P = 300


@pytest.fixture(scope="module")
def spread() -> tuple[torch.Tensor, torch.Tensor]:
    """A p = 300 symmetric matrix whose spectrum spreads over [0, 10]: a bulk crowded at 0, a
    second bulk on [4, 6] and ten outliers on [7, 10]; (matrix, eigenvalues)."""
    g = torch.Generator().manual_seed(0)
    values = torch.cat(
        [
            torch.linspace(0, 3, 150, dtype=torch.float64) ** 2 / 3,
            4 + 2 * torch.rand(140, generator=g, dtype=torch.float64),
            torch.linspace(7, 10, 10, dtype=torch.float64),
        ]
    )
    q, _ = torch.linalg.qr(torch.randn(P, P, generator=g, dtype=torch.float64))
    matrix = (q * values) @ q.T
    return 0.5 * (matrix + matrix.T), values


def test_estimate_tracks_the_same_probes_quadrature_error_and_falls_with_steps(spread):
    matrix, values = spread
    sigma = 0.01 * float(values.max() - values.min())  # the default's 1% of the spread
    grid = torch.linspace(
        float(values.min()) - 3 * sigma, float(values.max()) + 3 * sigma, 400, dtype=torch.float64
    )
    full = spectral_density(matrix, probes=8, steps=P, sigma=sigma, grid=grid, seed=1)
    # the exhaustive run is exact: no quadrature error, and the estimate says so exactly
    assert torch.count_nonzero(full.quadrature_error) == 0
    peak = float(full.density.max())
    previous = math.inf
    for m in (5, 10, 20, 40, 60, 80):
        run = spectral_density(matrix, probes=8, steps=m, sigma=sigma, grid=grid, seed=1)
        true = (run.density - full.density).abs()
        estimate = run.quadrature_error
        # far from negligible (1e-7 of the peak at m = 80, 1e-15 is rounding): the error is
        # measured, and the estimate is above it by at most a small factor (measured 1.7-2.8
        # in the largest value, 2.1-3.4 in the sum over the grid)
        assert float(true.max()) > 1e-8 * peak
        assert float(true.max()) <= float(estimate.max()) <= 4 * float(true.max()), m
        assert float(true.sum()) <= float(estimate.sum()) <= 4 * float(true.sum()), m
        # point by point where the error is above 1% of the peak: once m resolves more than a
        # comb of m peaks (m >= 10), the estimate is at least half the error at >= 90% of the
        # points (measured 97%, 100%, 100%) and never below a third of it from m = 20
        large = true > 1e-2 * peak
        if m >= 10 and bool(large.any()):
            covered = (estimate[large] >= 0.5 * true[large]).double().mean()
            assert float(covered) >= 0.9, m
        if m >= 20 and bool(large.any()):
            assert bool((estimate[large] >= true[large] / 3).all()), m
        # it falls as m grows
        assert float(estimate.max()) < previous
        previous = float(estimate.max())


def test_exhausted_krylov_space_gives_exactly_zero():
    g = torch.Generator().manual_seed(5)
    x = torch.randn(30, 30, generator=g, dtype=torch.float64)
    full = spectral_density(x + x.T, probes=4, steps=30, seed=3)
    assert full.steps == 30 and torch.count_nonzero(full.quadrature_error) == 0
    # asking for more steps than p stops at p: still exact
    more = spectral_density(x + x.T, probes=4, steps=500, seed=3)
    assert torch.count_nonzero(more.quadrature_error) == 0
    # 4 distinct eigenvalues, each 10 times: a probe's Krylov space has 4 dimensions, so the
    # run breaks down after 4 steps (ending there, or landing on it at its last step) and its
    # 4-node rule is exact. For Rademacher probes ||P_k v||^2 = 10/40 exactly, so the density
    # itself is the exact one: 0 is the right answer, not merely a small one
    values = torch.tensor([1.0, 2.0, 3.5, 6.0], dtype=torch.float64).repeat_interleave(10)
    diagonal = torch.diag(values)
    for steps in (4, 10):
        run = spectral_density(diagonal, probes=3, steps=steps, sigma=0.3, seed=2)
        assert run.steps == 4
        assert torch.count_nonzero(run.quadrature_error) == 0
        reference = exact_density(values, run.grid, 0.3)
        assert torch.allclose(run.density, reference, rtol=1e-10, atol=1e-12)
    # one step short of exhausting it, the error is real and the estimate sees it
    short = spectral_density(diagonal, probes=3, steps=3, sigma=0.3, seed=2)
    true = (short.density - exact_density(values, short.grid, 0.3)).abs()
    assert float(true.max()) > 1e-3
    assert float(true.max()) <= float(short.quadrature_error.max())


def test_one_step_compares_with_the_empty_rule():
    # one node: the coarser rule has no node and integrates to 0, so the estimate is the
    # density itself (nothing is known of the error but that it may be all of it)
    g = torch.Generator().manual_seed(6)
    x = torch.randn(20, 20, generator=g, dtype=torch.float64)
    run = spectral_density(x + x.T, probes=3, steps=1, seed=0)
    assert torch.equal(run.quadrature_error, run.density)


def _committed_spectral_density(
    operator: object,
    *,
    probes: int = 8,
    steps: int = 80,
    sigma: float | None = None,
    grid: list[float] | torch.Tensor | None = None,
    points: int = 512,
    seed: int = 0,
) -> dict:
    """The body of ``spectral_density`` as committed before the quadrature error (a656cd8),
    from the same public pieces: the reference for the fields that must not change."""
    matvec, dim = _operator(operator)
    probes = check_int("probes", probes, minimum=2, meaning="at least two, for the stated error")
    steps = min(check_int("steps", steps, minimum=1, meaning="Lanczos steps per probe"), dim)
    points = check_int("points", points, minimum=2)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    nodes, weights = [], []
    for _ in range(probes):
        z = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.float64) * 2 - 1
        run = lanczos(matvec, dim, steps, start=z, generator=generator, restart=False)
        theta, s = torch.linalg.eigh(run.tridiagonal)
        nodes.append(theta)
        weights.append(s[0] ** 2)
    low = min(float(n.min()) for n in nodes)
    high = max(float(n.max()) for n in nodes)
    if sigma is None:
        sigma = 0.01 * (high - low) if high > low else max(abs(high), 1.0) * 1e-3
    sigma = check_float("sigma", sigma, minimum=0.0, strict=True, meaning="Gaussian width")
    if grid is None:
        grid = torch.linspace(low - 3 * sigma, high + 3 * sigma, points, dtype=torch.float64)
    else:
        grid = torch.as_tensor(grid, dtype=torch.float64).reshape(-1)
    per_probe = torch.stack(
        [gaussian_density(n, w, grid, sigma) for n, w in zip(nodes, weights, strict=True)]
    )
    traces = torch.tensor([dim * float(n @ w) for n, w in zip(nodes, weights, strict=True)])
    return {
        "grid": grid,
        "density": per_probe.mean(0),
        "stderr": per_probe.std(0, unbiased=True) / math.sqrt(probes),
        "sigma": sigma,
        "nodes": nodes,
        "weights": weights,
        "trace": float(traces.mean()),
        "trace_stderr": float(traces.std(unbiased=True)) / math.sqrt(probes),
        "steps": max(int(n.numel()) for n in nodes),
    }


def _small_operator() -> object:
    torch.manual_seed(0)
    model = torch.nn.Sequential(
        torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 3)
    ).double()
    x = torch.randn(36, 5, dtype=torch.float64)
    return curvature_operator(model, [(x, torch.arange(36) % 3)], kind="gauss_newton")


@pytest.mark.parametrize(
    "arguments",
    [
        {},
        {"probes": 3, "steps": 5, "seed": 4},
        {"probes": 2, "steps": 1, "points": 7},
        {"steps": 1000, "sigma": 0.3, "seed": 9},
        {"grid": [0.0, 0.5, 1.0], "steps": 3},
    ],
)
@pytest.mark.parametrize("which", ["random", "repeated", "operator"])
def test_existing_fields_are_bitwise_unchanged(spread, arguments, which):
    if which == "random":
        operator = spread[0][:120, :120]
    elif which == "repeated":
        operator = torch.diag(torch.tensor([1.0, 1, 2, 2, 3, 3, 5, 5], dtype=torch.float64))
    else:
        operator = _small_operator()
    new = spectral_density(operator, **arguments)
    old = _committed_spectral_density(operator, **arguments)
    for name in ("grid", "density", "stderr"):
        assert torch.equal(getattr(new, name), old[name]), name
    assert all(torch.equal(a, b) for a, b in zip(new.nodes, old["nodes"], strict=True))
    assert all(torch.equal(a, b) for a, b in zip(new.weights, old["weights"], strict=True))
    for name in ("sigma", "trace", "trace_stderr", "steps"):
        assert getattr(new, name) == old[name], name
    # to_dict keeps every earlier key and value, and adds the estimate (strict JSON: finite)
    stored = new.to_dict()
    assert stored["density"] == old["density"].tolist()
    assert stored["stderr"] == old["stderr"].tolist()
    assert stored["probes"] == len(old["nodes"])
    assert stored["quadrature_error"] == new.quadrature_error.tolist()
    assert new.quadrature_error.shape == new.grid.shape
    assert bool(torch.isfinite(new.quadrature_error).all())
    assert bool((new.quadrature_error >= 0).all())


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"probes": 1},
            ValueError,
            "probes must be an integer >= 2 (at least two, for the stated error); got 1",
        ),
        (
            {"probes": 2.0},
            TypeError,
            "probes must be an integer >= 2 (at least two, for the stated error); got 2.0",
        ),
        (
            {"steps": 0},
            ValueError,
            "steps must be an integer >= 1 (Lanczos steps per probe); got 0",
        ),
        ({"points": 1}, ValueError, "points must be an integer >= 2; got 1"),
        ({"sigma": 0.0}, ValueError, "sigma must be a finite number > 0 (Gaussian width); got 0.0"),
        (
            {"sigma": float("nan")},
            ValueError,
            "sigma must be a finite number > 0 (Gaussian width); got nan",
        ),
        ({"seed": True}, TypeError, "seed must be an integer; got True"),
    ],
)
def test_bad_arguments_keep_their_messages(
    arguments: dict, error: type[Exception], message: str
) -> None:
    with pytest.raises(error, match=f"^{re.escape(message)}$"):
        spectral_density(torch.eye(4, dtype=torch.float64), **arguments)


def test_bad_operators_keep_their_messages():
    with pytest.raises(ValueError, match=re.escape("must be square; got shape (2, 3)")):
        spectral_density(torch.ones(2, 3))
    with pytest.raises(TypeError, match="operator must be a SpectralOperator .* got str"):
        spectral_density("matrix")
