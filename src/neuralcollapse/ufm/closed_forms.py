"""Closed-form global minimisers of the unconstrained features model (docs/ufm.md).

Notation: K classes, n samples per class, N = K n, ``mu = sqrt(n lam_W lam_H)``,
``J = 11^T/K``. Tirer & Bruna's normalised penalties ``lam'_W = K lam_W`` and
``lam'_H = K n lam_H`` turn their threshold ``sqrt(lam'_W lam'_H) < 1`` into ``K mu < 1``.

Two facts carry every derivation below.

1. *Collapse.* For fixed weights and bias the objective is a sum over samples of a strictly
   convex function of ``h_{k,i}`` (loss + ``lam_H/2 ||h||^2``) that depends on the sample only
   through its class, so every minimiser has ``h_{k,i} = hbar_k``. Then the fit is
   ``1/(2K) ||Z + b 1^T - I||_F^2`` (MSE) with ``Z = W_L ... W_1 Hbar``, and
   ``||H||^2 = n ||Hbar||^2``.
2. *Balancing (AM-GM).* ``lam_W/2 ||W||^2 + n lam_H/2 ||Hbar||^2 >= mu ||W Hbar||_*``
   (nuclear norm), with equality for balanced factors ``W = sqrt(n lam_H/lam_W) Hbar^T``.
   With L weight layers the bound is
   ``(L+1)/2 (n Lam)^{1/(L+1)} sum_j sigma_j(Z)^{2/(L+1)}``, ``Lam = lam_1 ... lam_L lam_H``,
   again attained by balanced factors (every factor has the same singular values up to
   scale). Both need enough room: d (and every hidden width) >= rank Z.

So each model reduces to a problem over the singular values of ``Z`` (and b), solved below in
each function's docstring.

References
----------
Tirer & Bruna, ICML 2022 (Thm 3.1, extended UFM). Zhu et al., NeurIPS 2021 (Thm 3.1, CE).
Papyan, Han & Donoho, PNAS 2020.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

from neuralcollapse.ufm.problem import DTYPE, UFMProblem


@dataclass
class TheoryResult:
    """What theory says about a problem's global minimiser.

    Attributes
    ----------
    available : False when no closed form is known; ``reason`` says why, and every other
        field is None (nothing is guessed).
    f_star : the optimal objective value.
    is_zero : whether the minimiser is W = H = 0 (the bias may stay nonzero).
    control, threshold : the quantity that decides ``is_zero`` and its critical value
        (``is_zero`` iff control >= threshold); ``control_name`` spells the quantity.
    s_star : singular value of ``Z = W_L ... W_1 Hbar`` (MSE; all K, or K-1 with a free bias,
        are equal), or the logit margin for CE.
    gram_means : ``Hbar^T Hbar`` (K x K, uncentred class means), None when not unique.
    gram_features : Gram of the class means entering the last layer (post-activation for
        depth >= 2; equals ``gram_means`` for depth 1).
    gram_weights : ``W_L W_L^T`` (K x K).
    bias : the optimal bias (K,), None without a bias or when it is not unique.
    geometry : "zero", "etf" (simplex ETF), "of" (orthogonal frame), "between" (ETF plus a
        global-mean component, regularised bias) or "not unique" -- for the class means of H.
    geometry_features : the same for the features entering the last layer.
    """

    available: bool
    reason: str = ""
    f_star: float | None = None
    is_zero: bool | None = None
    control: float | None = None
    threshold: float | None = None
    control_name: str = ""
    s_star: float | None = None
    gram_means: torch.Tensor | None = None
    gram_features: torch.Tensor | None = None
    gram_weights: torch.Tensor | None = None
    bias: torch.Tensor | None = None
    geometry: str | None = None
    geometry_features: str | None = None
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly view (tensors become nested lists)."""
        out = {}
        for key, value in self.__dict__.items():
            out[key] = value.tolist() if isinstance(value, torch.Tensor) else value
        return out


def _mu(problem: UFMProblem) -> float:
    return math.sqrt(problem.per_class * problem.layer_lams[0] * problem.lam_h)


def _eye(k: int) -> torch.Tensor:
    return torch.eye(k, dtype=DTYPE)


def _centering(k: int) -> torch.Tensor:
    return _eye(k) - torch.full((k, k), 1.0 / k, dtype=DTYPE)


def _unavailable(reason: str) -> TheoryResult:
    return TheoryResult(available=False, reason=reason)


