"""The unconstrained features model (UFM): its specification and its objective.

In the UFM the last-layer features ``H`` (d x N) are free variables, optimised together with
the classifier (Mixon, Parshall & Pi 2020; Fang et al. 2021). Tirer & Bruna (ICML 2022) extend
it with ``L`` weight layers and an optional ReLU between them. With one-hot targets
``Y = I_K (kron) 1_n^T`` (class-major sample order) the objective is (docs/ufm.md)

    MSE: f = 1/(2N) ||W_L s(W_{L-1} ... s(W_1 H)) + b 1^T - Y||_F^2
             + sum_l lam_l/2 ||W_l||_F^2 + lam_H/2 ||H||_F^2 + lam_b/2 ||b||^2
    CE:  f = 1/N sum_i CE(W_L s(...) h_i + b, y_i) + (the same penalties)

where ``s`` is the identity ("linear") or the ReLU. The bias is absent ("none"), free and
unpenalised ("free") or penalised with ``lam_b > 0`` ("regularized"). Tirer & Bruna write the
penalties normalised, ``lam'_W/(2K) ||W||^2`` and ``lam'_H/(2Kn) ||H||^2``; the mapping is
``lam_W = lam'_W / K`` and ``lam_H = lam'_H / (K n)`` (see :func:`from_normalized_penalties`).

The objective is written once, for a *batch* of problems that share every size and differ only
in their penalties: weights ``(B, out, in)``, ``H (B, d, N)``, ``b (B, K)``. A single problem is
a batch of one. This is what lets the L-BFGS solver treat a whole grid of lambdas as one tensor
program.

References
----------
Tirer & Bruna, "Extended unconstrained features model for exploring deep neural collapse",
ICML 2022. Papyan, Han & Donoho, PNAS 2020.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_float, check_int

LOSSES: tuple[str, ...] = ("mse", "ce")
ACTIVATIONS: tuple[str, ...] = ("linear", "relu")
BIAS_MODES: tuple[str, ...] = ("none", "free", "regularized")
DTYPE = torch.float64


def _positive(name: str, value: float, hint: str) -> float:
    return check_float(name, value, minimum=0.0, strict=True, hint=hint)


def _normalised_counts(per_class: object, num_classes: int) -> int | tuple[int, ...]:
    """One n for every class, or K per-class counts (equal counts collapse to one n)."""
    if not isinstance(per_class, Sequence) or isinstance(per_class, str):
        return check_int("per_class (n)", per_class, minimum=1)
    if len(per_class) != num_classes:
        raise ValueError(
            f"per_class must be one integer or {num_classes} per-class counts (one per class); "
            f"got {len(per_class)} counts"
        )
    counts = tuple(
        check_int(f"per_class[{i}]", c, minimum=1, meaning="samples of class i")
        for i, c in enumerate(per_class)
    )
    return counts[0] if len(set(counts)) == 1 else counts


def _normalised_bias(bias: object, lam_b: object) -> tuple[str, float]:
    """``(bias mode, lam_b)``; a number as ``bias`` means a regularised bias with that decay."""
    if isinstance(bias, (int, float)) and not isinstance(bias, bool):
        bias, lam_b = "regularized", float(bias)
    if bias == "regularised":
        bias = "regularized"
    if bias not in BIAS_MODES:
        raise ValueError(
            f"unknown bias {bias!r}; use 'none', 'free', or a number lam_b > 0 "
            f"(regularised bias)"
        )
    if bias == "regularized":
        hint = "A regularised bias needs lam_b > 0; use bias='free' for an unpenalised bias."
        return bias, _positive("lam_b", lam_b, hint)
    if lam_b not in (0, 0.0):
        raise ValueError(
            f"lam_b={lam_b!r} is only used with a regularised bias; pass "
            f"bias={lam_b!r} (or bias='regularized') to penalise the bias"
        )
    return bias, lam_b


def _normalised_weight_decay(lam_w: object, depth: int) -> float | tuple[float, ...]:
    """One lam_W for every layer, or one per weight layer (equal values collapse to one)."""
    if isinstance(lam_w, Sequence) and not isinstance(lam_w, str):
        values = tuple(lam_w)
        if len(values) != depth:
            raise ValueError(
                f"lam_w needs one value per weight layer: depth={depth} but got "
                f"{len(values)} values {values}"
            )
    else:
        values = (lam_w,) * depth
    hint = (
        "Weight decay must be positive for the minimiser to exist and be bounded "
        "(zero decay on both W and H is the implicit-bias experiment: CE with gradient "
        "descent, `neuralcollapse ufm --loss ce --solver gd --lambda-w 0 --lambda-h 0`)."
    )
    checked = tuple(_positive(f"lam_w (layer {i + 1})", v, hint) for i, v in enumerate(values))
    return checked[0] if len(set(checked)) == 1 else checked


def _normalised_hidden(hidden_dims: object, dim: int, depth: int) -> tuple[int, ...]:
    """The widths of W_1..W_(L-1)'s outputs (default: d each)."""
    if hidden_dims is None:
        return (dim,) * (depth - 1)
    hidden = tuple(hidden_dims)
    if len(hidden) != depth - 1:
        raise ValueError(
            f"hidden_dims needs depth-1 = {depth - 1} widths (outputs of W_1..W_(L-1)); "
            f"got {len(hidden)}"
        )
    return tuple(
        check_int(f"hidden_dims[{i}]", h, minimum=1, meaning="a hidden layer's width")
        for i, h in enumerate(hidden)
    )


