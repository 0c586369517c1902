"""The field's frontier (issue 25): collapse for many classes, for regression, in transfer,
and its mechanism, plus a fixed simplex-ETF classifier.

- :mod:`.softmax_codes`: generalized neural collapse for K > d + 1 (Jiang et al. 2023):
  one-vs-rest margins in tiles, and a batched solver of the softmax code / Tammes problem;
- :mod:`.regression`: neural regression collapse NRC1-NRC3 (Andriopoulos et al., NeurIPS
  2024), streaming, and the regression UFM with its closed form and solver;
- :mod:`.transfer`: CDNV on held-out classes, few-shot NCC error and its bound (Galanti,
  György & Hutter, ICLR 2022);
- :mod:`.agop`: per-layer AGOP of any module, the neural feature ansatz, and Deep RFM
  (Beaglehole et al., NeurIPS 2024);
- :mod:`.fixed_etf`: :class:`FixedETFClassifier`, a head fixed to a simplex ETF.

Definitions: docs/theory.md ("The frontier"); usage: docs/frontier.md.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "TAMMES_ANGLES_D3",
    "ClassVariance",
    "DeepRFMLayer",
    "FewShotError",
    "FixedETFClassifier",
    "FrameMargins",
    "LayerAnsatz",
    "RegressionCollapse",
    "RegressionStats",
    "RegressionUFM",
    "RegressionUFMSolution",
    "RegressionUFMTheory",
    "SphericalCode",
    "layer_agops",
    "class_distance_variance",
    "deep_rfm",
    "feature_ansatz",
    "feature_margins",
    "few_shot_bound",
    "few_shot_error",
    "frame_margins",
    "known_optimal_margin",
    "best_known_angle",
    "linear_layers",
    "matrix_correlation",
    "nrc3_distance",
    "regression_collapse",
    "regression_ufm_theory",
    "simplex_bound",
    "simplex_etf_rows",
    "solve_regression_ufm",
    "solve_spherical_code",
]

#: export -> the module that defines it
_EXPORTS = {
    "DeepRFMLayer": "neuralcollapse.frontier.agop",
    "LayerAnsatz": "neuralcollapse.frontier.agop",
    "layer_agops": "neuralcollapse.frontier.agop",
    "deep_rfm": "neuralcollapse.frontier.agop",
    "feature_ansatz": "neuralcollapse.frontier.agop",
    "linear_layers": "neuralcollapse.frontier.agop",
    "matrix_correlation": "neuralcollapse.frontier.agop",
    "FixedETFClassifier": "neuralcollapse.frontier.fixed_etf",
    "simplex_etf_rows": "neuralcollapse.frontier.fixed_etf",
    "RegressionCollapse": "neuralcollapse.frontier.regression",
    "RegressionStats": "neuralcollapse.frontier.regression",
    "RegressionUFM": "neuralcollapse.frontier.regression",
    "RegressionUFMSolution": "neuralcollapse.frontier.regression",
    "RegressionUFMTheory": "neuralcollapse.frontier.regression",
    "nrc3_distance": "neuralcollapse.frontier.regression",
    "regression_collapse": "neuralcollapse.frontier.regression",
    "regression_ufm_theory": "neuralcollapse.frontier.regression",
    "solve_regression_ufm": "neuralcollapse.frontier.regression",
    "TAMMES_ANGLES_D3": "neuralcollapse.frontier.softmax_codes",
    "FrameMargins": "neuralcollapse.frontier.softmax_codes",
    "SphericalCode": "neuralcollapse.frontier.softmax_codes",
    "feature_margins": "neuralcollapse.frontier.softmax_codes",
    "frame_margins": "neuralcollapse.frontier.softmax_codes",
    "known_optimal_margin": "neuralcollapse.frontier.softmax_codes",
    "best_known_angle": "neuralcollapse.frontier.softmax_codes",
    "simplex_bound": "neuralcollapse.frontier.softmax_codes",
    "solve_spherical_code": "neuralcollapse.frontier.softmax_codes",
    "ClassVariance": "neuralcollapse.frontier.transfer",
    "FewShotError": "neuralcollapse.frontier.transfer",
    "class_distance_variance": "neuralcollapse.frontier.transfer",
    "few_shot_bound": "neuralcollapse.frontier.transfer",
    "few_shot_error": "neuralcollapse.frontier.transfer",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.frontier.agop import (
        DeepRFMLayer,
        LayerAnsatz,
        deep_rfm,
        feature_ansatz,
        layer_agops,
        linear_layers,
        matrix_correlation,
    )
    from neuralcollapse.frontier.fixed_etf import FixedETFClassifier, simplex_etf_rows
    from neuralcollapse.frontier.regression import (
        RegressionCollapse,
        RegressionStats,
        RegressionUFM,
        RegressionUFMSolution,
        RegressionUFMTheory,
        nrc3_distance,
        regression_collapse,
        regression_ufm_theory,
        solve_regression_ufm,
    )
    from neuralcollapse.frontier.softmax_codes import (
        TAMMES_ANGLES_D3,
        FrameMargins,
        SphericalCode,
        best_known_angle,
        feature_margins,
        frame_margins,
        known_optimal_margin,
        simplex_bound,
        solve_spherical_code,
    )
    from neuralcollapse.frontier.transfer import (
        ClassVariance,
        FewShotError,
        class_distance_variance,
        few_shot_bound,
        few_shot_error,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