class NoClosedFormError(ValueError):
    """The dimensions are too small for the closed form (the problem itself is valid)."""


def _check_dimensions(problem: UFMProblem, needed: int, why: str) -> None:
    if problem.dim < needed:
        raise NoClosedFormError(
            f"no closed form for d={problem.dim} < {needed}: {why}. Use dim >= {needed}, or "
            f"solve numerically (solve_lbfgs) without a reference value"
        )
    for index, width in enumerate(problem.hidden_dims):
        if width < needed:
            raise NoClosedFormError(
                f"no closed form for hidden width {width} (layer {index + 1}) < {needed}: "
                f"every layer must carry the K-dimensional frame. Use hidden_dims >= {needed}"
            )


def theory(problem: UFMProblem) -> TheoryResult:
    """The closed-form global minimiser of ``problem``, where one is known.

    Covered (balanced classes): MSE depth 1 with no / free / regularised bias; CE depth 1
    with any bias mode; MSE linear depth L >= 2 without bias; MSE depth 2 with ReLU without
    bias. Anything else returns ``available=False`` with the reason.

    Raises
    ------
    ValueError
        When a closed form exists in principle but the dimensions are too small for it:
        d < K (no bias, regularised bias, depth >= 2), d < K-1 (free bias, CE), or a hidden
        width < K.
    """
    if not problem.balanced:
        # kept unavailable here (the solvers' default reference); the bias-free MSE depth-1
        # case has its own closed form, passed explicitly: imbalanced_mse_theory
        return _unavailable(
            "imbalanced classes: theory() covers balanced classes only; for MSE, depth 1, no "
            "bias use imbalanced_mse_theory(problem) (pass it as reference= to the solvers); "
            "otherwise solve numerically"
        )
    if problem.depth == 1:
        if problem.loss == "mse":
            if problem.bias == "none":
                return _mse_no_bias(problem)
            if problem.bias == "free":
                return _mse_free_bias(problem)
            return _mse_regularized_bias(problem)
        return _cross_entropy(problem)
    if problem.loss != "mse":
        return _unavailable("cross-entropy with depth >= 2: no closed form is known")
    if problem.has_bias:
        return _unavailable("depth >= 2 with a bias: no closed form is known")
    if problem.activation == "relu" and problem.depth != 2:
        return _unavailable(
            "ReLU with depth >= 3: no closed form is known (only depth 2 is covered)"
        )
    return _mse_deep(problem)


def theory_or_none(problem: UFMProblem) -> TheoryResult:
    """:func:`theory`, but dimensions too small for a closed form give ``available=False``
    (used by the solvers, which can still solve such problems numerically)."""
    try:
        return theory(problem)
    except NoClosedFormError as error:
        return _unavailable(str(error))


def _depth_one(
    problem: UFMProblem,
    product: torch.Tensor,
    *,
    f_star: float,
    is_zero: bool,
    s_star: float,
    bias: torch.Tensor | None,
    geometry: str,
    extra: dict | None = None,
) -> TheoryResult:
    """The depth-1 minimiser from its product ``Z = W Hbar`` (K x K).

    At a minimiser the two factors are balanced (``n lam_H Hbar^T Hbar`` and
    ``lam_W W W^T`` share their spectrum), so ``Hbar^T Hbar = sqrt(lam_W/(n lam_H)) Z`` and
    ``W W^T = sqrt(n lam_H/lam_W) Z``; every depth-1 case differs only in Z, f* and the bias.
    """
    n, lam_w, lam_h = problem.per_class, problem.layer_lams[0], problem.lam_h
    gram_means = math.sqrt(lam_w / (n * lam_h)) * product
    return TheoryResult(
        available=True,
        f_star=f_star,
        is_zero=is_zero,
        control=problem.num_classes * _mu(problem),
        threshold=1.0,
        control_name="K sqrt(n lam_W lam_H)",
        s_star=s_star,
        gram_means=gram_means,
        gram_features=gram_means,
        gram_weights=math.sqrt(n * lam_h / lam_w) * product,
        bias=bias,
        geometry=geometry,
        geometry_features=geometry,
        extra=extra or {},
    )


