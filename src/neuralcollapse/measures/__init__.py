"""Measures built on the metrics engine: collapse through depth, OOD scores, the MSE split.

- :mod:`.depth`: He & Su's law of data separation (separation fuzziness per layer, the
  geometric-decay fit ``log D_l = a + l log rho``);
- :mod:`.lowrank`: singular values, numerical and stable rank of the class means per layer,
  and the alignment of each weight with its input's class-mean subspace (Súkeník, Mondelli &
  Lampert), also on deep UFM solutions;
- :mod:`.ood_scores` / :mod:`.ood_eval`: NECO, NCI, class-mean alignment and the baselines
  (MSP, max logit, energy, Mahalanobis) with AUROC / AUPR / FPR95;
- :mod:`.mse_terms`: Han, Papyan & Donoho's ``L = L_NC1 + L_NC2/3 + L_LS-perp``.

Definitions and conventions: docs/measures.md.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "SCORES",
    "FeatureStatistics",
    "LayerRank",
    "MSEDecomposition",
    "OODEvaluation",
    "OODScorer",
    "SeparationFit",
    "Spectrum",
    "decompose",
    "depth_rank_profile",
    "evaluate_ood",
    "feature_statistics",
    "feature_statistics_batches",
    "fit_separation_law",
    "fuzziness_from_metrics",
    "layer_rank",
    "mse_decomposition",
    "mse_decomposition_batches",
    "separation_fuzziness",
    "separation_fuzziness_batches",
    "spectrum",
    "subspace_alignment",
    "ufm_rank_profile",
]

#: export -> the module that defines it
_EXPORTS = {
    "SeparationFit": "neuralcollapse.measures.depth",
    "fit_separation_law": "neuralcollapse.measures.depth",
    "fuzziness_from_metrics": "neuralcollapse.measures.depth",
    "separation_fuzziness": "neuralcollapse.measures.depth",
    "separation_fuzziness_batches": "neuralcollapse.measures.depth",
    "LayerRank": "neuralcollapse.measures.lowrank",
    "Spectrum": "neuralcollapse.measures.lowrank",
    "depth_rank_profile": "neuralcollapse.measures.lowrank",
    "layer_rank": "neuralcollapse.measures.lowrank",
    "spectrum": "neuralcollapse.measures.lowrank",
    "subspace_alignment": "neuralcollapse.measures.lowrank",
    "ufm_rank_profile": "neuralcollapse.measures.lowrank",
    "MSEDecomposition": "neuralcollapse.measures.mse_terms",
    "decompose": "neuralcollapse.measures.mse_terms",
    "mse_decomposition": "neuralcollapse.measures.mse_terms",
    "mse_decomposition_batches": "neuralcollapse.measures.mse_terms",
    "OODEvaluation": "neuralcollapse.measures.ood_eval",
    "evaluate_ood": "neuralcollapse.measures.ood_eval",
    "SCORES": "neuralcollapse.measures.ood_scores",
    "OODScorer": "neuralcollapse.measures.ood_scores",
    "FeatureStatistics": "neuralcollapse.measures.scatter",
    "feature_statistics": "neuralcollapse.measures.scatter",
    "feature_statistics_batches": "neuralcollapse.measures.scatter",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.measures.depth import (
        SeparationFit,
        fit_separation_law,
        fuzziness_from_metrics,
        separation_fuzziness,
        separation_fuzziness_batches,
    )
    from neuralcollapse.measures.lowrank import (
        LayerRank,
        Spectrum,
        depth_rank_profile,
        layer_rank,
        spectrum,
        subspace_alignment,
        ufm_rank_profile,
    )
    from neuralcollapse.measures.mse_terms import (
        MSEDecomposition,
        decompose,
        mse_decomposition,
        mse_decomposition_batches,
    )
    from neuralcollapse.measures.ood_eval import OODEvaluation, evaluate_ood
    from neuralcollapse.measures.ood_scores import SCORES, OODScorer
    from neuralcollapse.measures.scatter import (
        FeatureStatistics,
        feature_statistics,
        feature_statistics_batches,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
