"""The implicit bias of unregularised cross-entropy on the UFM: gradient descent finds the ETF.

Without weight decay (lambda_W = lambda_H = 0) and without a bias, the cross-entropy UFM

    L(W, H) = (1/N) sum_i CE(W h_i, y_i),   CE(z, y) = log sum_k exp(z_k - z_y),

has no minimiser: on separated data scaling (W, H) up drives L to 0. What gradient descent
selects is a *direction*. Write the margin of sample i as ``q_i = min_{k != y_i} (z_{y_i,i}
- z_{k,i})`` with ``Z = W H``, and normalise it by the scale of both factors:

    gamma(W, H) = min_i q_i / (||W||_F ||H||_F).

``gamma`` is invariant under ``W -> a W``, ``H -> b H`` (a, b > 0), so it measures the
direction only. (Lyu & Li normalise by ``||theta||^2 = ||W||_F^2 + ||H||_F^2``; since
``||W|| ||H|| <= ||theta||^2 / 2`` with equality for balanced factors, their
``gamma_LL = min_i q_i / ||theta||^2`` is at most ``gamma / 2``, with equality at balance,
which gradient descent from a small start keeps: it conserves ``W^T W - H H^T`` up to
O(step^2) per step.)

**The max-margin value.** For any (W, H), the minimum is at most the mean of the
``N (K-1)`` margins ``z_{y_i} - z_k``, and with ``wbar = (1/K) sum_k w_k``

    (1/(N(K-1))) sum_i sum_{k != y_i} (w_{y_i} - w_k)^T h_i
        = (K/(N(K-1))) sum_i (w_{y_i} - wbar)^T h_i
        <= (K/(N(K-1))) sqrt(sum_i ||w_{y_i} - wbar||^2) ||H||_F       (Cauchy-Schwarz)
        =  (K/(N(K-1))) sqrt(n sum_k ||w_k - wbar||^2) ||H||_F
        <= (K sqrt(n)/(N(K-1))) ||W||_F ||H||_F                    (centring shrinks norms),

so, with N = K n,

    gamma(W, H) <= gamma* = 1 / ((K - 1) sqrt(n)).

Equality needs every inequality tight: all margins equal, ``wbar = 0``, ``h_i`` proportional
to ``w_{y_i}`` with one factor (NC1 and self-duality), and equal margins against every other
class, which with ``wbar = 0`` forces equal norms and pairwise cosines ``-1/(K-1)``: the rows
of W, and the class means, form a simplex ETF (possible when d >= K - 1). Check: ``w_k = a
u_k``, ``h_{k,i} = b u_k`` with ``u_k`` a unit simplex ETF give margins ``a b K/(K-1)``,
``||W||_F = a sqrt(K)``, ``||H||_F = b sqrt(K n)``, so gamma = gamma*. The maximisers of
gamma are exactly the directions of the min-norm separation problem
``min (||W||^2 + ||H||^2)/2 s.t. q_i >= 1`` (Ji et al. 2022), whose global solutions are
these ETFs (Lyu & Li's ``gamma_LL`` is then ``gamma*/2``).

**The experiment** (:func:`implicit_bias_gd`): plain full-batch gradient descent with a fixed
step from a small Gaussian start, recording at log-spaced steps the normalised margin
``gamma``, the ETF gaps of the class means and of the classifier rows and NC1 (all from
:func:`neuralcollapse.metrics.measure`, the project's one definition of each: docs/metrics.md),
and the loss. Convergence in direction is slow, logarithmic in the number of steps (the
margin gap closes roughly like 1/log t): 10^5 steps on K=4, n=5, d=20 take 5-8 s on one CPU core
and end within 1% of gamma* (ETF gaps ~7e-3).

**Which conditions of the cited results the experiment meets.**

- *Separability*: the UFM can separate any labels (H is free; d >= K - 1 is required here,
  so the max-margin ETF exists). Lyu & Li's theorem assumes that at some time the summed
  loss ``sum_i CE_i`` is below log 2 (then every sample has ``p_y > 1/2``, a positive
  margin); the result reports the first recorded step where that holds (``separated_step``).
- *Homogeneity*: the logits ``W H`` are 2-homogeneous in ``theta = (W, H)`` with no bias (a
  bias would break it, so none is allowed), and smooth: Lyu & Li's setting, and Ji et al.'s
  unconstrained layer-peeled model exactly.
- *Loss*: cross-entropy, the exponential-tailed loss of all three papers.
- *Small initialisation*: Gaussian entries of standard deviation ``init_scale`` (default
  1e-2). The theorems do not need it for convergence to a KKT point; it keeps the factors
  balanced and the conserved mean of W's rows (GD never changes ``sum_k w_k``, because the
  columns of ``softmax(Z) - Y`` sum to zero) small, so the run approaches the ETF and not a
  nearby direction with a W offset that decays only as the norms grow.
- *Step size*: the theorems are for gradient flow (Ji et al.; Lyu & Li also treat gradient
  descent under a step-size condition tied to the local smoothness). A fixed step is a
  discretisation of the flow; the run counts the steps where the loss went up
  (``loss_increases``; 0 means GD decreased the loss at every step, as the flow does).
- *Soudry et al.* (linear models on fixed separable data, step < 2/smoothness): with H held
  fixed, training W is their setting; the joint (bilinear) problem is covered by Lyu & Li
  and Ji et al. instead.
- *What is not guaranteed*: the theorems give convergence in direction to a KKT point of the
  min-norm separation problem; that the limit is the *global* max-margin ETF rests on Ji et
  al.'s landscape result (non-global critical points are strict saddles), which gradient
  descent from a random start avoids in practice. The test checks the ETF numerically.

References
----------
D. Soudry, E. Hoffer, M. S. Nacson, S. Gunasekar, N. Srebro, "The implicit bias of gradient
descent on separable data", JMLR 2018.
K. Lyu, J. Li, "Gradient descent maximizes the margin of homogeneous neural networks",
ICLR 2020.
W. Ji, Y. Lu, Y. Zhang, Z. Deng, W. J. Su, "An unconstrained layer-peeled perspective on
neural collapse", ICLR 2022.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from neuralcollapse import schema
from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics import measure

#: metrics of :class:`neuralcollapse.metrics.CollapseMetrics` kept at each recorded step
TRACKED_METRICS: tuple[str, ...] = (
    schema.ETF_GAP_MEANS,
    schema.ETF_GAP_WEIGHTS,
    schema.NC1,
    schema.GLOBAL_MEAN_RATIO,
    schema.SELF_DUALITY_UNCENTRED,
)


def max_margin(num_classes: int, per_class: int) -> float:
    """``gamma* = 1 / ((K - 1) sqrt(n))``: the largest ``min margin / (||W||_F ||H||_F)``.

    Attained exactly by simplex-ETF classifiers with collapsed, self-dual features (derivation
    in the module docstring). Lyu & Li's normalisation by ``||W||^2 + ||H||^2`` gives half.
    """
    k = check_int("num_classes", num_classes, minimum=2)
    n = check_int("per_class", per_class, minimum=1)
    return 1.0 / ((k - 1) * math.sqrt(n))


def _check_sizes(num_classes: int, per_class: int, dim: int) -> tuple[int, int, int]:
    """K, n and d as Python ints: K >= 2, n >= 1, d >= K - 1."""
    k = check_int("num_classes", num_classes, minimum=2)
    n = check_int("per_class", per_class, minimum=1)
    d = check_int(
        "dim",
        dim,
        minimum=k - 1,
        meaning=f"num_classes - 1 = {k - 1}: the max-margin simplex ETF spans K - 1 dimensions",
    )
    return k, n, d


def record_steps(steps: int, points: int) -> list[int]:
    """Step 0 and about ``points`` log-spaced steps in [1, steps] (distinct, ``steps`` last)."""
    grid = np.unique(np.round(np.geomspace(1, steps, max(points, 2))).astype(np.int64))
    return sorted({0, steps, *grid.tolist()})


def validate_zero_decay(
    *,
    loss: str,
    solver: str,
    bias: str | float = "none",
    depth: int = 1,
    balanced: bool = True,
) -> None:
    """Zero weight decay is meaningful only for CE with gradient descent, no bias, depth 1.

    For the command line: call it when ``lambda_W = lambda_H = 0`` is asked for (one of the
    two zero alone keeps :class:`~neuralcollapse.ufm.UFMProblem`'s error).

    Raises
    ------
    ValueError : naming what is needed (``--loss ce --solver gd --bias none --depth 1``).
    """
    need = "zero decay (lambda_W = lambda_H = 0) needs --loss ce --solver gd --bias none --depth 1"
    if loss != "ce":
        raise ValueError(
            f"{need}: with loss {loss!r} the unregularised UFM has minimisers of every scale "
            "and no implicit-bias theory here; use --loss ce, or positive decay"
        )
    if solver != "gd":
        raise ValueError(
            f"{need}: unregularised CE has no minimiser, so {solver!r} has nothing to converge "
            "to; gradient descent is what selects the max-margin direction (--solver gd)"
        )
    if bias not in ("none", None):
        raise ValueError(
            f"{need}: a bias breaks the homogeneity the max-margin theory rests on; use --bias none"
        )
    if depth != 1:
        raise ValueError(f"{need}: the max-margin (ETF) result is for one layer; use --depth 1")
    if not balanced:
        raise ValueError(
            f"{need} and balanced classes: with unequal class sizes the max-margin solution is "
            "not the simplex ETF; give one --n"
        )


@dataclass
class ImplicitBiasResult:
    """Gradient descent on the unregularised CE UFM, recorded in direction.

    Attributes
    ----------
    num_classes, per_class, dim, steps, lr, init_scale, seed : the run.
    theory_margin : ``gamma* = 1/((K-1) sqrt(n))`` (:func:`max_margin`).
    trajectory : one dict per recorded step: ``step``, ``loss``, ``margin`` (gamma),
        ``margin_ratio`` (gamma / gamma*), ``margin_lyu_li`` (min margin / (||W||^2 +
        ||H||^2)), ``norm_w``, ``norm_h`` and :data:`TRACKED_METRICS`.
    separated_step : first recorded step with summed loss below log 2 (None if never).
    loss_increases : steps at which the loss went up (0: monotone descent).
    weights : final W (K, d); ``features`` : final H (d, N), class-major.
    seconds : wall time.
    """

    num_classes: int
    per_class: int
    dim: int
    steps: int
    lr: float
    init_scale: float
    seed: int
    theory_margin: float
    trajectory: list[dict[str, Any]]
    separated_step: int | None
    loss_increases: int
    weights: np.ndarray = field(repr=False)
    features: np.ndarray = field(repr=False)
    seconds: float = 0.0

    @property
    def final(self) -> dict[str, Any]:
        return self.trajectory[-1]

    def series(self, key: str) -> tuple[np.ndarray, np.ndarray]:
        """``(steps, values)`` of one trajectory column (None read as NaN)."""
        steps = np.array([row["step"] for row in self.trajectory], dtype=float)
        values = np.array(
            [math.nan if row.get(key) is None else row[key] for row in self.trajectory],
            dtype=float,
        )
        return steps, values

    def summary(self) -> dict[str, Any]:
        """Strict-JSON summary: the direction reached (not an objective, which has no minimum)."""
        final = self.final
        return {
            "problem": {
                "num_classes": self.num_classes,
                "per_class": self.per_class,
                "dim": self.dim,
                "loss": "ce",
                "bias": "none",
                "lam_w": 0.0,
                "lam_h": 0.0,
            },
            "solver": "gd",
            "steps": self.steps,
            "lr": self.lr,
            "init_scale": self.init_scale,
            "seed": self.seed,
            "theory_margin": self.theory_margin,
            "margin": final["margin"],
            "margin_ratio": final["margin_ratio"],
            "loss": final["loss"],
            **{key: final[key] for key in TRACKED_METRICS},
            "separated_step": self.separated_step,
            "loss_increases": self.loss_increases,
            "seconds": self.seconds,
            "trajectory": self.trajectory,
        }


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return value if math.isfinite(value) else None


def _softmax_and_loss(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, float]:
    """Column softmax of Z (K, N) and the mean CE, stably (shift by the column maximum)."""
    shifted = logits - logits.max(axis=0, keepdims=True)
    exp = np.exp(shifted)
    total = exp.sum(axis=0, keepdims=True)
    columns = np.arange(logits.shape[1])
    loss = float(np.mean(np.log(total[0]) - shifted[labels, columns]))
    return exp / total, loss


def _record(
    step: int, weights: np.ndarray, features: np.ndarray, labels: np.ndarray, loss: float
) -> dict[str, Any]:
    logits = weights @ features
    columns = np.arange(len(labels))
    own = logits[labels, columns]
    others = logits.copy()
    others[labels, columns] = -np.inf
    min_margin = float(np.min(own - others.max(axis=0)))
    norm_w, norm_h = float(np.linalg.norm(weights)), float(np.linalg.norm(features))
    k = weights.shape[0]
    per_class = len(labels) // k
    metrics = measure(features.T, labels, weights, num_classes=k).to_dict()
    margin = min_margin / (norm_w * norm_h)
    row: dict[str, Any] = {
        "step": step,
        "loss": loss,
        "margin": margin,
        "margin_ratio": margin / max_margin(k, per_class),
        "margin_lyu_li": min_margin / (norm_w**2 + norm_h**2),
        "norm_w": norm_w,
        "norm_h": norm_h,
    }
    row.update({key: _finite_or_none(metrics.get(key)) for key in TRACKED_METRICS})
    return row


def implicit_bias_gd(
    num_classes: int = 4,
    per_class: int = 5,
    dim: int = 20,
    *,
    steps: int = 100_000,
    lr: float = 1.0,
    init_scale: float = 1e-2,
    seed: int = 0,
    record_points: int = 40,
) -> ImplicitBiasResult:
    """Gradient descent on the CE UFM without decay or bias; track its direction.

    Iterates ``W <- W - lr grad_W L``, ``H <- H - lr grad_H L`` with
    ``grad_W L = G H^T``, ``grad_H L = W^T G``, ``G = (softmax(W H) - Y) / N``, from
    Gaussian entries of standard deviation ``init_scale``; records at log-spaced steps
    (:func:`record_steps`) the normalised margin against ``gamma* = 1/((K-1) sqrt(n))`` and
    the ETF gaps (module docstring for the theory and the conditions met).

    Parameters
    ----------
    num_classes, per_class, dim : K >= 2, n >= 1, d >= K - 1 (class-major samples).
    steps : gradient steps (>= 1). The default takes 5-8 s on one CPU core.
    lr : fixed step size (> 0).
    init_scale : standard deviation of the start (> 0; small: see the module docstring).
    seed : seed of the start.
    record_points : about this many log-spaced records besides step 0.

    Returns
    -------
    :class:`ImplicitBiasResult`; ``summary()`` is strict JSON.

    Raises
    ------
    ValueError : bad sizes or settings; the iterates become non-finite (too large a step).
    """
    k, n, d = _check_sizes(num_classes, per_class, dim)
    steps = check_int("steps", steps, minimum=1, meaning="gradient steps")
    record_points = check_int(
        "record_points", record_points, minimum=1, meaning="log-spaced records besides step 0"
    )
    lr = check_float("lr", lr, minimum=0.0, strict=True, meaning="the step size")
    init_scale = check_float(
        "init_scale", init_scale, minimum=0.0, strict=True, meaning="std of the start"
    )
    seed = check_int("seed", seed, minimum=0, meaning="NumPy seeds are non-negative")
    started = time.perf_counter()
    threads = torch.get_num_threads()
    # the metrics of a 20 x 20 problem are tiny tensor ops: on a busy machine extra intra-op
    # threads only add synchronisation (measured 35 ms per record with 2 threads, 9 ms with 1)
    torch.set_num_threads(1)
    try:
        # a too-large step overflows: reported as divergence (ValueError), not as warnings
        with np.errstate(over="ignore", invalid="ignore"):
            return _run(k, n, d, steps, lr, init_scale, seed, record_points, started)
    finally:
        torch.set_num_threads(threads)


def _run(
    k: int,
    n: int,
    d: int,
    steps: int,
    lr: float,
    init_scale: float,
    seed: int,
    record_points: int,
    started: float,
) -> ImplicitBiasResult:
    count = k * n
    labels = np.repeat(np.arange(k), n)
    targets = np.zeros((k, count))
    targets[labels, np.arange(count)] = 1.0
    rng = np.random.default_rng(seed)
    weights = init_scale * rng.standard_normal((k, d))
    features = init_scale * rng.standard_normal((d, count))
    wanted = set(record_steps(steps, record_points))
    trajectory: list[dict[str, Any]] = []
    separated_step = None
    loss_increases = 0
    previous = math.inf
    # NumPy, not torch: at these sizes (a few hundred numbers) a step is a handful of tiny
    # products, and NumPy's per-call overhead is several times smaller than torch's
    for step in range(steps + 1):
        probabilities, loss = _softmax_and_loss(weights @ features, labels)
        if not math.isfinite(loss):
            raise ValueError(
                f"gradient descent diverged at step {step} (loss {loss}); lower lr (got {lr})"
            )
        if loss > previous:
            loss_increases += 1
        previous = loss
        if step in wanted:
            trajectory.append(_record(step, weights, features, labels, loss))
            if separated_step is None and count * loss < math.log(2.0):
                separated_step = step
        if step == steps:
            break
        residual = (probabilities - targets) / count
        grad_w = residual @ features.T
        grad_h = weights.T @ residual
        weights -= lr * grad_w
        features -= lr * grad_h
    return ImplicitBiasResult(
        num_classes=k,
        per_class=n,
        dim=d,
        steps=steps,
        lr=lr,
        init_scale=init_scale,
        seed=seed,
        theory_margin=max_margin(k, n),
        trajectory=trajectory,
        separated_step=separated_step,
        loss_increases=loss_increases,
        weights=weights,
        features=features,
        seconds=time.perf_counter() - started,
    )


def describe(result: ImplicitBiasResult) -> str:
    """A text table for the command line: the direction reached, against the max-margin ETF.

    There is no objective to compare (the loss has no minimum, it only tends to 0), so the
    rows are the normalised margin against ``gamma*`` and the gaps to the ETF.
    """
    final = result.final
    lines = [
        f"UFM K={result.num_classes} n={result.per_class} d={result.dim} loss=ce bias=none "
        f"lambda_W=lambda_H=0 solver=gd: {result.steps} steps, lr {result.lr:g}, start sigma "
        f"{result.init_scale:g} ({result.seconds:.1f} s)",
        "no minimiser (the loss only tends to 0); reporting the direction of (W, H)",
        f"{'':34}{'max-margin ETF':>16}{'gradient descent':>18}",
    ]
    rows = [
        ("normalised margin min q/(|W||H|)", result.theory_margin, final["margin"]),
        ("margin / max margin", 1.0, final["margin_ratio"]),
        ("ETF gap of centred means", 0.0, final[schema.ETF_GAP_MEANS]),
        ("ETF gap of classifier rows", 0.0, final[schema.ETF_GAP_WEIGHTS]),
        ("NC1", 0.0, final[schema.NC1]),
        ("self-duality (uncentred)", 0.0, final[schema.SELF_DUALITY_UNCENTRED]),
        ("loss", 0.0, final["loss"]),
    ]
    for name, theory, value in rows:
        shown = "-" if value is None else f"{value:.6g}"
        lines.append(f"{name:34}{theory:>16.6g}{shown:>18}")
    separated = "never" if result.separated_step is None else f"step {result.separated_step}"
    lines.append(
        f"summed loss below log 2 (every sample p_y > 1/2): {separated}; steps where the "
        f"loss rose: {result.loss_increases}"
    )
    return "\n".join(lines)
