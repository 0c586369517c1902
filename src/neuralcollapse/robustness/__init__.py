"""What the terminal phase buys: adversarial robustness and generalisation through training.

- :func:`deepfool`, :func:`robustness`: DeepFool's minimal perturbation (Moosavi-Dezfooli et
  al., CVPR 2016) and Papyan et al.'s measure, the mean ``||r(x)|| / ||x||`` on a seeded
  subset of images, with the fraction not fooled within the step limit;
- :func:`generalisation_table`: test accuracy and loss at the first zero-training-error
  epoch and at the last epoch (Papyan, Han & Donoho, PNAS 2020, Table 1).

The implicit bias of unregularised cross-entropy on the UFM is in
:mod:`neuralcollapse.ufm.implicit_bias`. Docs: docs/robustness.md.
"""

from neuralcollapse.robustness.deepfool_attack import (
    ROW_KEYS,
    DeepFoolResult,
    RobustnessResult,
    deepfool,
    describe_cost,
    empty_row,
    eval_mode,
    robustness,
    seconds_per_image,
    subset_indices,
)
from neuralcollapse.robustness.generalisation import (
    GeneralisationTable,
    generalisation_table,
    read_generalisation_table,
)

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
