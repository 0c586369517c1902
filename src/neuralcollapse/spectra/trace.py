"""Hutchinson's trace estimator, with its standard error.

For probes ``z`` with i.i.d. Rademacher entries (+-1), ``E[z^T A z] = tr A`` and
``Var[z^T A z] = 2 (||A||_F^2 - sum_i A_ii^2)``; the estimate is the mean of m probes and its
standard error the sample standard deviation over sqrt(m).

Reference: Hutchinson, "A stochastic estimator of the trace of the influence matrix for
Laplacian smoothing splines", Comm. Stat. Simul. Comput. 1990; Avron & Toledo, J. ACM 2011.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_int
from neuralcollapse.spectra.lanczos import _operator

__all__ = ["TraceEstimate", "hutchinson_trace"]


@dataclass
class TraceEstimate:
    """``trace`` (mean of the probes), ``stderr`` (std / sqrt(m)), ``samples`` (m values)."""

    trace: float
    stderr: float
    samples: list[float]

    def to_dict(self) -> dict:
        return {"trace": self.trace, "stderr": self.stderr, "probes": len(self.samples)}


def hutchinson_trace(operator: object, probes: int = 32, *, seed: int = 0) -> TraceEstimate:
    """tr A ~ (1/m) sum_l z_l^T A z_l with m = ``probes`` Rademacher vectors (>= 2, so that the
    standard error can be estimated)."""
    matvec, dim = _operator(operator)
    probes = check_int("probes", probes, minimum=2, meaning="at least two, for a standard error")
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    samples = []
    for _ in range(probes):
        z = torch.randint(0, 2, (dim,), generator=generator, dtype=torch.float64) * 2 - 1
        samples.append(float(z @ matvec(z)))
    values = torch.tensor(samples, dtype=torch.float64)
    return TraceEstimate(
        trace=float(values.mean()),
        stderr=float(values.std(unbiased=True)) / math.sqrt(probes),
        samples=samples,
    )