@dataclass(frozen=True)
class UFMProblem:
    """Specification of one (extended) unconstrained features model.

    Parameters
    ----------
    num_classes : K >= 2.
    per_class : n >= 1 samples in every class, or a sequence of K per-class counts
        (imbalanced; no closed form then).
    dim : d, the dimension of the free features H.
    loss : "mse" or "ce".
    bias : "none", "free" (unpenalised) or "regularized" (penalty ``lam_b/2 ||b||^2``). A
        number is shorthand for "regularized" with that ``lam_b``.
    lam_w : weight decay of the weight layers: one number for all layers, or one per layer
        (W_1 first). Every value must be > 0.
    lam_h : feature decay lam_H > 0.
    lam_b : bias decay (only with bias="regularized", where it must be > 0).
    depth : L >= 1 weight layers.
    activation : "linear" or "relu", applied between weight layers (not after the last).
    hidden_dims : output widths of W_1 .. W_{L-1} (default: d each).

    Examples
    --------
    >>> problem = UFMProblem(num_classes=4, per_class=5, dim=20, lam_w=5e-3, lam_h=1e-2)
    >>> problem.num_samples
    20
    """

    num_classes: int
    per_class: int | tuple[int, ...]
    dim: int
    loss: str = "mse"
    bias: str | float = "none"
    lam_w: float | tuple[float, ...] = 5e-3
    lam_h: float = 1e-2
    lam_b: float = 0.0
    depth: int = 1
    activation: str = "linear"
    hidden_dims: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__  # frozen dataclass: normalise fields once, here
        k = check_int(
            "num_classes",
            self.num_classes,
            minimum=2,
            meaning="collapse needs at least two classes",
        )
        set_(self, "num_classes", k)
        set_(self, "per_class", _normalised_counts(self.per_class, k))
        set_(self, "dim", check_int("dim (d)", self.dim, minimum=1))
        if self.loss not in LOSSES:
            raise ValueError(f"unknown loss {self.loss!r}; choose one of {LOSSES}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}; choose one of {ACTIVATIONS}")
        depth = check_int("depth (number of weight layers L)", self.depth, minimum=1)
        set_(self, "depth", depth)
        bias, lam_b = _normalised_bias(self.bias, self.lam_b)
        set_(self, "bias", bias)
        set_(self, "lam_b", lam_b)
        set_(self, "lam_w", _normalised_weight_decay(self.lam_w, depth))
        set_(self, "lam_h", _positive("lam_h", self.lam_h, "Feature decay must be positive."))
        set_(self, "hidden_dims", _normalised_hidden(self.hidden_dims, self.dim, depth))

    # ---- derived sizes -------------------------------------------------------------------
    @property
    def class_counts(self) -> tuple[int, ...]:
        """Samples in each class, class 0 first."""
        if isinstance(self.per_class, tuple):
            return self.per_class
        return (self.per_class,) * self.num_classes

    @property
    def balanced(self) -> bool:
        return not isinstance(self.per_class, tuple)

    @property
    def num_samples(self) -> int:
        """N = sum of the per-class counts (K n when balanced)."""
        return sum(self.class_counts)

    @property
    def layer_lams(self) -> tuple[float, ...]:
        """lam_1 .. lam_L, one per weight layer."""
        if isinstance(self.lam_w, tuple):
            return self.lam_w
        return (self.lam_w,) * self.depth

    @property
    def layer_shapes(self) -> tuple[tuple[int, int], ...]:
        """(out, in) of W_1 .. W_L: d -> hidden_1 -> ... -> K."""
        widths = (self.dim, *self.hidden_dims, self.num_classes)
        return tuple((widths[i + 1], widths[i]) for i in range(self.depth))

    @property
    def has_bias(self) -> bool:
        return self.bias != "none"

    def replace(self, **changes) -> UFMProblem:
        """A copy with some fields changed (and validated again)."""
        return dataclasses.replace(self, **changes)

    def labels(self) -> torch.Tensor:
        """Class labels of the N samples in class-major order: 0..0, 1..1, ..."""
        counts = torch.tensor(self.class_counts)
        return torch.repeat_interleave(torch.arange(self.num_classes), counts)

    def objective(
        self,
        weights: Sequence[torch.Tensor],
        features: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The UFM objective f(W_1..W_L, H, b) as a differentiable 0-dim float64 tensor.

        Parameters
        ----------
        weights : W_1 .. W_L with shapes :attr:`layer_shapes`.
        features : H, (d, N), columns in class-major order.
        bias : b, (K,), or None (required unless bias="none").
        """
        batch = ProblemBatch([self])
        params = UFMParameters(
            weights=[torch.as_tensor(w, dtype=DTYPE).unsqueeze(0) for w in weights],
            features=torch.as_tensor(features, dtype=DTYPE).unsqueeze(0),
            bias=None if bias is None else torch.as_tensor(bias, dtype=DTYPE).unsqueeze(0),
        )
        batch.check_parameters(params)
        return batch.objective(params)[0]


def from_normalized_penalties(
    num_classes: int,
    per_class: int,
    dim: int,
    lam_w_normalized: float,
    lam_h_normalized: float,
    **fields,
) -> UFMProblem:
    """Build a problem from Tirer & Bruna's normalised penalties.

    They write ``lam'_W/(2K) ||W||^2 + lam'_H/(2Kn) ||H||^2``; here the penalties are
    ``lam_W/2 ||W||^2 + lam_H/2 ||H||^2``, so ``lam_W = lam'_W/K`` and ``lam_H = lam'_H/(K n)``.
    Their collapse threshold ``sqrt(lam'_W lam'_H) < 1`` reads ``K sqrt(n lam_W lam_H) < 1``.
    """
    return UFMProblem(
        num_classes=num_classes,
        per_class=per_class,
        dim=dim,
        lam_w=lam_w_normalized / num_classes,
        lam_h=lam_h_normalized / (num_classes * per_class),
        **fields,
    )


@dataclass
class UFMParameters:
    """Variables of a batch of B problems: W_l (B, out, in), H (B, d, N), b (B, K) or None."""

    weights: list[torch.Tensor]
    features: torch.Tensor
    bias: torch.Tensor | None

    def detach(self) -> UFMParameters:
        return UFMParameters(
            [w.detach() for w in self.weights],
            self.features.detach(),
            None if self.bias is None else self.bias.detach(),
        )

    def select(self, index: int) -> UFMParameters:
        """The parameters of problem ``index``, still with a leading batch dimension of 1."""
        sl = slice(index, index + 1)
        return UFMParameters(
            [w[sl] for w in self.weights],
            self.features[sl],
            None if self.bias is None else self.bias[sl],
        )


class ProblemBatch:
    """Problems that share every size (K, counts, d, widths, loss, bias mode, activation) and
    differ in their penalties, evaluated together as one tensor program.

    Parameters
    ----------
    problems : the problems (at least one).
    """

    def __init__(self, problems: Sequence[UFMProblem]):
        problems = list(problems)
        if not problems:
            raise ValueError("need at least one problem")
        first = problems[0]
        structure = _structure(first)
        for index, problem in enumerate(problems[1:], start=1):
            if _structure(problem) != structure:
                raise ValueError(
                    f"problems solved together must share sizes, loss, bias mode and activation "
                    f"(they may differ only in lam_w, lam_h, lam_b); problem {index} differs from "
                    f"problem 0: {_structure(problem)} vs {structure}"
                )
        self.problems = problems
        self.template = first
        self.size = len(problems)
        self.lam_w = torch.tensor([p.layer_lams for p in problems], dtype=DTYPE)  # (B, L)
        self.lam_h = torch.tensor([p.lam_h for p in problems], dtype=DTYPE)
        self.lam_b = torch.tensor([p.lam_b for p in problems], dtype=DTYPE)
        self.labels = first.labels()
        self.targets = torch.nn.functional.one_hot(self.labels, first.num_classes).T.to(DTYPE)
        sizes = [out * inp for out, inp in first.layer_shapes]
        sizes.append(first.dim * first.num_samples)
        if first.has_bias:
            sizes.append(first.num_classes)
        self._sizes = sizes
        self.num_parameters = sum(sizes)

    # ---- parameters <-> flat vectors (what the L-BFGS solver works on) ---------------------
    def unflatten(self, flat: torch.Tensor) -> UFMParameters:
        """(A, P) -> parameters (views, so gradients flow back to ``flat``)."""
        pieces = torch.split(flat, self._sizes, dim=1)
        t = self.template
        weights = [
            piece.reshape(-1, out, inp)
            for piece, (out, inp) in zip(pieces, t.layer_shapes, strict=False)
        ]
        features = pieces[t.depth].reshape(-1, t.dim, t.num_samples)
        bias = pieces[t.depth + 1] if t.has_bias else None
        return UFMParameters(weights, features, bias)

    def flatten(self, params: UFMParameters) -> torch.Tensor:
        parts = [w.reshape(self.size, -1) for w in params.weights]
        parts.append(params.features.reshape(self.size, -1))
        if params.bias is not None:
            parts.append(params.bias.reshape(self.size, -1))
        return torch.cat(parts, dim=1)

    def check_parameters(self, params: UFMParameters) -> None:
        t = self.template
        for index, (w, (out, inp)) in enumerate(zip(params.weights, t.layer_shapes, strict=False)):
            if tuple(w.shape[1:]) != (out, inp):
                raise ValueError(
                    f"W_{index + 1} must have shape ({out}, {inp}); got {tuple(w.shape[1:])}"
                )
        if len(params.weights) != t.depth:
            raise ValueError(f"need {t.depth} weight matrices; got {len(params.weights)}")
        if tuple(params.features.shape[1:]) != (t.dim, t.num_samples):
            raise ValueError(
                f"H must have shape (d, N) = ({t.dim}, {t.num_samples}); "
                f"got {tuple(params.features.shape[1:])}"
            )
        if t.has_bias and params.bias is None:
            raise ValueError(f"bias={t.bias!r}: pass b of shape ({t.num_classes},)")
        if not t.has_bias and params.bias is not None:
            raise ValueError("this problem has no bias (bias='none'); pass bias=None")
        if params.bias is not None and tuple(params.bias.shape[1:]) != (t.num_classes,):
            raise ValueError(
                f"b must have shape ({t.num_classes},); got {tuple(params.bias.shape[1:])}"
            )

    # ---- the model -----------------------------------------------------------------------
    def layer_outputs(self, params: UFMParameters) -> list[torch.Tensor]:
        """Pre-activations W_1 H, W_2 s(W_1 H), ..., logits without bias; each (B, out, N)."""
        outputs = []
        current = params.features
        for index, weight in enumerate(params.weights):
            pre = torch.bmm(weight, current)
            outputs.append(pre)
            is_last = index == len(params.weights) - 1
            current = pre if is_last or self.template.activation == "linear" else torch.relu(pre)
        return outputs

    def last_layer_inputs(self, params: UFMParameters) -> torch.Tensor:
        """Features entering W_L (H itself for depth 1, post-activation otherwise); (B, ., N)."""
        if self.template.depth == 1:
            return params.features
        pre = self.layer_outputs(params)[-2]
        return pre if self.template.activation == "linear" else torch.relu(pre)

    def objective(self, params: UFMParameters, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Objective of each problem, shape (B,); see the module docstring for the formula.

        ``rows`` (A,) selects which problems' penalties apply when ``params`` holds only A
        of them (the solver drops finished problems); default all B.
        """
        t = self.template
        lam_w, lam_h, lam_b = self.lam_w, self.lam_h, self.lam_b
        if rows is not None:
            lam_w, lam_h, lam_b = lam_w[rows], lam_h[rows], lam_b[rows]
        count = params.features.shape[0]
        logits = self.layer_outputs(params)[-1]
        if params.bias is not None:
            logits = logits + params.bias.unsqueeze(-1)
        if t.loss == "mse":
            fit = (logits - self.targets).pow(2).sum(dim=(1, 2)) / (2 * t.num_samples)
        else:
            log_probs = torch.log_softmax(logits, dim=1)
            picked = log_probs.gather(1, self.labels.view(1, 1, -1).expand(count, 1, -1))
            fit = -picked.sum(dim=(1, 2)) / t.num_samples
        penalty = 0.5 * lam_h * params.features.pow(2).sum(dim=(1, 2))
        for index, weight in enumerate(params.weights):
            penalty = penalty + 0.5 * lam_w[:, index] * weight.pow(2).sum(dim=(1, 2))
        if t.bias == "regularized":
            penalty = penalty + 0.5 * lam_b * params.bias.pow(2).sum(dim=1)
        return fit + penalty

    def initial_parameters(
        self, generator: torch.Generator, scale: float | torch.Tensor = 1.0
    ) -> UFMParameters:
        """Gaussian start: W_l entries N(0, scale^2/in), H entries N(0, scale^2/d), b = 0.

        ``scale`` may be a (B,) tensor, one scale per problem (restarts at several scales).
        """
        t = self.template
        scale = torch.as_tensor(scale, dtype=DTYPE).reshape(-1, 1, 1).expand(self.size, 1, 1)
        weights = [
            torch.randn(self.size, out, inp, generator=generator, dtype=DTYPE)
            * scale
            / math.sqrt(inp)
            for out, inp in t.layer_shapes
        ]
        features = (
            torch.randn(self.size, t.dim, t.num_samples, generator=generator, dtype=DTYPE)
            * scale
            / math.sqrt(t.dim)
        )
        bias = torch.zeros(self.size, t.num_classes, dtype=DTYPE) if t.has_bias else None
        return UFMParameters(weights, features, bias)


def _structure(problem: UFMProblem) -> tuple:
    return (
        problem.num_classes,
        problem.class_counts,
        problem.dim,
        problem.loss,
        problem.bias,
        problem.depth,
        problem.activation,
        problem.hidden_dims,
    )
