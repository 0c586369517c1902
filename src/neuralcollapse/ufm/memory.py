"""A memory estimate before a UFM solve, and a clear refusal when it cannot fit.

The batched L-BFGS keeps, per (problem, restart), its iterate and gradient, the line
search's trial point, the two-loop work vectors and ``2 m`` curvature vectors, all of the
full parameter count P = sum_l out_l in_l + d N (+ K); the objective's autograd graph adds a
few layer outputs of K x N (or width x N) per layer. The estimate is an upper bound: the
curvature memory is allocated zeroed and its pages only count once written, i.e. after m
iterations. For K = d = 2,000, n = 5 (P = 2.4e7) it is 6.3 GB per restart.
Memory that is free is read as in the metrics engine (:mod:`neuralcollapse.metrics.memory`).
"""

from __future__ import annotations

import torch

from neuralcollapse.metrics.memory import available_bytes
from neuralcollapse.ufm.problem import UFMProblem

#: float64 vectors of length P held per job besides the 2 m curvature pairs: x, grad,
#: direction, the trial and accepted points, q / r of the two-loop recursion, new_grad, s, y
WORK_VECTORS = 10


def solve_bytes(problem: UFMProblem, jobs: int, memory: int = 10) -> int:
    """Estimated peak bytes of solving ``jobs`` (problem, restart) pairs of ``problem`` at once."""
    shapes = problem.layer_shapes
    params = sum(out * inp for out, inp in shapes) + problem.dim * problem.num_samples
    params += problem.num_classes if problem.has_bias else 0
    widths = sum(out for out, _ in shapes) + problem.dim
    graph = 3 * widths * problem.num_samples  # pre-/post-activations and their gradients
    return 8 * jobs * (params * (2 * memory + WORK_VECTORS) + graph)


def check_solve_memory(problem: UFMProblem, jobs: int, memory: int = 10) -> int:
    """Raise a ValueError naming the sizes and the fixes if the solve cannot fit in memory.

    Returns the estimate in bytes (for callers that print it).
    """
    needed = solve_bytes(problem, jobs, memory)
    free = available_bytes(torch.device("cpu"))
    if free is not None and needed > free:
        one = solve_bytes(problem, 1, memory)
        raise ValueError(
            f"this UFM solve (K = {problem.num_classes:,}, d = {problem.dim:,}, "
            f"N = {problem.num_samples:,}, {jobs} problem x restart job(s) at once, L-BFGS "
            f"memory {memory}) needs about {needed / 2**30:.1f} GB, but only "
            f"{free / 2**30:.1f} GB is free ({one / 2**30:.2f} GB per job). Use fewer restarts "
            "or chunk_size=1 (one job at a time), a smaller L-BFGS memory, or smaller K, d or n"
        )
    return needed
