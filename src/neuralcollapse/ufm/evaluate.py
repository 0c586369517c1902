"""Measuring a UFM solution with the project's metrics engine, and naming its geometry.

A solution ``(W_1..W_L, H, b)`` is measured exactly like a trained network: features
``H^T`` (N x d, class-major labels) go through :func:`neuralcollapse.metrics.measure` with
the last-layer classifier. For depth >= 2 the classifier's input is the post-activation
``s(W_{L-1} ... s(W_1 H))``, measured with ``W_L`` and ``b``; H itself is then measured
without a classifier (its NC1 and frame geometry). No metric is re-implemented here.

Telling an ETF from an orthogonal frame (docs/theory.md): the verdict is
:func:`neuralcollapse.frames.classify_frame` of the measured OF gap, global-mean ratio and
centred ETF gap, with :data:`neuralcollapse.frames.SOLVER_TOLERANCE`; "zero" when the class
means vanish.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralcollapse import frames, schema
from neuralcollapse.metrics import CollapseMetrics, measure
from neuralcollapse.ufm.closed_forms import TheoryResult
from neuralcollapse.ufm.problem import ProblemBatch, UFMParameters, UFMProblem

#: class means with mean norm below this count as the zero solution (their NC metrics are
#: undefined: there is no between-class spread to compare with)
ZERO_NORM = 1e-5
#: the frame tolerance of a solution (a fraction of the distance between the two frames'
#: values: :func:`neuralcollapse.frames.frame_tolerances`)
GEOMETRY_TOL = frames.SOLVER_TOLERANCE


@dataclass
class Measurement:
    """Everything measured on one solution.

    Attributes
    ----------
    objective : f at the solution.
    rel_gap : ``(f - f*) / |f*|`` against theory (None without a closed form); negative
        values would mean theory is wrong.
    result : NC metrics of the features entering the last layer, with ``W_L`` and b
        (:class:`~neuralcollapse.metrics.CollapseMetrics`); None for the zero solution.
    result_h : NC metrics of H alone (depth >= 2; for depth 1 it is ``result``).
    metrics, metrics_h : the same as plain dicts (:meth:`CollapseMetrics.to_dict`), for
        what writes them to a file or a table.
    geometry, geometry_features : verdict for the class means of H and of the last-layer
        input, a code of :data:`neuralcollapse.frames.FRAMES`: "zero", "of", "etf",
        "between" (centred ETF plus a global-mean component) or "other".
    gram_means, gram_features, gram_weights : ``Hbar^T Hbar``, the same for the last-layer
        input, and ``W_L W_L^T``.
    mean_norm : mean over classes of the norm of the class means of H.
    """

    objective: float
    rel_gap: float | None
    result: CollapseMetrics | None
    result_h: CollapseMetrics | None
    geometry: str
    geometry_features: str
    gram_means: torch.Tensor
    gram_features: torch.Tensor
    gram_weights: torch.Tensor
    mean_norm: float

    @property
    def metrics(self) -> dict | None:
        """:attr:`result` as a dict (for files and tables); None for the zero solution."""
        return None if self.result is None else self.result.to_dict()

    @property
    def metrics_h(self) -> dict | None:
        """:attr:`result_h` as a dict (for files and tables)."""
        return None if self.result_h is None else self.result_h.to_dict()


def class_means(features: torch.Tensor, problem: UFMProblem) -> torch.Tensor:
    """Class means (dim, K) of class-major features (dim, N)."""
    pieces = torch.split(features, list(problem.class_counts), dim=1)
    return torch.stack([piece.mean(dim=1) for piece in pieces], dim=1)


def geometry_verdict(
    metrics: CollapseMetrics | None, mean_norm: float, tol: float = GEOMETRY_TOL
) -> str:
    """Name the frame formed by the class means from their measured metrics.

    "zero" when the means vanish (``mean_norm <= ZERO_NORM`` or no metrics); otherwise
    :func:`neuralcollapse.frames.classify_frame` of ``of_gap_means``, ``global_mean_ratio``
    and ``etf_gap_means`` with tolerance ``tol`` (a fraction of the distance between the two
    frames' values): "of", "etf", "between" (a centred ETF with a global-mean component, the
    regularised-bias family) or "other".
    """
    if metrics is None or mean_norm <= ZERO_NORM:
        return frames.ZERO
    values = (getattr(metrics, key) for key in schema.FRAME_KEYS)
    return frames.classify_frame(*values, metrics.num_classes, tolerance=tol)


def relative_gap(objective: float, reference: TheoryResult | None) -> float | None:
    """``(f - f*) / |f*|``, or None without a closed form."""
    if reference is None or not reference.available:
        return None
    return (objective - reference.f_star) / abs(reference.f_star)


def measure_solution(
    problem: UFMProblem, params: UFMParameters, reference: TheoryResult | None = None
) -> Measurement:
    """Measure one solution (``params`` with a leading batch dimension of 1)."""
    batch = ProblemBatch([problem])
    with torch.no_grad():
        objective = float(batch.objective(params)[0])
        features = params.features[0]
        last_inputs = batch.last_layer_inputs(params)[0]
    labels = batch.labels
    weight = params.weights[-1][0]
    bias = None if params.bias is None else params.bias[0]
    means = class_means(features, problem)
    feature_means = class_means(last_inputs, problem)
    mean_norm = float(means.norm(dim=0).mean())
    feature_norm = float(feature_means.norm(dim=0).mean())
    k = problem.num_classes
    result = None
    if feature_norm > ZERO_NORM:
        result = measure(last_inputs.T, labels, weight, bias, num_classes=k)
    if problem.depth == 1:
        result_h = result
    else:
        result_h = measure(features.T, labels, num_classes=k) if mean_norm > ZERO_NORM else None
    return Measurement(
        objective=objective,
        rel_gap=relative_gap(objective, reference),
        result=result,
        result_h=result_h,
        geometry=geometry_verdict(result_h, mean_norm),
        geometry_features=geometry_verdict(result, feature_norm),
        gram_means=means.T @ means,
        gram_features=feature_means.T @ feature_means,
        gram_weights=weight @ weight.T,
        mean_norm=mean_norm,
    )
