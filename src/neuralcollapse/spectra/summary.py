"""One spectral measurement of a model, as a strict-JSON summary with its cost.

:func:`spectral_summary` takes a model, data, a parameter subset and a subsample size, and
returns the top eigenvalues of the Gauss-Newton term G (Lanczos), its trace (Hutchinson), the
outlier count and separation, and Papyan's class/cross-class prediction (:mod:`.papyan`).
:func:`estimate_cost` says what it will cost before it runs (the training loop prints it).

Outliers: with the top k eigenvalues ``lambda_1 >= ... >= lambda_k`` (k = C^2 + C by default),
the count is the j maximising the gap ``log(lambda_j / lambda_{j+1})`` and the separation that
gap in decades; ``gap_at_C`` and ``gap_at_C2`` are the same ratio at j = C and j = C^2, where
Papyan's class and class/cross-class outliers end.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch

from neuralcollapse.checks import check_int
from neuralcollapse.schema import encode_value
from neuralcollapse.spectra.lanczos import top_eigenpairs
from neuralcollapse.spectra.losses import LossSpec
from neuralcollapse.spectra.operators import Batches, check_batches, curvature_operator
from neuralcollapse.spectra.papyan import papyan_decomposition
from neuralcollapse.spectra.trace import hutchinson_trace

__all__ = [
    "estimate_cost",
    "lanczos_plan",
    "outlier_gaps",
    "spectral_summary",
    "subsample_batches",
]


def subsample_batches(
    data: Batches, size: int | None, *, seed: int = 0, batch_size: int = 256
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """``size`` samples drawn without replacement (seeded) from ``data``, as batches
    (None: all of it). Holds the data in memory once."""
    xs, ys = [], []
    for batch in check_batches(data):
        xs.append(batch[0])
        ys.append(batch[1])
    if not xs:
        raise ValueError("data holds no batches")
    x, y = torch.cat(xs), torch.cat(ys)
    if size is not None:
        size = check_int("subsample", size, minimum=1, alternative="or None (all samples)")
        if size < len(y):
            keep = torch.randperm(len(y), generator=torch.Generator().manual_seed(seed))[:size]
            x, y = x[keep], y[keep]
    return [(x[i : i + batch_size], y[i : i + batch_size]) for i in range(0, len(y), batch_size)]


def outlier_gaps(values: torch.Tensor | list[float], num_classes: int) -> dict:
    """Outlier count (largest log-gap), its separation in decades, and the gaps at C and C^2."""
    values = torch.as_tensor(values, dtype=torch.float64)
    positive = values[values > 0]

    def gap(j: int) -> float | None:
        if j < 1 or j >= len(positive):
            return None
        return math.log10(float(positive[j - 1] / positive[j]))

    gaps = [gap(j) for j in range(1, len(positive))]
    if not gaps:
        return {"count": None, "separation_decades": None, "gap_at_C": None, "gap_at_C2": None}
    best = max(range(len(gaps)), key=lambda j: gaps[j])
    return {
        "count": best + 1,
        "separation_decades": gaps[best],
        "gap_at_C": gap(num_classes),
        "gap_at_C2": gap(num_classes**2),
    }


def lanczos_plan(
    dim: int, num_classes: int, k: int, exhaust_below: int, block_size: int | None
) -> dict:
    """How :func:`spectral_summary` runs Lanczos on p = ``dim`` parameters: ``exhaust``,
    ``block_size`` and ``max_products`` (the most operator products it may take).

    ``block_size=None`` and p <= ``exhaust_below``: single-vector Lanczos to p products
    (``exhaust=True``), as before block Lanczos existed. Otherwise block Lanczos with blocks
    of ``block_size`` (default C: over a last layer under MSE, G = I_C (x) Sigma repeats each
    eigenvalue exactly C times) and at most ``min(p, max(4k, k + 40 b))`` products."""
    if block_size is not None:
        block_size = check_int(
            "block_size",
            block_size,
            minimum=1,
            maximum=dim,
            meaning="vectors per Lanczos block, at most p",
            alternative="or None (C, the number of classes)",
        )
    elif dim <= exhaust_below:
        return {"exhaust": True, "block_size": None, "max_products": dim}
    b = min(dim, num_classes) if block_size is None else block_size
    return {"exhaust": False, "block_size": b, "max_products": min(dim, max(4 * k, k + 40 * b))}


def estimate_cost(
    model: torch.nn.Module,
    data: Batches,
    *,
    params: str | Iterable[str] | None = None,
    loss: str | Callable | LossSpec = "ce",
    subsample: int | None = 512,
    k: int | None = None,
    probes: int = 8,
    seed: int = 0,
    exhaust_below: int = 1024,
    block_size: int | None = None,
) -> dict:
    """Seconds one :func:`spectral_summary` will take, from timing one G product (one block
    product divided by b, for block Lanczos) and one per-sample-Jacobian pass on the
    subsample: at most ``max_products`` Lanczos products (:func:`lanczos_plan`) + ``probes``
    products + one Jacobian pass."""
    batches = subsample_batches(data, subsample, seed=seed)
    op = curvature_operator(model, batches, kind="gauss_newton", params=params, loss=loss)
    c = op.num_classes
    k = min(op.dim, c * c + c if k is None else k)
    plan = lanczos_plan(op.dim, c, k, exhaust_below, block_size)
    steps = plan["max_products"]
    width = plan["block_size"] or 1
    probe = torch.ones(op.dim, width, dtype=torch.float64)
    multiply = op.matmat if plan["block_size"] else (lambda v: op.matvec(v[:, 0]))
    multiply(probe)  # warm-up: first calls trace torch.func
    start = time.perf_counter()
    multiply(probe)
    product = (time.perf_counter() - start) / width
    start = time.perf_counter()
    for x, _ in op.batches():
        op.per_sample_jacobians(x)
    jacobians = time.perf_counter() - start
    return {
        "num_parameters": op.dim,
        "num_samples": op.num_samples,
        "seconds_per_product": product,
        "seconds_jacobian_pass": jacobians,
        "max_products": steps + probes,
        "block_size": plan["block_size"],
        "estimated_seconds": product * (steps + probes) + jacobians,
    }


def spectral_summary(
    model: torch.nn.Module,
    data: Batches,
    *,
    params: str | Iterable[str] | None = None,
    loss: str | Callable | LossSpec = "ce",
    subsample: int | None = 512,
    k: int | None = None,
    probes: int = 8,
    tol: float = 1e-6,
    seed: int = 0,
    exhaust_below: int = 1024,
    block_size: int | None = None,
) -> dict:
    """A strict-JSON summary of G's spectrum over ``params`` on a ``subsample`` of ``data``.

    Keys: ``num_parameters``, ``num_samples``, ``num_classes``, ``top_eigenvalues`` (k,
    default C^2 + C), ``lanczos`` (residuals, steps, converged, block_size), ``trace`` /
    ``trace_stderr``,
    ``outliers`` (:func:`outlier_gaps`), ``papyan`` (the C^2 Gram's eigenvalues, their relative
    error against the top eigenvalues, tr G_between / tr G, the class and cross-class fractions
    of each top eigenvector, and the overlap of the top-C and top-C^2 subspaces with the
    averaging approximation), ``cost`` (seconds, products). Non-finite numbers follow
    :func:`neuralcollapse.schema.encode_value`; ``json.dumps(..., allow_nan=False)`` accepts
    the result.

    Exactly repeated eigenvalues: G over a last layer under MSE is ``I_C (x) Sigma`` (the
    bias is one more feature), so each of its eigenvalues repeats C times, and a single Krylov
    space sees one copy of each (docs/spectra.md). Up to ``exhaust_below`` parameters (and
    ``block_size=None``) Lanczos runs to p steps (``exhaust=True``), as it always has; above,
    block Lanczos with blocks of ``block_size`` (default C = ``num_classes``, the logits'
    width), which finds multiplicities up to the block size in at most
    ``min(p, max(4k, k + 40 b))`` products (:func:`lanczos_plan`). Pass ``block_size`` to use
    block Lanczos at any p; a multiplicity above it is under-counted (:func:`top_eigenpairs`).
    """
    start = time.perf_counter()
    batches = subsample_batches(data, subsample, seed=seed)
    op = curvature_operator(model, batches, kind="gauss_newton", params=params, loss=loss)
    c = op.num_classes
    k = min(op.dim, c * c + c if k is None else check_int("k", k, minimum=1))
    plan = lanczos_plan(op.dim, c, k, exhaust_below, block_size)
    top = top_eigenpairs(
        op, k, tol=tol, seed=seed, exhaust=plan["exhaust"], block_size=plan["block_size"]
    )
    products = op.matvecs
    trace = hutchinson_trace(op, probes, seed=seed)
    decomposition = papyan_decomposition(model, batches, params=params, loss=loss)
    gram = decomposition.gram_eigenvalues[: min(k, c * c)]
    matched = top.values[: len(gram)]
    fractions = decomposition.span_fractions(top.vectors)
    overlap_c = decomposition.subspace_overlap(top.vectors[:, : min(c, k)])
    overlap_c2 = decomposition.subspace_overlap(top.vectors[:, : min(c * c, k)])
    summary = {
        "kind": "gauss_newton",
        "params": list(op.subset.names),
        "num_parameters": op.dim,
        "num_samples": op.num_samples,
        "num_classes": c,
        "top_eigenvalues": top.values.tolist(),
        "lanczos": {
            "residuals": top.residuals.tolist(),
            "steps": top.steps,
            "converged": top.converged,
            "block_size": plan["block_size"],
        },
        "trace": trace.trace,
        "trace_stderr": trace.stderr,
        "outliers": outlier_gaps(top.values, c),
        "papyan": {
            "gram_eigenvalues": gram.tolist(),
            "relative_error": ((gram - matched).abs() / matched.abs().clamp_min(1e-300)).tolist(),
            "between_fraction_of_trace": decomposition.trace_between
            / max(decomposition.trace_total, 1e-300),
            "class_fraction": fractions["class"],
            "cross_fraction": fractions["cross"],
            "overlap_top_C": overlap_c,
            "overlap_top_C2": overlap_c2,
        },
        "cost": {
            "seconds": time.perf_counter() - start,
            "lanczos_products": products,
            "trace_products": probes,
            "jacobian_passes": 1,
        },
    }
    return _strict(summary)


def _strict(value: object) -> object:
    if isinstance(value, dict):
        return {str(key): _strict(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_strict(item) for item in value]
    if isinstance(value, float):
        return encode_value(value)
    return value
