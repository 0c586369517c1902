"""Unconstrained features models: closed-form theory, solvers and phase diagrams.

- :class:`UFMProblem`: the model spec (K, n, d, loss, bias, lambdas, depth, activation);
- :func:`theory`: the closed-form minimiser where one is known (docs/ufm.md);
- :func:`solve_gd`, :func:`solve_lbfgs`: gradient descent (paper dynamics) and batched
  L-BFGS with restarts, each solution measured with :func:`neuralcollapse.metrics.measure`;
- :func:`sweep`, :func:`plot_sweep`: phase diagrams over a grid of lambdas;
- :class:`LPMProblem`, :func:`solve_lpm`: the Layer-Peeled Model for any class sizes (convex
  relaxation and non-convex route), and :func:`imbalanced_mse_theory` (docs/imbalance.md).
"""

from neuralcollapse.ufm.closed_forms import TheoryResult, closed_form, imbalanced_mse_theory, theory
from neuralcollapse.ufm.evaluate import Measurement, geometry_verdict, measure_solution
from neuralcollapse.ufm.lpm import LPMProblem, LPMSolution, solve_lpm_nonconvex
from neuralcollapse.ufm.lpm_convex import LPMSolverError, solve_lpm, solve_lpm_convex
from neuralcollapse.ufm.problem import ProblemBatch, UFMProblem, from_normalized_penalties
from neuralcollapse.ufm.solve import SolverDivergedError, UFMSolution, solve_gd, solve_lbfgs
from neuralcollapse.ufm.sweeps import SweepResult, sweep


def __getattr__(name: str):
    # figures load matplotlib, so they are imported only when asked for
    if name in ("plot_sweep", "plot_solution"):
        from neuralcollapse.viz import ufm_solution_figures

        return getattr(ufm_solution_figures, name)
    raise AttributeError(f"module 'neuralcollapse.ufm' has no attribute {name!r}")


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
    "plot_solution",
    "plot_sweep",
    "solve_gd",
    "solve_lbfgs",
    "solve_lpm",
    "solve_lpm_convex",
    "solve_lpm_nonconvex",
    "sweep",
    "theory",
]
