"""The MSE loss split into neural-collapse terms (Han, Papyan & Donoho, ICLR 2022).

Features ``h_i`` (d,) with labels ``y_i``, targets ``t_c`` (K,) (``s e_c``, ``s`` the target
scale; with label smoothing eps ``s((1-eps) e_c + eps/K)``, as ``neuralcollapse.train``), a
linear classifier ``(W, b)`` and the ridge parameter lambda >= 0:

    L(W, b) = (1/2N) sum_i ||W h_i + b - t_{y_i}||^2 + (lambda/2) ||W||_F^2.

The bias is not penalised (Han et al.'s least-squares classifier has
``b_LS = t_bar - W_LS h_bar``). Write ``p_c = n_c / N``, ``mu_c`` the class means, ``h_bar =
sum_c p_c mu_c`` the sample mean, ``t_bar = sum_c p_c t_c``,
``Sigma_W = (1/N) sum_i (h_i - mu_{y_i})(h_i - mu_{y_i})^T`` and
``Sigma_T = Sigma_W + sum_c p_c (mu_c - h_bar)(mu_c - h_bar)^T``. Splitting every sample into
its class mean and its deviation from it gives, for *any* (W, b),

    L(W, b) = L_NC1(W) + L_NC2/3(W, b),
    L_NC1(W)      = (1/2) Tr(W (Sigma_W + lambda I) W^T),
    L_NC2/3(W, b) = (1/2) sum_c p_c ||W mu_c + b - t_c||^2

(on balanced classes ``sum_c p_c`` is ``Ave_c``, Han et al.'s notation). The ridge
least-squares classifier of the current features,

    W_LS = A (Sigma_T + lambda I)^+,  A = sum_c p_c (t_c - t_bar)(mu_c - h_bar)^T,
    b_LS = t_bar - W_LS h_bar,

minimises L; as L is quadratic, the loss of any other classifier exceeds it by

    L_LS-perp(W, b) = (1/2) Tr(dW (Sigma_T + lambda I) dW^T) + (1/2) ||dW h_bar + db||^2 >= 0,
    dW = W - W_LS,  db = b - b_LS.

Han et al.'s decomposition of the MSE loss of the network's classifier is then

    L(W, b) = L_NC1(W_LS) + L_NC2/3(W_LS, b_LS) + L_LS-perp(W, b):

L_NC1 vanishes with the within-class variability (NC1) when lambda = 0, L_NC2/3 measures
how far the least-squares fit of the class means is from the targets (zero at an exact
NC2/NC3 configuration it interpolates), and L_LS-perp how far the trained classifier is from
the least-squares one (negligible in their experiments: training runs near the *central
path*). Without a bias (``fit_bias=False``) ``h_bar`` and ``t_bar`` are replaced by 0,
``Sigma_T`` by the second moment ``(1/N) sum_i h_i h_i^T`` and the ``||dW h_bar + db||`` term
drops.

Cost: the d x d within-class covariance, accumulated in chunks
(:mod:`.scatter`: W_LS is a discriminant that uses every noise direction correlated with the
means, so no K-dimensional projection gives it exactly), one d x d eigendecomposition and
K x d products; nothing N x N. ``lambda = 0`` with a singular ``Sigma_T`` (collapse, dead
units, d > N) uses the pseudo-inverse: every least-squares classifier then gives the same
three terms.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float
from neuralcollapse.measures._checks import check_fraction, check_rtol
from neuralcollapse.measures.scatter import (
    BatchSource,
    FeatureStatistics,
    feature_statistics,
    feature_statistics_batches,
)
from neuralcollapse.metrics.validation import ArrayLike, check_classifier


@dataclass(frozen=True)
class MSEDecomposition:
    """Han, Papyan & Donoho's three terms (see the module docstring).

    Attributes
    ----------
    loss : L(W, b) of the classifier given (the least-squares loss when none was given).
    nc1 : L_NC1(W_LS).
    nc2_3 : L_NC2/3(W_LS, b_LS).
    ls_perp : L_LS-perp(W, b) (0 when no classifier was given).
    ridge, fit_bias, target_scale, label_smoothing : the settings used.
    """

    loss: float
    nc1: float
    nc2_3: float
    ls_perp: float
    ridge: float
    fit_bias: bool
    target_scale: float
    label_smoothing: float
    num_samples: int

    @property
    def loss_ls(self) -> float:
        """The loss of the least-squares classifier, ``L_NC1 + L_NC2/3``."""
        return self.nc1 + self.nc2_3

    def to_dict(self, prefix: str = "") -> dict[str, float | int | bool]:
        """The terms as a flat dict, keys prefixed (e.g. ``prefix="mse_"`` for a log row)."""
        values = {
            "loss": self.loss,
            "nc1": self.nc1,
            "nc2_3": self.nc2_3,
            "ls_perp": self.ls_perp,
            "loss_ls": self.loss_ls,
            "ridge": self.ridge,
        }
        return {f"{prefix}{key}": value for key, value in values.items()}


def _targets(num_classes: int, scale: float, smoothing: float, like: torch.Tensor) -> torch.Tensor:
    eye = torch.eye(num_classes, dtype=torch.float64, device=like.device)
    return scale * ((1.0 - smoothing) * eye + smoothing / num_classes)


def _nc1_term(weights: torch.Tensor, within: torch.Tensor, ridge: float) -> float:
    return 0.5 * float(((weights @ within) * weights).sum() + ridge * weights.square().sum())


def _nc23_term(
    weights: torch.Tensor,
    bias: torch.Tensor | None,
    means: torch.Tensor,
    targets: torch.Tensor,
    proportions: torch.Tensor,
) -> float:
    errors = means @ weights.T - targets
    if bias is not None:
        errors += bias
    return 0.5 * float(proportions @ errors.square().sum(dim=1))


def decompose(
    statistics: FeatureStatistics,
    weights: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    *,
    ridge: float = 0.0,
    fit_bias: bool | None = None,
    target_scale: float = 1.0,
    label_smoothing: float = 0.0,
    rtol: float | None = None,
) -> MSEDecomposition:
    """The decomposition from :class:`FeatureStatistics` (see :func:`mse_decomposition`)."""
    ridge = check_float(
        "ridge (lambda)",
        ridge,
        minimum=0.0,
        hint="The ridge penalty lambda/2 ||W||^2 needs lambda >= 0; use 0 "
        "for the plain least-squares classifier",
    )
    scale = check_float(
        "target_scale",
        target_scale,
        minimum=0.0,
        strict=True,
        hint="Targets are target_scale * e_c.",
    )
    smoothing = check_fraction(
        "label_smoothing",
        label_smoothing,
        zero=True,
        one=False,
        meaning="targets s((1 - eps) e_c + eps / K)",
        hint="Use 0 for no smoothing.",
    )
    num_classes, dim = statistics.num_classes, statistics.dim
    weight, offset = check_classifier(weights, bias, num_classes, dim)
    if fit_bias is None:
        fit_bias = weight is None or offset is not None
    if offset is not None and not fit_bias:
        raise ValueError(
            "the classifier has a bias but fit_bias=False: its loss could fall below the "
            "least-squares one without bias — pass fit_bias=True (or no bias)"
        )
    device = statistics.means.device
    p = statistics.proportions
    means = statistics.means
    targets = _targets(num_classes, scale, smoothing, means)
    if fit_bias:
        h_bar, t_bar = p @ means, p @ targets
        centred = means - h_bar
    else:
        h_bar = torch.zeros(dim, dtype=torch.float64, device=device)
        t_bar = torch.zeros(num_classes, dtype=torch.float64, device=device)
        centred = means
    weighted = centred * p.unsqueeze(1)
    gram = statistics.within + centred.T @ weighted  # Sigma_T, or the second moment
    gram.diagonal().add_(ridge)
    cross = (targets - t_bar).T @ weighted  # A = sum_c p_c (t_c - t_bar)(mu_c - h_bar)^T
    values, vectors = torch.linalg.eigh(gram)
    largest = float(values[-1])
    if largest <= 0:
        raise ValueError("the features are all zero (and lambda = 0): the classifier is undefined")
    cut = check_rtol(rtol, dim * float(torch.finfo(torch.float64).eps)) * largest
    keep = values > cut
    basis = vectors[:, keep]
    w_ls = ((cross @ basis) / values[keep]) @ basis.T
    b_ls = t_bar - w_ls @ h_bar if fit_bias else None
    nc1 = _nc1_term(w_ls, statistics.within, ridge)
    nc23 = _nc23_term(w_ls, b_ls, means, targets, p)
    if weight is None:
        loss, perp = nc1 + nc23, 0.0
    else:
        weight = weight.to(device)
        if fit_bias and offset is None:
            offset = torch.zeros(num_classes, dtype=torch.float64, device=device)
        offset = None if offset is None else offset.to(device)
        delta = weight - w_ls
        perp = 0.5 * float(((delta @ gram) * delta).sum())
        if fit_bias:
            perp += 0.5 * float((delta @ h_bar + offset - b_ls).square().sum())
        loss = _nc1_term(weight, statistics.within, ridge) + _nc23_term(
            weight, offset, means, targets, p
        )
    return MSEDecomposition(
        loss=loss,
        nc1=nc1,
        nc2_3=nc23,
        ls_perp=perp,
        ridge=ridge,
        fit_bias=bool(fit_bias),
        target_scale=scale,
        label_smoothing=smoothing,
        num_samples=statistics.num_samples,
    )


def mse_decomposition(
    features: ArrayLike,
    labels: ArrayLike,
    weights: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    *,
    num_classes: int | None = None,
    ridge: float = 0.0,
    fit_bias: bool | None = None,
    target_scale: float = 1.0,
    label_smoothing: float = 0.0,
    batch_size: int | None = None,
) -> MSEDecomposition:
    """Han, Papyan & Donoho's decomposition of the MSE loss of ``(W, b)`` on ``features``.

    Parameters
    ----------
    features : (N, d); labels : (N,) in [0, K).
    weights, bias : the network's classifier ``logits = h W^T + b`` (optional: without it
        the terms of the least-squares classifier alone, ``ls_perp = 0``).
    ridge : lambda >= 0 of the penalty ``(lambda/2) ||W||_F^2`` (the classifier's weight
        decay); ``0`` is the plain least-squares classifier.
    fit_bias : whether the least-squares classifier has a bias; default: yes unless a
        classifier without bias is given (e.g. Tirer & Bruna's MSE setting).
    target_scale, label_smoothing : the targets, as ``neuralcollapse.train``'s MSE loss
        (``mse_scale``, ``label_smoothing``), so that ``loss`` is its training loss when
        ``ridge = 0``.

    Returns
    -------
    :class:`MSEDecomposition` with ``loss = nc1 + nc2_3 + ls_perp`` (to rounding).

    References
    ----------
    Han, Papyan & Donoho, "Neural collapse under MSE loss: proximity to and dynamics on the
    central path", ICLR 2022, Section 3.
    """
    stats = feature_statistics(features, labels, num_classes=num_classes, batch_size=batch_size)
    return decompose(
        stats,
        weights,
        bias,
        ridge=ridge,
        fit_bias=fit_bias,
        target_scale=target_scale,
        label_smoothing=label_smoothing,
    )


def mse_decomposition_batches(
    make_batches: BatchSource,
    *,
    num_classes: int,
    weights: ArrayLike | None = None,
    bias: ArrayLike | None = None,
    ridge: float = 0.0,
    fit_bias: bool | None = None,
    target_scale: float = 1.0,
    label_smoothing: float = 0.0,
    batch_size: int | None = None,
    distributed: bool = False,
) -> MSEDecomposition:
    """:func:`mse_decomposition` of a stream (``make_batches()`` is read twice).

    ``distributed=True`` under torchrun: each rank streams its shard, the sums are
    all-reduced, and every rank gets the decomposition of all the data.
    """
    stats = feature_statistics_batches(
        make_batches, num_classes=num_classes, batch_size=batch_size, distributed=distributed
    )
    return decompose(
        stats,
        weights,
        bias,
        ridge=ridge,
        fit_bias=fit_bias,
        target_scale=target_scale,
        label_smoothing=label_smoothing,
    )
