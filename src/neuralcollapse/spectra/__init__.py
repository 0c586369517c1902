"""Deepnet spectra and their class/cross-class structure (issue 26).

- :mod:`.operators`: the Hessian, the Gauss-Newton term G, the gradients' second moment (per
  chosen parameters, streamed over the data) and a layer's features' second moment;
- :mod:`.lanczos`, :mod:`.trace`, :mod:`.density`, :mod:`.dense`: top eigenpairs (Lanczos with
  full reorthogonalisation), Hutchinson's trace, stochastic Lanczos quadrature, exact spectra;
- :mod:`.papyan`: Papyan's class and cross-class means of the logit gradients, the C^2 x C^2
  Gram and the averaging approximation;
- :mod:`.ufm_spectra`: the UFM's outliers from the class means (docs/theory.md);
- :mod:`.summary`: one strict-JSON spectral measurement with its cost.

User guide: docs/spectra.md.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "DenseSpectrum",
    "Eigenpairs",
    "FeatureMomentOperator",
    "LossSpec",
    "ModelOperator",
    "OutlierPrediction",
    "PapyanDecomposition",
    "ParameterSubset",
    "SpectralDensity",
    "SpectralOperator",
    "TraceEstimate",
    "class_mean_prediction",
    "curvature_operator",
    "dense_spectrum",
    "estimate_cost",
    "exact_density",
    "feature_moment_operator",
    "hutchinson_trace",
    "layer_names",
    "loss_spec",
    "outlier_gaps",
    "papyan_decomposition",
    "select_parameters",
    "spectral_density",
    "spectral_summary",
    "subsample_batches",
    "theory_prediction",
    "top_eigenpairs",
    "ufm_network",
]

#: export -> the module that defines it
_EXPORTS = {
    "DenseSpectrum": "neuralcollapse.spectra.dense",
    "dense_spectrum": "neuralcollapse.spectra.dense",
    "SpectralDensity": "neuralcollapse.spectra.density",
    "exact_density": "neuralcollapse.spectra.density",
    "spectral_density": "neuralcollapse.spectra.density",
    "Eigenpairs": "neuralcollapse.spectra.lanczos",
    "top_eigenpairs": "neuralcollapse.spectra.lanczos",
    "LossSpec": "neuralcollapse.spectra.losses",
    "loss_spec": "neuralcollapse.spectra.losses",
    "FeatureMomentOperator": "neuralcollapse.spectra.operators",
    "ModelOperator": "neuralcollapse.spectra.operators",
    "SpectralOperator": "neuralcollapse.spectra.operators",
    "curvature_operator": "neuralcollapse.spectra.operators",
    "feature_moment_operator": "neuralcollapse.spectra.operators",
    "PapyanDecomposition": "neuralcollapse.spectra.papyan",
    "papyan_decomposition": "neuralcollapse.spectra.papyan",
    "ParameterSubset": "neuralcollapse.spectra.params",
    "select_parameters": "neuralcollapse.spectra.params",
    "estimate_cost": "neuralcollapse.spectra.summary",
    "outlier_gaps": "neuralcollapse.spectra.summary",
    "spectral_summary": "neuralcollapse.spectra.summary",
    "subsample_batches": "neuralcollapse.spectra.summary",
    "TraceEstimate": "neuralcollapse.spectra.trace",
    "hutchinson_trace": "neuralcollapse.spectra.trace",
    "OutlierPrediction": "neuralcollapse.spectra.ufm_spectra",
    "class_mean_prediction": "neuralcollapse.spectra.ufm_spectra",
    "layer_names": "neuralcollapse.spectra.ufm_spectra",
    "theory_prediction": "neuralcollapse.spectra.ufm_spectra",
    "ufm_network": "neuralcollapse.spectra.ufm_spectra",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.spectra.dense import DenseSpectrum, dense_spectrum
    from neuralcollapse.spectra.density import SpectralDensity, exact_density, spectral_density
    from neuralcollapse.spectra.lanczos import Eigenpairs, top_eigenpairs
    from neuralcollapse.spectra.losses import LossSpec, loss_spec
    from neuralcollapse.spectra.operators import (
        FeatureMomentOperator,
        ModelOperator,
        SpectralOperator,
        curvature_operator,
        feature_moment_operator,
    )
    from neuralcollapse.spectra.papyan import PapyanDecomposition, papyan_decomposition
    from neuralcollapse.spectra.params import ParameterSubset, select_parameters
    from neuralcollapse.spectra.summary import (
        estimate_cost,
        outlier_gaps,
        spectral_summary,
        subsample_batches,
    )
    from neuralcollapse.spectra.trace import TraceEstimate, hutchinson_trace
    from neuralcollapse.spectra.ufm_spectra import (
        OutlierPrediction,
        class_mean_prediction,
        layer_names,
        theory_prediction,
        ufm_network,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