def _mse_no_bias(problem: UFMProblem) -> TheoryResult:
    """MSE, depth 1, no bias (Tirer & Bruna Thm 3.1).

    With ``Z = W Hbar`` the reduced objective is ``1/(2K) ||Z - I||^2 + mu ||Z||_*``. Its
    minimiser shares the eigenvectors of ``I``, so every singular value solves
    ``min_s (1-s)^2/(2K) + mu s``: ``s* = 1 - K mu`` if ``K mu < 1``, else 0. All K are
    equal, hence ``Z = s* I``, and the balanced factors give
    ``Hbar^T Hbar = s* sqrt(lam_W/(n lam_H)) I`` (orthogonal frame),
    ``W W^T = s* sqrt(n lam_H/lam_W) I`` and ``f* = K mu - K^2 mu^2/2`` (1/2 at zero).
    """
    _check_dimensions(problem, problem.num_classes, "W Hbar = s I_K needs rank K")
    k, mu = problem.num_classes, _mu(problem)
    s = max(0.0, 1.0 - k * mu)
    zero = s == 0.0
    return _depth_one(
        problem,
        s * _eye(k),
        f_star=0.5 if zero else k * mu - k * k * mu * mu / 2,
        is_zero=zero,
        s_star=s,
        bias=None,
        geometry="zero" if zero else "of",
    )


def _mse_free_bias(problem: UFMProblem) -> TheoryResult:
    """MSE, depth 1, unpenalised bias.

    Minimising over b first gives ``b = (1 - Z) 1 / K`` row-wise, i.e. the fit keeps only the
    centred part: ``1/(2K) ||(Z - I)(I - J)||^2``. A component of Z along ``1`` only costs
    nuclear norm, so ``Z = s (I - J)`` with ``min_s (K-1)[(1-s)^2/(2K) + mu s]``:
    ``s* = 1 - K mu`` (if positive), ``b* = 1/K``, class means a simplex ETF
    ``Hbar^T Hbar = s* sqrt(lam_W/(n lam_H)) (I - J)`` (so ``h_G = 0``) and
    ``f* = (K-1)(mu - K mu^2/2)``; at zero ``f* = (K-1)/(2K)``.
    """
    _check_dimensions(problem, problem.num_classes - 1, "the ETF spans K-1 dimensions")
    k, mu = problem.num_classes, _mu(problem)
    s = max(0.0, 1.0 - k * mu)
    zero = s == 0.0
    return _depth_one(
        problem,
        s * _centering(k),
        f_star=(k - 1) / (2 * k) if zero else (k - 1) * (mu - k * mu * mu / 2),
        is_zero=zero,
        s_star=s,
        bias=torch.full((k,), 1.0 / k, dtype=DTYPE),
        geometry="zero" if zero else "etf",
    )


def _mse_regularized_bias(problem: UFMProblem) -> TheoryResult:
    """MSE, depth 1, bias penalised by ``lam_b/2 ||b||^2``.

    The reduced problem ``1/(2K) ||Z + b 1^T - I||^2 + mu ||Z||_* + lam_b/2 ||b||^2`` is
    jointly convex and invariant under permuting classes, so a minimiser has
    ``Z = a (I - J) + m J`` and ``b = beta 1`` (a, m >= 0). It splits into
    ``(K-1)[(1-a)^2/(2K) + mu a]`` -> ``a = 1 - K mu`` and
    ``(m + K beta - 1)^2/(2K) + mu m + lam_b K beta^2/2``. If ``m > 0`` its stationarity gives
    ``beta = mu/lam_b`` and ``m = 1 - K mu (1 + 1/lam_b)``; when that is <= 0, ``m = 0`` and
    ``beta = 1/(K (1 + lam_b))``. Then ``Hbar^T Hbar = sqrt(lam_W/(n lam_H)) Z`` and
    ``W W^T = sqrt(n lam_H/lam_W) Z``: an exact simplex ETF while ``m = 0`` (large
    ``mu/lam_b``), moving towards an orthogonal frame (``m -> a``) as ``lam_b`` grows.
    """
    k, lam_b = problem.num_classes, problem.lam_b
    mu = _mu(problem)
    a = max(0.0, 1.0 - k * mu)
    m = max(0.0, 1.0 - k * mu * (1.0 + 1.0 / lam_b))
    beta = mu / lam_b if m > 0 else 1.0 / (k * (1.0 + lam_b))
    _check_dimensions(
        problem,
        k if m > 0 else k - 1,
        "Z = a(I-J) + mJ has rank K when m > 0 (K-1 otherwise)",
    )
    f_star = (
        (k - 1) * ((1 - a) ** 2 / (2 * k) + mu * a)
        + (m + k * beta - 1) ** 2 / (2 * k)
        + mu * m
        + lam_b * k * beta * beta / 2
    )
    z = a * _centering(k) + m * torch.full((k, k), 1.0 / k, dtype=DTYPE)
    zero = a == 0.0
    if zero:
        geometry = "zero"
    elif m == 0.0:
        geometry = "etf"
    else:
        geometry = "between"
    return _depth_one(
        problem,
        z,
        f_star=f_star,
        is_zero=zero,
        s_star=a,
        bias=torch.full((k,), beta, dtype=DTYPE),
        geometry=geometry,
        extra={
            "etf_threshold": "K mu (1 + 1/lam_b) >= 1 gives an exact ETF",
            "etf_control": k * mu * (1 + 1 / lam_b),
            "global_mean_coefficient": m,
        },
    )


