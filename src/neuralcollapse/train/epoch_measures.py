"""The per-epoch measures that ride along the NC metrics in ``neuralcollapse train``.

Each function returns the columns it adds to a log row (names owned by
:data:`neuralcollapse.schema.RUN_COLUMNS`), so the loop stays a list of calls:

- :func:`robustness_columns`: DeepFool robustness on a seeded test subset (issue 17;
  Moosavi-Dezfooli et al. 2016, Papyan et al. 2020), epoch rows;
- :func:`mse_columns`: Han, Papyan & Donoho's MSE decomposition of the classifier input
  (MSE runs), metric rows of the penultimate layer;
- :func:`group_columns`, :func:`minority_columns`: majority/minority test accuracy and the
  minority cosine of the classifier rows and of the training class means (imbalanced runs;
  Fang et al., PNAS 2021);
- :func:`spectra_columns`: the Gauss-Newton spectrum's headline (Papyan, JMLR 2020);
- :func:`code_columns`: smallest angles and margins when the classes outnumber the feature
  dimensions plus one (Jiang et al. 2023), and :func:`spherical_code_reference`;
- :func:`agop_row`: the neural feature ansatz of every linear layer for agop.jsonl
  (Beaglehole et al., NeurIPS 2024);
- :func:`transfer_columns`: CDNV and few-shot error of the classes withheld from training
  (Galanti, György & Hutter, ICLR 2022).

A measure that cannot be computed gives its columns as None with the reason under
``not_computed``; it never stops training.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from neuralcollapse import schema
from neuralcollapse.schema import NOT_COMPUTED


def merge_columns(row: dict[str, Any], *parts: dict[str, Any]) -> dict[str, Any]:
    """``row`` with the columns of ``parts`` added; their ``not_computed`` reasons merged."""
    merged = dict(row)
    reasons = dict(merged.pop(NOT_COMPUTED, None) or {})
    for part in parts:
        part = dict(part)
        reasons.update(part.pop(NOT_COMPUTED, None) or {})
        merged.update(part)
    if reasons:
        merged[NOT_COMPUTED] = reasons
    return merged


def _not_computed(keys: tuple[str, ...], reason: str) -> dict[str, Any]:
    return {**dict.fromkeys(keys), NOT_COMPUTED: dict.fromkeys(keys, reason)}


def robustness_columns(
    net: torch.nn.Module,
    images: torch.Tensor,
    labels: torch.Tensor,
    *,
    subset: int,
    seed: int,
    measure_now: bool,
) -> dict[str, Any]:
    """``deepfool_*`` columns: measured at tracked epochs, None at the others, {} when off."""
    if not subset:
        return {}
    from neuralcollapse.robustness import empty_row, robustness

    if not measure_now:
        return empty_row()
    row = robustness(net, images, labels, subset=subset, seed=seed).to_row()
    reasons = row.pop("deepfool_not_computed", None)
    if reasons:
        row[NOT_COMPUTED] = reasons
    return row


#: the ``mse_*`` columns (the schema's MSE group)
MSE_KEYS = schema.MSE_KEYS


def mse_columns(
    make_batches: Callable,
    *,
    num_classes: int,
    weights: torch.Tensor,
    bias: torch.Tensor | None,
    ridge: float,
    target_scale: float,
    label_smoothing: float,
    distributed: bool,
) -> dict[str, Any]:
    """``mse_*`` columns: L_NC1, L_NC2/3 and L_LS-perp of the classifier input (Han et al. 2022).

    ``ridge`` is the classifier's weight decay (the least-squares classifier they compare with
    is ridge-regularised the same way).
    """
    from neuralcollapse.measures.mse_terms import mse_decomposition_batches

    try:
        terms = mse_decomposition_batches(
            make_batches,
            num_classes=num_classes,
            weights=weights,
            bias=bias,
            ridge=ridge,
            target_scale=target_scale,
            label_smoothing=label_smoothing,
            distributed=distributed,
        )
    except ValueError as error:
        return _not_computed(MSE_KEYS, str(error))
    return terms.to_dict(prefix="mse_")


#: the group accuracies (majority, minority) of an imbalanced run
GROUP_KEYS = schema.GROUP_ACCURACY_KEYS


def group_columns(
    correct_per_class: torch.Tensor, count_per_class: torch.Tensor, minority_classes: int
) -> dict[str, Any]:
    """Accuracy over the majority classes and over the last ``minority_classes`` classes.

    The mean of the per-class accuracies within each group (the test split is balanced, so
    this is also the sample accuracy of the group).
    """
    accuracy = correct_per_class.to(torch.float64) / count_per_class.clamp_min(1)
    split = len(accuracy) - minority_classes
    groups = (float(accuracy[:split].mean()), float(accuracy[split:].mean()))
    return dict(zip(GROUP_KEYS, groups, strict=True))


#: the minority cosines (classifier rows, class means) of an imbalanced run
MINORITY_KEYS = schema.MINORITY_COSINE_KEYS


def minority_columns(
    weights: torch.Tensor, class_stats: Any, minority_classes: int
) -> dict[str, Any]:
    """Mean pairwise cosine within the minority classes of the classifier rows and the
    centred class means (-1/(K-1) for an ETF, 1 when they have merged)."""
    from neuralcollapse.metrics.minority import minority_cosine

    num_classes = weights.shape[0]
    group = list(range(num_classes - minority_classes, num_classes))
    row: dict[str, Any] = {}
    reasons = {}
    for key, source in zip(MINORITY_KEYS, (weights, class_stats), strict=True):
        if source is None:  # the class means are gathered at tracked epochs only
            row[key], reasons[key] = None, "class means not gathered at this epoch"
            continue
        if minority_classes < 2:
            row[key], reasons[key] = None, "needs at least 2 minority classes"
            continue
        try:
            row[key] = minority_cosine(source, group)
        except ValueError as error:  # a minority row that vanished: its direction is undefined
            row[key], reasons[key] = None, str(error)
    if reasons:
        row[NOT_COMPUTED] = reasons
    return row


#: the ``spectra_*`` columns (the schema's spectra group)
SPECTRA_KEYS = schema.SPECTRA_KEYS


def spectra_columns(
    net: torch.nn.Module,
    data: list[tuple[torch.Tensor, torch.Tensor]] | None,
    *,
    params: list[str],
    loss: str,
    seed: int,
    measure_now: bool,
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """``spectra_*`` columns and the full spectral summary (for spectra.jsonl) of G over
    ``params`` on the fixed subsample ``data`` (Papyan 2020; :mod:`neuralcollapse.spectra`).

    Measured at tracked epochs in eval mode (every submodule's own mode restored after), None
    at the others, ``({}, None)`` when off; a failure is recorded as not computed with the
    reason and never stops the run.
    """
    if data is None:
        return {}, None
    if not measure_now:
        return dict.fromkeys(SPECTRA_KEYS), None
    from neuralcollapse.metrics.capture import eval_mode
    from neuralcollapse.spectra import curvature_operator, spectral_density, spectral_summary

    try:
        with eval_mode(net):
            summary = spectral_summary(
                net, data, params=params, loss=loss, subsample=None, seed=seed
            )
            # the spectral density by stochastic Lanczos quadrature (a few probes: its
            # standard error is stored beside it), for the report's log-scale density
            operator = curvature_operator(net, data, kind="gauss_newton", params=params, loss=loss)
            density = spectral_density(
                operator, probes=4, steps=min(60, operator.dim), points=200, seed=seed
            )
    except (ValueError, RuntimeError) as error:
        return _not_computed(SPECTRA_KEYS, str(error).splitlines()[0]), None
    summary["density"] = {
        "grid": density.grid.tolist(),
        "density": density.density.tolist(),
        "stderr": density.stderr.tolist(),
        # the Gauss quadrature's own error (m against m - 1, m - 2 steps; 0 when exhausted)
        "quadrature_error": density.quadrature_error.tolist(),
        "sigma": density.sigma,
        "probes": 4,
    }
    errors = [value for value in summary["papyan"]["relative_error"] if isinstance(value, float)]
    top = summary["top_eigenvalues"]
    values = (
        top[0] if top else None,
        summary["outliers"]["count"],
        summary["outliers"]["separation_decades"],
        summary["trace"],
        float(torch.tensor(errors).median()) if errors else None,
        summary["cost"]["seconds"],
    )
    return dict(zip(SPECTRA_KEYS, values, strict=True)), summary


#: the ``transfer_*`` columns (the schema's transfer group)
TRANSFER_KEYS = schema.TRANSFER_KEYS


def transfer_columns(
    net: Any,
    withheld: Any,
    *,
    shots: int,
    ways: int | None,
    episodes: int,
    seed: int,
    batch_size: int,
    measure_now: bool,
) -> dict[str, Any]:
    """``transfer_*`` columns: how the features trained on the other classes serve the
    withheld ones (Galanti, György & Hutter, ICLR 2022; :mod:`neuralcollapse.frontier.transfer`).

    The penultimate features (the classifier's input) of ``withheld.images`` in eval mode give
    the withheld classes' CDNV, mean over ordered pairs of (V_i + V_j)/(2||mu_i - mu_j||^2),
    and the k-way m-shot nearest-class-centre error over ``episodes`` random episodes with
    its standard error, and the bound min(1, (k-1)(12 + 6/m) CDNV) beside it. The episodes'
    seed is the same at every epoch, so the error changes only with the features. Measured at
    tracked epochs, None at the others, ``{}`` when off; a failure is recorded as not
    computed with the reason and never stops the run.
    """
    if withheld is None:
        return {}
    if not measure_now:
        return dict.fromkeys(TRANSFER_KEYS)
    import math

    from neuralcollapse.frontier.transfer import (
        class_distance_variance,
        few_shot_bound,
        few_shot_error,
    )
    from neuralcollapse.metrics.capture import eval_mode

    device = next(net.parameters()).device
    with eval_mode(net), torch.no_grad():
        features = torch.cat(
            [
                net(images.to(device), return_features=True)[1].to(torch.float64).cpu()
                for images in torch.split(withheld.images, batch_size)
            ]
        )
    if not torch.isfinite(features).all():
        return _not_computed(TRANSFER_KEYS, "the withheld classes' features are not finite")
    try:
        cdnv = class_distance_variance((features, withheld.labels)).value
        error = few_shot_error(
            features, withheld.labels, shots=shots, ways=ways, episodes=episodes, seed=seed
        )
    except ValueError as problem:
        return _not_computed(TRANSFER_KEYS, str(problem).splitlines()[0])
    if math.isnan(cdnv):  # every withheld sample has the same features: no class structure
        return {
            **_not_computed(
                TRANSFER_KEYS[:1] + TRANSFER_KEYS[3:],
                "the withheld classes' means coincide and their features do not vary",
            ),
            TRANSFER_KEYS[1]: error.mean,
            TRANSFER_KEYS[2]: error.stderr,
        }
    bound = few_shot_bound(cdnv, error.ways, error.shots)
    return dict(zip(TRANSFER_KEYS, (cdnv, error.mean, error.stderr, bound), strict=True))


#: the ``code_*`` columns (the schema's codes group)
CODE_KEYS = schema.CODE_KEYS


def many_classes(feature_dim: int, num_classes: int) -> bool:
    """Whether K > d + 1: a simplex ETF of the K classes cannot exist in R^d."""
    return num_classes > feature_dim + 1


def code_columns(weights: torch.Tensor, class_stats: Any, *, measure_now: bool) -> dict[str, Any]:
    """``code_*`` columns of a run with K > d + 1 classes (Jiang et al. 2023): the smallest
    angle between two classifier rows (the Tammes / softmax-code objective), between two
    centred class means (the classifier's input, training split), and the means' one-vs-rest
    margin min_k min_{j != k} <u_k, v_k - v_j> against the unit rows
    (:mod:`neuralcollapse.frontier.softmax_codes`). None at untracked epochs; a zero row or
    mean (no direction) is recorded as not computed.
    """
    if not measure_now:
        return dict.fromkeys(CODE_KEYS)
    from neuralcollapse.frontier.softmax_codes import feature_margins, frame_margins

    weights = weights.detach().to(torch.float64).cpu()
    row: dict[str, Any] = {}
    reasons: dict[str, str] = {}
    try:
        row[CODE_KEYS[0]] = frame_margins(weights, uniformity_kernels=()).min_angle_degrees
    except ValueError as error:
        row[CODE_KEYS[0]], reasons[CODE_KEYS[0]] = None, str(error).splitlines()[0]
    if class_stats is None:
        for key in CODE_KEYS[1:]:
            row[key], reasons[key] = None, "class means not gathered at this epoch"
    else:
        means = class_stats.sums.to(torch.float64).cpu() / class_stats.counts.clamp_min(1).to(
            torch.float64
        ).cpu().unsqueeze(1)
        centred = means - means.mean(dim=0)  # Jiang et al. centre by the mean of the means
        try:
            row[CODE_KEYS[1]] = frame_margins(centred, uniformity_kernels=()).min_angle_degrees
            row[CODE_KEYS[2]] = float(feature_margins(centred, weights).min())
        except ValueError as error:
            for key in CODE_KEYS[1:]:
                row[key], reasons[key] = None, str(error).splitlines()[0]
    if reasons:
        row[NOT_COMPUTED] = reasons
    return row


#: summary.json's entry for the best known code of (K, d) and its fields (K and d under the
#: schema's size keys): the writer here and the report read these names
SPHERICAL_CODE = "spherical_code"
OPTIMUM_ANGLE, EXACT, RESTARTS = "optimum_angle_degrees", "exact", "restarts"


def spherical_code_reference(num_classes: int, feature_dim: int, seed: int) -> dict[str, Any]:
    """The best known smallest angle of K unit vectors in R^d, for summary.json: exact where
    the optimum is known, else the best of 8 seeded restarts of the Tammes solver (a lower
    bound on the optimum; :func:`neuralcollapse.frontier.softmax_codes.best_known_angle`)."""
    from neuralcollapse.frontier.softmax_codes import best_known_angle

    restarts = 8
    angle, exact = best_known_angle(num_classes, feature_dim, restarts=restarts, seed=seed)
    return {
        schema.NUM_CLASSES: num_classes,
        schema.DIM: feature_dim,
        OPTIMUM_ANGLE: angle,
        EXACT: exact,
        RESTARTS: 0 if exact else restarts,
    }


#: agop.jsonl's row: its list of layers, and each layer's fields (the writer here and the
#: report read these names)
AGOP_LAYERS = "layers"
AGOP_NAME, AGOP_INPUT_LAYER, AGOP_IN_FEATURES = "name", "input_layer", "in_features"
AGOP_CORRELATION, AGOP_CORRELATION_SQRT = "correlation", "correlation_sqrt"


def agop_row(
    net: Any, images: torch.Tensor | None, *, batch_size: int, measure_now: bool
) -> dict[str, Any] | None:
    """agop.jsonl's row of a tracked epoch (``--track-agop N``): for every linear layer l of
    ``net``, the correlation <W_l^T W_l, AGOP_l^alpha>_F / (||.|| ||.||) for alpha = 1 and 1/2,
    AGOP_l = mean_i J_l(x_i)^T J_l(x_i) of the logits with respect to the layer's input over
    the N fixed samples ``images`` (Beaglehole, Súkeník, Mondelli & Belkin, NeurIPS 2024;
    :mod:`neuralcollapse.frontier.agop`), and ``input_layer``, the metrics rows' layer whose
    NC1 describes that input (:meth:`~.nets.CollapseNet.linear_inputs`).

    None when off or untracked. Measured in eval mode (every submodule's mode restored). A
    layer whose correlation is undefined (a zero weight or AGOP) holds null with the reason;
    a failure of the whole measurement is recorded as ``not_computed``; neither stops the run.
    """
    if images is None or not measure_now:
        return None
    import time

    from neuralcollapse.frontier.agop import layer_agops, layer_ansatz

    started = time.perf_counter()
    try:
        agops = layer_agops(net, list(torch.split(images, batch_size)))
    except (ValueError, RuntimeError) as error:
        return {"samples": len(images), NOT_COMPUTED: str(error).splitlines()[0]}
    modules = dict(net.named_modules())
    inputs = net.linear_inputs()
    layers = []
    for name, agop in agops.items():
        entry: dict[str, Any] = {
            AGOP_NAME: name,
            AGOP_INPUT_LAYER: inputs.get(name),
            AGOP_IN_FEATURES: int(agop.shape[0]),
        }
        try:
            ansatz = layer_ansatz(name, modules[name].weight, agop)
            entry[AGOP_CORRELATION] = ansatz.correlation
            entry[AGOP_CORRELATION_SQRT] = ansatz.correlation_sqrt
        except ValueError as error:
            entry[AGOP_CORRELATION] = entry[AGOP_CORRELATION_SQRT] = None
            entry[NOT_COMPUTED] = str(error)
        layers.append(entry)
    return {
        "samples": len(images),
        "seconds": time.perf_counter() - started,
        AGOP_LAYERS: layers,
    }
