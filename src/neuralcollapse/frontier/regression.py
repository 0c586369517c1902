"""Neural regression collapse (NRC1-NRC3) and the regression unconstrained features model.

Andriopoulos, Dong, Guo, Zhao & Ross, "The prevalence of neural collapse in neural
multivariate regression", NeurIPS 2024. A network with last-layer features h_i in R^d, linear
head ``y_hat = W h + b`` (W: n x d) and targets y_i in R^n (n <= d):

- NRC1: the centred features collapse to the span of their top-n principal components;
- NRC2: ... to the span of the rows of W;
- NRC3: ``W W^T`` takes the form ``c (Sigma_Y^{1/2} - sqrt(gamma) I)_+`` set by the targets'
  covariance ``Sigma_Y`` and the regularisation (gamma, c > 0).

Conventions here (streaming from sums: every quantity below is a ratio of sums, so they merge
over batches and processes exactly):

- ``Sigma_H = (1/N) sum_i (h_i - h_bar)(h_i - h_bar)^T`` with eigenvalues l_1 >= ... >= l_d;
  ``NRC1 = sum_{i > n} l_i / sum_i l_i`` (the share of the centred feature energy outside the
  top-n principal subspace; 0 at collapse);
- ``NRC2 = tr((I - P_W) Sigma_H) / tr(Sigma_H)`` with P_W the projector onto the row space
  of W (0 at collapse);
- ``NRC3 = min_{gamma >= 0} || WW^T/||WW^T||_F - A(gamma)/||A(gamma)||_F ||_F`` with
  ``A(gamma) = (Sigma_Y^{1/2} - sqrt(gamma) I)_+`` (eigenvalues clipped at 0), Sigma_Y the
  targets' covariance (centred when the head has a bias); the fitted gamma is reported. The
  paper's NRC1/NRC2 average ``||(I - P) h~_i||^2`` over per-sample *normalised* centred
  features h~_i; that version needs a second pass, :meth:`RegressionStats.per_sample_nrc`.

The regression UFM (features free, project convention as in docs/theory.md):

    f(W, H, b) = 1/(2N) ||W H + b 1^T - Y||_F^2 + lam_W/2 ||W||_F^2 + lam_H/2 ||H||_F^2

with Y (n x N). Closed form (derived in docs/theory.md, "Neural regression collapse"): with a
free bias, b* = y_bar and h_bar = 0, and with Sigma = (1/N) Y~ Y~^T (Y~ centred; uncentred
without a bias) = U diag(l) U^T and ``gamma = N lam_W lam_H``,

    W W^T = sqrt(N lam_H / lam_W) (Sigma^{1/2} - sqrt(gamma) I)_+,
    H H^T = (lam_W / lam_H) W^T W,
    f* = sum_{l_i > gamma} (sqrt(lam_W lam_H N l_i) - gamma / 2) + sum_{l_i <= gamma} l_i / 2,

keeping only the d largest l_i when d < n. :func:`solve_regression_ufm` reaches it (batched
L-BFGS, checked to 1e-6).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.validation import as_tensor, check_features, check_finite
from neuralcollapse.ufm.lbfgs import batched_lbfgs

__all__ = [
    "RegressionCollapse",
    "RegressionStats",
    "RegressionUFM",
    "RegressionUFMSolution",
    "RegressionUFMTheory",
    "nrc3_distance",
    "regression_collapse",
    "regression_ufm_theory",
    "solve_regression_ufm",
]

DTYPE = torch.float64


def _check_targets(targets: object, num_samples: int) -> torch.Tensor:
    tensor = as_tensor(targets, "targets")
    if tensor.ndim == 1:
        tensor = tensor.unsqueeze(1)
    if tensor.ndim != 2:
        raise ValueError(
            f"targets must be (N, n) (one row of n regression targets per sample) or (N,); got "
            f"shape {tuple(tensor.shape)}"
        )
    if tensor.shape[0] != num_samples:
        raise ValueError(
            f"targets has {tensor.shape[0]} rows but features has {num_samples}; they must "
            "match one to one"
        )
    if not tensor.is_floating_point():
        raise TypeError(
            f"targets must be floating point regression targets; got dtype {tensor.dtype} "
            "(class labels? use neuralcollapse.metrics.measure for classification)"
        )
    tensor = tensor.detach().to(DTYPE)
    check_finite(tensor, "targets")
    return tensor


class RegressionStats:
    """Mergeable float64 sums of (features, targets) for NRC1-NRC3 (memory d^2 + n^2 + d n).

    ``count`` N, ``feature_sum`` (d,), ``feature_square`` (d, d) = sum h h^T, ``target_sum``
    (n,), ``target_square`` (n, n) = sum y y^T. Statistics of disjoint batches add up
    (:meth:`merge`); ``update`` takes features (B, d) and targets (B, n) of any float dtype.
    """

    def __init__(self) -> None:
        self.count = 0
        self.feature_sum: torch.Tensor | None = None
        self.feature_square: torch.Tensor | None = None
        self.target_sum: torch.Tensor | None = None
        self.target_square: torch.Tensor | None = None

    @property
    def dims(self) -> tuple[int, int]:
        """(d, n)."""
        self._require()
        return self.feature_sum.shape[0], self.target_sum.shape[0]

    def _require(self) -> None:
        if self.feature_sum is None:
            raise ValueError("RegressionStats has seen no data yet: call update(features, targets)")

    def update(self, features: object, targets: object) -> RegressionStats:
        """Add a batch: features (B, d), targets (B, n) or (B,)."""
        h = check_features(features).to(DTYPE)
        y = _check_targets(targets, h.shape[0])
        if self.feature_sum is None:
            d, n = h.shape[1], y.shape[1]
            self.feature_sum = torch.zeros(d, dtype=DTYPE)
            self.feature_square = torch.zeros(d, d, dtype=DTYPE)
            self.target_sum = torch.zeros(n, dtype=DTYPE)
            self.target_square = torch.zeros(n, n, dtype=DTYPE)
        elif (h.shape[1], y.shape[1]) != self.dims:
            raise ValueError(
                f"batch has (d, n) = ({h.shape[1]}, {y.shape[1]}) but earlier batches had "
                f"{self.dims}"
            )
        h, y = h.cpu(), y.cpu()
        self.count += h.shape[0]
        self.feature_sum += h.sum(dim=0)
        self.feature_square += h.T @ h
        self.target_sum += y.sum(dim=0)
        self.target_square += y.T @ y
        return self

    def merge(self, other: RegressionStats) -> RegressionStats:
        """Add the sums of a disjoint shard."""
        if not isinstance(other, RegressionStats):
            raise TypeError(f"can only merge RegressionStats; got {type(other).__name__}")
        if other.feature_sum is None:
            return self
        if self.feature_sum is None:
            for name in ("feature_sum", "feature_square", "target_sum", "target_square"):
                setattr(self, name, getattr(other, name).clone())
            self.count = other.count
            return self
        if other.dims != self.dims:
            raise ValueError(f"cannot merge statistics of (d, n) = {other.dims} into {self.dims}")
        self.count += other.count
        for name in ("feature_sum", "feature_square", "target_sum", "target_square"):
            getattr(self, name).add_(getattr(other, name))
        return self

    def feature_mean(self) -> torch.Tensor:
        self._require()
        return self.feature_sum / self.count

    def feature_covariance(self) -> torch.Tensor:
        """``Sigma_H`` (d, d), centred, divided by N."""
        mean = self.feature_mean()
        return self.feature_square / self.count - torch.outer(mean, mean)

    def target_covariance(self, centred: bool = True) -> torch.Tensor:
        """``Sigma_Y`` (n, n) divided by N: centred (a head with bias) or the second moment."""
        self._require()
        second = self.target_square / self.count
        if not centred:
            return second
        mean = self.target_sum / self.count
        return second - torch.outer(mean, mean)

    def per_sample_nrc(
        self, feature_batches: Iterable[object], weights: object
    ) -> tuple[float, float]:
        """The paper's NRC1 and NRC2 (second pass over the same features, any batching).

        ``mean_i ||(I - P) h~_i||^2`` with ``h~_i = (h_i - h_bar)/||h_i - h_bar||`` and P the
        projector onto the top-n principal subspace (NRC1) or W's row space (NRC2).
        """
        w = _check_weights(weights, *self.dims)
        principal = _top_subspace(self.feature_covariance(), self.dims[1])
        row_space = _row_space(w)
        mean = self.feature_mean()
        totals, count = [0.0, 0.0], 0
        for batch in feature_batches:
            h = check_features(batch).to(DTYPE).cpu() - mean
            norms = torch.linalg.vector_norm(h, dim=1, keepdim=True)
            h = h[norms[:, 0] > 0] / norms[norms[:, 0] > 0]
            for index, basis in enumerate((principal, row_space)):
                inside = (h @ basis).pow(2).sum(dim=1)
                totals[index] += float((1.0 - inside).clamp_min(0.0).sum())
            count += h.shape[0]
        if count == 0:
            raise ValueError("no features with a nonzero centred norm were given")
        return totals[0] / count, totals[1] / count


def _check_weights(weights: object, dim: int, targets: int) -> torch.Tensor:
    w = as_tensor(weights, "weights")
    if w.ndim == 1:
        w = w.unsqueeze(0)
    if tuple(w.shape) != (targets, dim):
        hint = " (transposed? pass W.T)" if tuple(w.shape) == (dim, targets) else ""
        raise ValueError(
            f"weights must have shape (n, d) = ({targets}, {dim}); got {tuple(w.shape)}{hint}"
        )
    w = w.detach().to(DTYPE).cpu()
    check_finite(w, "weights")
    return w


def _top_subspace(covariance: torch.Tensor, count: int) -> torch.Tensor:
    """(d, count) orthonormal basis of the top-``count`` eigenvectors."""
    _, vectors = torch.linalg.eigh(covariance)
    return vectors[:, -count:] if count > 0 else vectors[:, :0]


def _row_space(w: torch.Tensor) -> torch.Tensor:
    """(d, r) orthonormal basis of the row space of W (numerical rank r)."""
    _, singular, right = torch.linalg.svd(w, full_matrices=False)
    keep = singular > singular.max() * max(w.shape) * torch.finfo(DTYPE).eps
    return right[keep].T


def _sqrt_psd(matrix: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return values.clamp_min(0.0).sqrt(), vectors


def _normalised(matrix: torch.Tensor) -> torch.Tensor:
    norm = torch.linalg.matrix_norm(matrix)
    return matrix / norm if float(norm) > 0 else matrix


def nrc3_distance(
    gram_weights: object, target_covariance: object, gamma: float | None = None
) -> tuple[float, float]:
    """``(distance, gamma)``: NRC3 of ``W W^T`` against ``(Sigma_Y^{1/2} - sqrt(gamma) I)_+``.

    With ``gamma`` given, the distance at it (e.g. the UFM's ``N lam_W lam_H``); else the
    minimum over gamma in [0, l_max(Sigma_Y)) (a grid over sqrt(gamma) refined by golden
    section) and the gamma attaining it. The distance is between Frobenius-normalised
    matrices (0 to 2; 0 iff proportional).
    """
    gram = as_tensor(gram_weights, "gram_weights").detach().to(DTYPE)
    sigma = as_tensor(target_covariance, "target_covariance").detach().to(DTYPE)
    if gram.ndim != 2 or gram.shape != sigma.shape or gram.shape[0] != gram.shape[1]:
        raise ValueError(
            f"gram_weights (W W^T) and target_covariance must be square (n, n) matrices of one "
            f"shape; got {tuple(gram.shape)} and {tuple(sigma.shape)}"
        )
    roots, vectors = _sqrt_psd(sigma)
    target = _normalised(gram)

    def distance(root_gamma: float) -> float:
        shrunk = (roots - root_gamma).clamp_min(0.0)
        if float(shrunk.max()) <= 0.0:
            return 2.0
        a = (vectors * shrunk) @ vectors.T
        return float(torch.linalg.matrix_norm(target - _normalised(a)))

    if gamma is not None:
        gamma = check_float("gamma", gamma, minimum=0.0)
        return distance(math.sqrt(gamma)), gamma
    top = float(roots.max())
    if top == 0.0:
        raise ValueError("the target covariance is zero: the targets are constant")
    grid = [top * i / 200 for i in range(200)]
    values = [distance(g) for g in grid]
    best = min(range(len(grid)), key=values.__getitem__)
    low, high = grid[max(best - 1, 0)], grid[min(best + 1, len(grid) - 1)]
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    for _ in range(60):  # golden section on [low, high]
        a, b = high - ratio * (high - low), low + ratio * (high - low)
        if distance(a) <= distance(b):
            high = b
        else:
            low = a
    root = (low + high) / 2
    candidates = [(distance(root), root), (values[best], grid[best])]
    value, root = min(candidates)
    return value, root * root


@dataclass(frozen=True)
class RegressionCollapse:
    """NRC1-NRC3 of one set of features, targets and head (see the module docstring)."""

    nrc1: float
    nrc2: float
    nrc3: float
    gamma: float  # fitted (or given) gamma of NRC3
    feature_variance: float  # tr Sigma_H
    target_eigenvalues: torch.Tensor  # of Sigma_Y, descending
    num_samples: int

    def to_dict(self) -> dict:
        return {
            "nrc1": self.nrc1,
            "nrc2": self.nrc2,
            "nrc3": self.nrc3,
            "nrc3_gamma": self.gamma,
            "feature_variance": self.feature_variance,
            "target_eigenvalues": self.target_eigenvalues.tolist(),
            "num_samples": self.num_samples,
        }


def _nrc1_and_variance(sigma_h: torch.Tensor, n: int) -> tuple[float, float]:
    """NRC1 (the share of tr Sigma_H outside its top n directions) and tr Sigma_H."""
    values = torch.linalg.eigvalsh(sigma_h).clamp_min(0.0)
    total = float(values.sum())
    if total == 0.0:
        raise ValueError("the features are constant (zero centred variance): NRC is undefined")
    return float(values[: sigma_h.shape[0] - n].sum()) / total, total


def nrc1(stats: RegressionStats) -> float:
    """NRC1 alone (no head needed): the fraction of the features' centred variance outside
    their top n principal directions, n the target dimension (Andriopoulos et al. 2024)."""
    d, n = stats.dims
    if n > d:
        raise ValueError(
            f"NRC needs at most as many targets as feature dimensions; got n = {n} > d = {d}"
        )
    return _nrc1_and_variance(stats.feature_covariance(), n)[0]


def regression_collapse(
    stats: RegressionStats | tuple[object, object],
    weights: object,
    *,
    centred_targets: bool = True,
    gamma: float | None = None,
) -> RegressionCollapse:
    """NRC1-NRC3 from :class:`RegressionStats` (or a ``(features, targets)`` pair) and the
    head's weights W (n, d). ``centred_targets``: Sigma_Y centred (a head with a bias, the
    default) or the uncentred second moment (no bias). ``gamma``: evaluate NRC3 there
    instead of fitting it."""
    if isinstance(stats, tuple):
        features, targets = stats
        stats = RegressionStats().update(features, targets)
    if not isinstance(stats, RegressionStats):
        raise TypeError(
            "stats must be RegressionStats or a (features, targets) pair; got "
            f"{type(stats).__name__}"
        )
    d, n = stats.dims
    if n > d:
        raise ValueError(
            f"NRC needs at most as many targets as feature dimensions; got n = {n} > d = {d}"
        )
    w = _check_weights(weights, d, n)
    sigma_h = stats.feature_covariance()
    nrc1, total = _nrc1_and_variance(sigma_h, n)
    basis = _row_space(w)
    inside = float(torch.trace(basis.T @ sigma_h @ basis))
    nrc2 = max(total - inside, 0.0) / total
    sigma_y = stats.target_covariance(centred_targets)
    nrc3, fitted = nrc3_distance(w @ w.T, sigma_y, gamma)
    return RegressionCollapse(
        nrc1=nrc1,
        nrc2=nrc2,
        nrc3=nrc3,
        gamma=fitted,
        feature_variance=total,
        target_eigenvalues=torch.linalg.eigvalsh(sigma_y).flip(0),
        num_samples=stats.count,
    )


# --------------------------------------------------------------------------- regression UFM


@dataclass(frozen=True)
class RegressionUFM:
    """The regression UFM: targets Y given as (N, n), free features in R^d, penalties > 0.

    ``bias``: "free" (unpenalised b) or "none".
    """

    targets: torch.Tensor
    dim: int
    lam_w: float
    lam_h: float
    bias: str = "free"

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        targets = as_tensor(self.targets, "targets")
        set_(self, "targets", _check_targets(targets, targets.shape[0] if targets.ndim else 0))
        set_(self, "dim", check_int("dim (d)", self.dim, minimum=1))
        hint = "positive penalties make the minimiser exist and be unique up to rotation"
        set_(self, "lam_w", check_float("lam_w", self.lam_w, minimum=0.0, strict=True, hint=hint))
        set_(self, "lam_h", check_float("lam_h", self.lam_h, minimum=0.0, strict=True, hint=hint))
        if self.bias not in ("free", "none"):
            raise ValueError(f"bias must be 'free' or 'none'; got {self.bias!r}")

    @property
    def num_samples(self) -> int:
        return self.targets.shape[0]

    @property
    def num_targets(self) -> int:
        return self.targets.shape[1]

    @property
    def gamma(self) -> float:
        """``N lam_W lam_H``: the eigenvalue threshold of Sigma_Y."""
        return self.num_samples * self.lam_w * self.lam_h

    def target_covariance(self) -> torch.Tensor:
        y = self.targets
        if self.bias == "free":
            y = y - y.mean(dim=0)
        return y.T @ y / self.num_samples

    def objective(self, weights: torch.Tensor, features: torch.Tensor, bias=None) -> torch.Tensor:
        """f(W, H, b) for batched W (B, n, d), H (B, d, N), b (B, n) (or unbatched)."""
        single = weights.ndim == 2
        if single:
            weights, features = weights.unsqueeze(0), features.unsqueeze(0)
            bias = None if bias is None else bias.unsqueeze(0)
        fit = weights @ features - self.targets.T.unsqueeze(0)
        if bias is not None:
            fit = fit + bias.unsqueeze(2)
        value = fit.pow(2).sum(dim=(1, 2)) / (2 * self.num_samples)
        value = value + self.lam_w / 2 * weights.pow(2).sum(dim=(1, 2))
        value = value + self.lam_h / 2 * features.pow(2).sum(dim=(1, 2))
        return value[0] if single else value


@dataclass(frozen=True)
class RegressionUFMTheory:
    """The closed-form minimiser: ``f_star``, ``gram_weights`` W W^T (n, n), the predictions
    ``W H + b 1^T`` (N, n), ``bias`` (n,) or None, ``gamma`` and the number of active
    directions (eigenvalues of Sigma_Y above gamma, at most d)."""

    f_star: float
    gram_weights: torch.Tensor
    predictions: torch.Tensor
    bias: torch.Tensor | None
    gamma: float
    active: int


def regression_ufm_theory(problem: RegressionUFM) -> RegressionUFMTheory:
    """The global minimum of the regression UFM (module docstring; docs/theory.md)."""
    n, big_n = problem.num_targets, problem.num_samples
    y = problem.targets
    mean = y.mean(dim=0) if problem.bias == "free" else torch.zeros(n, dtype=DTYPE)
    centred = y - mean
    # thin SVD of Y~^T (N x n): Y~^T = V diag(s) U^T, s_i = sqrt(N l_i)
    left, singular, right_t = torch.linalg.svd(centred, full_matrices=False)
    c = math.sqrt(problem.lam_w * problem.lam_h)
    shrunk = (singular - big_n * c).clamp_min(0.0)
    if problem.dim < n:
        shrunk[problem.dim :] = 0.0  # rank <= d: keep the d largest (sorted descending)
    active = int((shrunk > 0).sum())
    eigen = singular.pow(2) / big_n
    is_active = shrunk > 0
    f_star = float(torch.where(is_active, c * singular - big_n * c * c / 2, eigen / 2).sum())
    u = right_t.T  # (n, r) left singular vectors of Y~ (n x N)
    gram_weights = math.sqrt(problem.lam_h / problem.lam_w) * (u * shrunk) @ u.T
    predictions = (left * shrunk) @ right_t + mean
    return RegressionUFMTheory(
        f_star=f_star,
        gram_weights=gram_weights,
        predictions=predictions,
        bias=mean.clone() if problem.bias == "free" else None,
        gamma=problem.gamma,
        active=active,
    )


@dataclass(frozen=True)
class RegressionUFMSolution:
    """A numerical solution: W (n, d), H (d, N), b (n,) or None; its objective, the closed
    form's ``f_star`` and the relative gap ``(objective - f_star)/|f_star|``; ``gram_error``:
    ``||W W^T - (W W^T)*||_F / ||(W W^T)*||_F`` (0 when the closed form has W = 0 and so
    does the solution); ``converged`` per the L-BFGS stopping test."""

    weights: torch.Tensor
    features: torch.Tensor
    bias: torch.Tensor | None
    objective: float
    f_star: float
    rel_gap: float
    gram_error: float
    converged: bool
    iterations: int


def solve_regression_ufm(
    problem: RegressionUFM,
    *,
    restarts: int = 2,
    seed: int = 0,
    max_iter: int = 5000,
    tol_grad: float = 1e-12,
    gap_tol: float = 1e-6,
) -> RegressionUFMSolution:
    """Minimise the regression UFM with the batched L-BFGS (``restarts`` Gaussian starts as one
    batch), keep the best, and compare it with :func:`regression_ufm_theory` (a warning when
    the relative objective gap exceeds ``gap_tol``)."""
    restarts = check_int("restarts", restarts, minimum=1)
    seed = check_int("seed", seed)
    max_iter = check_int("max_iter", max_iter, minimum=1)
    n, d, big_n = problem.num_targets, problem.dim, problem.num_samples
    has_bias = problem.bias == "free"
    sizes = (n * d, d * big_n, n if has_bias else 0)

    def unpack(x: torch.Tensor):
        w = x[:, : sizes[0]].reshape(-1, n, d)
        h = x[:, sizes[0] : sizes[0] + sizes[1]].reshape(-1, d, big_n)
        b = x[:, sizes[0] + sizes[1] :] if has_bias else None
        return w, h, b

    def fun(x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return problem.objective(*unpack(x))

    generator = torch.Generator().manual_seed(seed)
    x0 = torch.randn(restarts, sum(sizes), generator=generator, dtype=DTYPE)
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        result = batched_lbfgs(fun, x0, max_iter=max_iter, tol_grad=tol_grad)
    finally:
        torch.set_num_threads(previous)
    best = int(result.value.argmin())
    w, h, b = unpack(result.x[best : best + 1])
    theory = regression_ufm_theory(problem)
    objective = float(result.value[best])
    scale = max(abs(theory.f_star), 1e-300)
    rel_gap = (objective - theory.f_star) / scale
    target_norm = float(torch.linalg.matrix_norm(theory.gram_weights))
    difference = float(torch.linalg.matrix_norm(w[0] @ w[0].T - theory.gram_weights))
    gram_error = difference / target_norm if target_norm > 0 else difference
    if rel_gap > gap_tol:
        warnings.warn(
            f"the regression UFM solve ended at {objective:.10g}, above the closed form "
            f"{theory.f_star:.10g} (relative gap {rel_gap:.1e} > {gap_tol:g}); raise restarts or "
            "max_iter",
            RuntimeWarning,
            stacklevel=2,
        )
    return RegressionUFMSolution(
        weights=w[0],
        features=h[0],
        bias=None if b is None else b[0],
        objective=objective,
        f_star=theory.f_star,
        rel_gap=rel_gap,
        gram_error=gram_error,
        converged=bool(result.converged[best]),
        iterations=int(result.iterations[best]),
    )
