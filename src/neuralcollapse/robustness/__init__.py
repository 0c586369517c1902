"""What the terminal phase buys: adversarial robustness and generalisation through training.

- :func:`deepfool`, :func:`robustness`: DeepFool's minimal perturbation (Moosavi-Dezfooli et
  al., CVPR 2016) and Papyan et al.'s measure, the mean ``||r(x)|| / ||x||`` on a seeded
  subset of images, with the fraction not fooled within the step limit;
- :func:`generalisation_table`: test accuracy and loss at the first zero-training-error
  epoch and at the last epoch (Papyan, Han & Donoho, PNAS 2020, Table 1).

The implicit bias of unregularised cross-entropy on the UFM is in
:mod:`neuralcollapse.ufm.implicit_bias`. Docs: docs/robustness.md.
"""

from typing import TYPE_CHECKING

from neuralcollapse.lazy import lazy_exports

__all__ = [
    "ROW_KEYS",
    "DeepFoolResult",
    "GeneralisationTable",
    "RobustnessResult",
    "deepfool",
    "describe_cost",
    "empty_row",
    "eval_mode",
    "generalisation_table",
    "read_generalisation_table",
    "robustness",
    "seconds_per_image",
    "subset_indices",
]

#: export -> the module that defines it
_EXPORTS = {
    "ROW_KEYS": "neuralcollapse.robustness.deepfool_attack",
    "DeepFoolResult": "neuralcollapse.robustness.deepfool_attack",
    "RobustnessResult": "neuralcollapse.robustness.deepfool_attack",
    "deepfool": "neuralcollapse.robustness.deepfool_attack",
    "describe_cost": "neuralcollapse.robustness.deepfool_attack",
    "empty_row": "neuralcollapse.robustness.deepfool_attack",
    "eval_mode": "neuralcollapse.metrics.capture",
    "robustness": "neuralcollapse.robustness.deepfool_attack",
    "seconds_per_image": "neuralcollapse.robustness.deepfool_attack",
    "subset_indices": "neuralcollapse.robustness.deepfool_attack",
    "GeneralisationTable": "neuralcollapse.robustness.generalisation",
    "generalisation_table": "neuralcollapse.robustness.generalisation",
    "read_generalisation_table": "neuralcollapse.robustness.generalisation",
}


if TYPE_CHECKING:  # the lazy exports, visible to type checkers and IDEs
    from neuralcollapse.metrics.capture import eval_mode
    from neuralcollapse.robustness.deepfool_attack import (
        ROW_KEYS,
        DeepFoolResult,
        RobustnessResult,
        deepfool,
        describe_cost,
        empty_row,
        robustness,
        seconds_per_image,
        subset_indices,
    )
    from neuralcollapse.robustness.generalisation import (
        GeneralisationTable,
        generalisation_table,
        read_generalisation_table,
    )


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, globals())