def _cross_entropy(problem: UFMProblem) -> TheoryResult:
    """Cross-entropy, depth 1 (structure of Zhu et al. 2021, Thm 3.1).

    At a collapsed, balanced, symmetric point ``W`` has simplex-ETF rows of equal norm and
    ``h_k = c w_k`` with ``c = sqrt(lam_W/(n lam_H))``, so ``W Hbar = x (I - J)`` where x is
    the logit margin. The loss is ``log(1 + (K-1) e^{-x})`` and the penalties cost
    ``mu ||W Hbar||_* = (K-1) mu x``. Setting the derivative to zero makes every wrong-class
    probability equal ``mu``: ``x* = log(1/mu - (K-1))`` (positive iff ``K mu < 1``),
    ``f* = -log(1 - (K-1) mu) + (K-1) mu x*``, ``||w_k||^2 = ((K-1)/K) x*/c``. For
    ``K mu >= 1`` the function of x is increasing from 0: ``W = H = 0``, ``f* = log K``.
    Cross-entropy ignores a shift ``b' 1`` of the logits, so a free bias is not unique
    (``bias`` is None); a penalised one is 0.
    """
    _check_dimensions(problem, problem.num_classes - 1, "the ETF spans K-1 dimensions")
    k, n = problem.num_classes, problem.per_class
    lam_w, lam_h = problem.layer_lams[0], problem.lam_h
    mu = _mu(problem)
    zero = k * mu >= 1.0
    if zero:
        margin, f_star, weight_norm_sq = 0.0, math.log(k), 0.0
    else:
        margin = math.log(1.0 / mu - (k - 1))
        f_star = -math.log(1.0 - (k - 1) * mu) + (k - 1) * mu * margin
        weight_norm_sq = (k - 1) / k * math.sqrt(n * lam_h / lam_w) * margin
    bias = torch.zeros(k, dtype=DTYPE) if problem.bias == "regularized" else None
    # W Hbar = x (I - J): the margin times the centring matrix
    return _depth_one(
        problem,
        margin * _centering(k),
        f_star=f_star,
        is_zero=zero,
        s_star=margin,
        bias=bias,
        geometry="zero" if zero else "etf",
        extra={
            "margin": margin,
            "weight_norm_sq": weight_norm_sq,
            "wrong_class_probability": None if zero else mu,
        },
    )


def deep_linear_singular_value(num_layers: int, scaled_penalty: float) -> float | None:
    """Largest root of ``s^{(L-1)/(L+1)} (1 - s) = t`` on ``((L-1)/(2L), 1)``, or None.

    ``t = K (n Lam)^{1/(L+1)}``. The left side rises from 0 to its maximum at
    ``s = (L-1)/(2L)`` and falls back to 0 at 1, so the largest root (the local minimum of
    g) exists iff t does not exceed that maximum; found by bisection to machine precision.
    """
    power = (num_layers - 1) / (num_layers + 1)
    peak = (num_layers - 1) / (2 * num_layers)

    def phi(s: float) -> float:
        return s**power * (1 - s)

    if scaled_penalty > phi(peak):
        return None
    low, high = peak, 1.0
    for _ in range(200):
        middle = (low + high) / 2
        if phi(middle) > scaled_penalty:
            low = middle
        else:
            high = middle
    return (low + high) / 2


