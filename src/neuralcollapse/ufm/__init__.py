"""Unconstrained features models: closed-form theory, solvers and phase diagrams.

- :class:`UFMProblem`: the model spec (K, n, d, loss, bias, lambdas, depth, activation);
- :func:`theory`: the closed-form minimiser where one is known (docs/ufm.md);
- :func:`solve_gd`, :func:`solve_lbfgs`: gradient descent (paper dynamics) and batched
  L-BFGS with restarts, each solution measured with :func:`neuralcollapse.metrics.measure`;
- :func:`sweep`: phase diagrams over a grid of lambdas (drawn by
  :mod:`neuralcollapse.viz.ufm_figures`, the presentation layer);
- :class:`LPMProblem`, :func:`solve_lpm`: the Layer-Peeled Model for any class sizes (convex
  relaxation and non-convex route), and :func:`imbalanced_mse_theory` (docs/imbalance.md).
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "LPMProblem",
    "LPMSolution",
    "LPMSolverError",
    "Measurement",
    "ProblemBatch",
    "SolverDivergedError",
    "SweepResult",
    "TheoryResult",
    "UFMProblem",
    "UFMSolution",
    "closed_form",
    "from_normalized_penalties",
    "geometry_verdict",
    "imbalanced_mse_theory",
    "measure_solution",
    "solve_gd",
    "solve_lbfgs",
    "solve_lpm",
    "solve_lpm_convex",
    "solve_lpm_nonconvex",
    "sweep",
    "theory",
]

#: export -> the module that defines it
_EXPORTS = {
    "TheoryResult": "neuralcollapse.ufm.closed_forms",
    "closed_form": "neuralcollapse.ufm.closed_forms",
    "imbalanced_mse_theory": "neuralcollapse.ufm.closed_forms",
    "theory": "neuralcollapse.ufm.closed_forms",
    "Measurement": "neuralcollapse.ufm.evaluate",
    "geometry_verdict": "neuralcollapse.ufm.evaluate",
    "measure_solution": "neuralcollapse.ufm.evaluate",
    "LPMProblem": "neuralcollapse.ufm.lpm",
    "LPMSolution": "neuralcollapse.ufm.lpm",
    "solve_lpm_nonconvex": "neuralcollapse.ufm.lpm",
    "LPMSolverError": "neuralcollapse.ufm.lpm_convex",
    "solve_lpm": "neuralcollapse.ufm.lpm_convex",
    "solve_lpm_convex": "neuralcollapse.ufm.lpm_convex",
    "ProblemBatch": "neuralcollapse.ufm.problem",
    "UFMProblem": "neuralcollapse.ufm.problem",
    "from_normalized_penalties": "neuralcollapse.ufm.problem",
    "SolverDivergedError": "neuralcollapse.ufm.solve",
    "UFMSolution": "neuralcollapse.ufm.solve",
    "solve_gd": "neuralcollapse.ufm.solve",
    "solve_lbfgs": "neuralcollapse.ufm.solve",
    "SweepResult": "neuralcollapse.ufm.sweeps",
    "sweep": "neuralcollapse.ufm.sweeps",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.ufm.closed_forms import (
        TheoryResult,
        closed_form,
        imbalanced_mse_theory,
        theory,
    )
    from neuralcollapse.ufm.evaluate import Measurement, geometry_verdict, measure_solution
    from neuralcollapse.ufm.lpm import LPMProblem, LPMSolution, solve_lpm_nonconvex
    from neuralcollapse.ufm.lpm_convex import LPMSolverError, solve_lpm, solve_lpm_convex
    from neuralcollapse.ufm.problem import ProblemBatch, UFMProblem, from_normalized_penalties
    from neuralcollapse.ufm.solve import SolverDivergedError, UFMSolution, solve_gd, solve_lbfgs
    from neuralcollapse.ufm.sweeps import SweepResult, sweep


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
