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
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "CircleInterpolant",
    "ConvergencePoint",
    "MLPKernel",
    "NTKLinear",
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
    "paper_target",
    "profile_slope_at_zero",
    "relative_kernel_error",
    "resnet_ntk",
    "training_angles",
]

#: export -> the module that defines it
_EXPORTS = {
    "MLPKernel": "neuralcollapse.ntk.analytic",
    "ResNetKernel": "neuralcollapse.ntk.analytic",
    "mlp_ntk": "neuralcollapse.ntk.analytic",
    "resnet_ntk": "neuralcollapse.ntk.analytic",
    "SmoothnessRow": "neuralcollapse.ntk.compare",
    "compare_smoothness": "neuralcollapse.ntk.compare",
    "ConvergencePoint": "neuralcollapse.ntk.empirical",
    "empirical_ntk": "neuralcollapse.ntk.empirical",
    "empirical_ntk_jacobian": "neuralcollapse.ntk.empirical",
    "ntk_convergence": "neuralcollapse.ntk.empirical",
    "relative_kernel_error": "neuralcollapse.ntk.empirical",
    "NTKLinear": "neuralcollapse.ntk.models",
    "ReLUMLP": "neuralcollapse.ntk.models",
    "ResidualReLUNet": "neuralcollapse.ntk.models",
    "build_network": "neuralcollapse.ntk.models",
    "CircleInterpolant": "neuralcollapse.ntk.smoothness",
    "fit_ridgeless": "neuralcollapse.ntk.smoothness",
    "kernel_profile": "neuralcollapse.ntk.smoothness",
    "paper_target": "neuralcollapse.ntk.smoothness",
    "profile_slope_at_zero": "neuralcollapse.ntk.smoothness",
    "training_angles": "neuralcollapse.ntk.smoothness",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
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
    from neuralcollapse.ntk.smoothness import (
        CircleInterpolant,
        fit_ridgeless,
        kernel_profile,
        paper_target,
        profile_slope_at_zero,
        training_angles,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