def _mse_deep(problem: UFMProblem) -> TheoryResult:
    """MSE, L >= 2 weight layers, no bias: linear (any L) or ReLU (L = 2).

    Linear. By facts 1-2 (module docstring) the objective is ``sum_j [(1-s_j)^2/(2K) +
    (L+1)/2 (n Lam)^{1/(L+1)} s_j^{2/(L+1)}]`` over the K singular values of Z. Each term is
    the same one-dimensional function, so all s_j equal one minimiser s:
    ``g(s) = (1-s)^2/2 + (L+1)/2 K (n Lam)^{1/(L+1)} s^{2/(L+1)}``.
    ``g'(s) = 0`` iff ``s^{(L-1)/(L+1)} (1-s) = K (n Lam)^{1/(L+1)}``; its largest root s*
    is a local minimum, and it beats ``g(0) = 1/2`` iff ``K^{L+1} n Lam <
    (L-1)^{L-1}/L^{2L}`` (L = 2: 1/16; at equality g(s*) = 1/2 with s* = (L-1)/L). The
    origin is always a local minimum (the penalties are quadratic, the fit's coupling is of
    order L+1), so the jump at the threshold is discontinuous.
    Balanced factors: ``n lam_H rho = lam_l w_l^2`` for all l, with ``Hbar^T Hbar = rho I``
    and ``w_l`` the common singular value of ``W_l``; ``s^2 = rho prod_l w_l^2`` gives
    ``rho = (s^2 prod_l lam_l / (n lam_H)^L)^{1/(L+1)}`` (L = 2:
    ``(s sqrt(lam_1 lam_2)/(n lam_H))^{2/3}``), the features entering W_L have Gram
    ``rho prod_{l<L} (n lam_H rho/lam_l) I`` and ``W_L W_L^T = (n lam_H rho/lam_L) I``.

    ReLU, L = 2. The ReLU can only remove energy, and the linear optimum is reachable with
    non-negative post-activation means (disjoint supports, an orthogonal frame), so the
    optimal value equals the linear one; the post-ReLU means form an orthogonal frame with
    the linear Gram. The pre-activation means are not unique (``Hbar^T Hbar = rho C`` for any
    PSD C with unit diagonal and non-positive off-diagonal), so ``gram_means`` is None.
    """
    k, n, depth = problem.num_classes, problem.per_class, problem.depth
    _check_dimensions(problem, k, "every factor must carry a rank-K orthogonal frame")
    lams = problem.layer_lams
    big_lambda = math.prod(lams) * problem.lam_h
    control = k ** (depth + 1) * n * big_lambda
    threshold = (depth - 1) ** (depth - 1) / depth ** (2 * depth)
    scaled = k * (n * big_lambda) ** (1.0 / (depth + 1))
    root = deep_linear_singular_value(depth, scaled)
    zero = control >= threshold or root is None
    geometry_h = "not unique" if problem.activation == "relu" else "of"
    if zero:
        zeros = torch.zeros(k, k, dtype=DTYPE)
        return TheoryResult(
            available=True,
            f_star=0.5,
            is_zero=True,
            control=control,
            threshold=threshold,
            control_name="K^(L+1) n lam_1...lam_L lam_H",
            s_star=0.0,
            gram_means=zeros,
            gram_features=zeros,
            gram_weights=zeros,
            bias=None,
            geometry="zero",
            geometry_features="zero",
            extra={"local_minimum_s": root},
        )
    s = root
    f_star = (1 - s) ** 2 / 2 + (depth + 1) / 2 * scaled * s ** (2.0 / (depth + 1))
    n_lam_h = n * problem.lam_h
    rho = (s * s * math.prod(lams) / n_lam_h**depth) ** (1.0 / (depth + 1))
    feature_scale = rho * math.prod(n_lam_h * rho / lam for lam in lams[:-1])
    return TheoryResult(
        available=True,
        f_star=f_star,
        is_zero=False,
        control=control,
        threshold=threshold,
        control_name="K^(L+1) n lam_1...lam_L lam_H",
        s_star=s,
        gram_means=None if problem.activation == "relu" else rho * _eye(k),
        gram_features=feature_scale * _eye(k),
        gram_weights=(n_lam_h * rho / lams[-1]) * _eye(k),
        bias=None,
        geometry=geometry_h,
        geometry_features="of",
        extra={"rho": rho},
    )


