"""Residual vs MLP neural tangent kernels and the smoothness of their interpolation.

Tirer, Bruna & Giryes (MSML 2021) show that the NTK of a residual ReLU network gives
smoother kernel interpolation than that of an MLP. This package provides

- :mod:`.analytic`: infinite-width NTKs of a ReLU MLP and of their ResNet model
  (:func:`mlp_ntk`, :func:`resnet_ntk`), vectorised over Gram matrices or input pairs;
- :mod:`.models` and :mod:`.empirical`: the matching finite-width torch networks and their
  empirical NTK (layer-wise, or full ``torch.func`` Jacobians), with the error to the
  analytic kernel as the width grows (:func:`ntk_convergence`);
- :mod:`.smoothness` and :mod:`.compare`: kernel profiles on the circle, ridgeless
  interpolation and the kinks at the training points, compared across alpha;
- :mod:`.report`: :func:`ntk_report_figures`, every figure and the table in one call.
"""

from neuralcollapse.ntk.analytic import MLPKernel, ResNetKernel, mlp_ntk, resnet_ntk
from neuralcollapse.ntk.compare import SmoothnessRow, compare_smoothness
from neuralcollapse.ntk.empirical import (
    ConvergencePoint,
    empirical_ntk,
    empirical_ntk_jacobian,
    ntk_convergence,
    relative_kernel_error,
)
from neuralcollapse.ntk.models import NTKLinear, ReLUMLP, ResidualReLUNet, build_network
from neuralcollapse.ntk.report import NTKReport, ntk_report_figures
from neuralcollapse.ntk.smoothness import (
    CircleInterpolant,
    fit_ridgeless,
    kernel_profile,
    paper_target,
    profile_slope_at_zero,
    training_angles,
)

__all__ = [
    "CircleInterpolant",
    "ConvergencePoint",
    "MLPKernel",
    "NTKLinear",
    "NTKReport",
    "ReLUMLP",
    "ResNetKernel",
    "ResidualReLUNet",
    "SmoothnessRow",
    "build_network",
    "compare_smoothness",
    "empirical_ntk",
    "empirical_ntk_jacobian",
    "fit_ridgeless",
    "kernel_profile",
    "mlp_ntk",
    "ntk_convergence",
    "ntk_report_figures",
    "paper_target",
    "profile_slope_at_zero",
    "relative_kernel_error",
    "resnet_ntk",
    "training_angles",
]