def imbalanced_mse_theory(problem: UFMProblem) -> TheoryResult:
    """MSE, depth 1, no bias, any class sizes n_k (Dang et al., ICML 2023, treat this model).

    Derivation. By fact 1 every minimiser collapses, ``h_{k,i} = hbar_k``, so with
    ``D = diag(n_k)`` the objective is ``1/(2N) ||(W Hbar - I) D^{1/2}||^2 +
    lam_W/2 ||W||^2 + lam_H/2 ||Hbar D^{1/2}||^2``. Put ``G = Hbar D^{1/2}``: by fact 2
    (AM-GM) the penalties are at least ``c ||W G||_*`` with ``c = sqrt(lam_W lam_H)``, with
    equality for balanced factors, so over ``Z = W G`` the problem is
    ``min_Z 1/(2N) ||Z - D^{1/2}||_F^2 + c ||Z||_*``: the proximal map of the nuclear norm at
    the diagonal ``D^{1/2}``, i.e. soft-thresholding of its singular values ``sqrt(n_k)`` at
    ``t = N c``. Hence ``Z = diag(s_k)`` with ``s_k = max(sqrt(n_k) - N sqrt(lam_W lam_H), 0)``
    (unique: a proximal map is single-valued), and

    - class k's mean and classifier row are exactly zero iff ``n_k <= N^2 lam_W lam_H``
      (control ``N sqrt(lam_W lam_H / n_k) >= 1``); the smallest classes vanish first;
    - ``W W^T = sqrt(lam_H/lam_W) diag(s_k)``, ``Hbar^T Hbar = sqrt(lam_W/lam_H)
      diag(s_k/n_k)``, ``W Hbar = diag(s_k / sqrt(n_k))``: an orthogonal frame with unequal
      norms (``||w_k||^2`` proportional to s_k, ``||hbar_k||^2`` to s_k/n_k);
    - ``f* = sum_{active} (c sqrt(n_k) - N c^2/2) + sum_{zero} n_k/(2N)``.

    For equal n_k this is :func:`theory`'s balanced result (``t/sqrt(n) = K mu``). Needs
    d >= the number of nonzero classes (the rank of Z).
    """
    if problem.loss != "mse" or problem.bias != "none" or problem.depth != 1:
        return _unavailable(
            "imbalanced_mse_theory covers MSE, depth 1, bias='none' only; other imbalanced "
            "models have no closed form here: solve numerically"
        )
    counts = torch.tensor(problem.class_counts, dtype=DTYPE)
    total = float(counts.sum())
    lam_w, lam_h = problem.layer_lams[0], problem.lam_h
    c = math.sqrt(lam_w * lam_h)
    root = counts.sqrt()
    s = (root - total * c).clamp_min(0.0)
    active = s > 0
    rank = int(active.sum())
    if problem.dim < rank:
        raise NoClosedFormError(
            f"no closed form for d={problem.dim} < {rank} (the number of nonzero classes): "
            f"W Hbar = diag(s_k) needs rank {rank}. Use dim >= {rank}, or solve numerically"
        )
    f_star = float(torch.where(active, c * root - total * c * c / 2, counts / (2 * total)).sum())
    controls = (total * c / root).tolist()
    zero = not bool(active.any())
    zero_classes = [k for k, on in enumerate(active.tolist()) if not on]
    gram_means = math.sqrt(lam_w / lam_h) * torch.diag(s / counts)
    return TheoryResult(
        available=True,
        f_star=f_star,
        is_zero=zero,
        control=total * c / float(root.max()),
        threshold=1.0,
        control_name="N sqrt(lam_W lam_H / max n_k)",
        s_star=None,
        gram_means=gram_means,
        gram_features=gram_means,
        gram_weights=math.sqrt(lam_h / lam_w) * torch.diag(s),
        bias=None,
        geometry="zero" if zero else "orthogonal",
        geometry_features="zero" if zero else "orthogonal",
        extra={
            "class_singular_values": s.tolist(),
            "class_controls": controls,
            "class_thresholds_lam": (counts / total**2).tolist(),
            "zero_classes": zero_classes,
            "note": "class k is zero iff N sqrt(lam_W lam_H / n_k) >= 1, i.e. "
            "lam_W lam_H >= n_k / N^2 (class_thresholds_lam)",
        },
    )


def closed_form(problem: UFMProblem) -> TheoryResult:
    """The closed form the project knows for ``problem``, balanced or not (None-safe:
    ``available=False`` when there is none or the dimensions are too small)."""
    try:
        if not problem.balanced:
            return imbalanced_mse_theory(problem)
        return theory(problem)
    except NoClosedFormError as error:
        return _unavailable(str(error))
