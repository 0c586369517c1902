"""The average gradient outer product (AGOP) as the mechanism of deep neural collapse.

Beaglehole, Súkeník, Mondelli & Belkin, "Average gradient outer product as a mechanism for
deep neural collapse", NeurIPS 2024; the neural feature ansatz (NFA) of Radhakrishnan,
Beaglehole, Pandit & Belkin, Science 2024.

For a network f: R^D -> R^c and a linear layer l whose input is a_l(x) in R^{d_l}, the AGOP of
the network with respect to that input is

    AGOP_l = (1/N) sum_i J_l(x_i)^T J_l(x_i),   J_l(x) = d f(x) / d a_l(x)   (c x d_l),

and the NFA says ``W_l^T W_l`` is proportional to ``AGOP_l^alpha`` (alpha = 1 in the ansatz as
first stated; alpha = 1/2 is the form often found to fit better). :func:`feature_ansatz`
reports the matrix correlation (cosine similarity of the matrices,
``<A, B>_F / (||A||_F ||B||_F)``; 1 iff proportional) for alpha = 1 and 1/2 at every
``nn.Linear`` of any module.

J_l is computed with ``torch.func`` (``vmap`` of ``jacrev``) with respect to a zero
perturbation added to the layer's input by a forward pre-hook, so any architecture works as
long as each linear layer sees one vector per sample (inputs (B, d_l)) and is called once per
forward. AGOPs are summed in float64 over batches (memory d_l^2 per layer; one batch's
Jacobians B x c x d_l at a time). The model is evaluated in eval mode (batch norm with its
running statistics: a per-sample Jacobian needs per-sample outputs).

**Deep RFM** (:func:`deep_rfm`), the model-free counterpart: at each layer, kernel ridge
regression with a Gaussian kernel ``k(x, z) = exp(-||x - z||^2 / (2 L^2))`` on the current
features X_l (one-hot targets), the AGOP M_l of the fitted predictor
``f(z) = sum_i alpha_i k(x_i, z)`` (closed-form gradient
``grad f_c(z) = sum_i alpha_ic k(x_i, z)(x_i - z)/L^2``), and the next features
``X_{l+1} = sigma(X_l M_l^{1/2} R_l^T)`` with R_l a fixed Gaussian matrix (or the identity)
and sigma the ReLU (or the identity). The within-class variability each layer leaves is
measured by the project's NC1, ``Tr(Sigma_W Sigma_B^+)/K``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.metrics.capture import eval_mode
from neuralcollapse.metrics.measuring import measure
from neuralcollapse.metrics.validation import check_features, check_labels

__all__ = [
    "DeepRFMLayer",
    "LayerAnsatz",
    "layer_agops",
    "deep_rfm",
    "feature_ansatz",
    "layer_ansatz",
    "linear_layers",
    "matrix_correlation",
    "symmetric_power",
]

DTYPE = torch.float64


def linear_layers(model: nn.Module) -> list[tuple[str, nn.Linear]]:
    """The ``nn.Linear`` submodules of ``model`` in registration (usually depth) order."""
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    return [
        (name, module) for name, module in model.named_modules() if isinstance(module, nn.Linear)
    ]


def _select(model: nn.Module, layers: Sequence[str] | None) -> list[tuple[str, nn.Linear]]:
    found = linear_layers(model)
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no nn.Linear layer: the AGOP is taken at the input of "
            "each linear layer"
        )
    if layers is None:
        return found
    names = dict(found)
    unknown = [name for name in layers if name not in names]
    if unknown:
        raise ValueError(
            f"layers {unknown} are not nn.Linear submodules; choose from {list(names)}"
        )
    return [(name, names[name]) for name in layers]


def _as_batches(data: object) -> Iterable[object]:
    if isinstance(data, torch.Tensor):
        return [data]
    if callable(data):
        return data()
    return data


def layer_agops(
    model: nn.Module,
    data: torch.Tensor | Iterable[object] | Callable[[], Iterable[object]],
    *,
    layers: Sequence[str] | None = None,
) -> dict[str, torch.Tensor]:
    """AGOP (d_l x d_l, float64) of ``model``'s outputs at the input of each linear layer.

    ``data``: a tensor of inputs (N, ...), an iterable of batches, or a function returning one;
    a batch may be ``(inputs, labels)`` (labels are ignored). ``layers``: names of some
    ``nn.Linear`` submodules (default all). Formula and method: module docstring.
    """
    from torch.func import functional_call, jacrev, vmap

    chosen = _select(model, layers)
    params = {name: p.detach() for name, p in model.named_parameters()}
    buffers = dict(model.named_buffers())
    state: dict[str, tuple[torch.Tensor, ...] | None] = {"deltas": None}

    def hook_for(index: int):
        def hook(module, args):
            deltas = state["deltas"]
            if deltas is None:
                return None
            return (args[0] + deltas[index], *args[1:])

        return hook

    def single(x: torch.Tensor, deltas: tuple[torch.Tensor, ...]) -> torch.Tensor:
        state["deltas"] = deltas
        try:
            out = functional_call(model, (params, buffers), (x.unsqueeze(0),))
        finally:
            state["deltas"] = None
        return out.reshape(-1)

    sums = [torch.zeros(m.in_features, m.in_features, dtype=DTYPE) for _, m in chosen]
    count = 0
    handles = [m.register_forward_pre_hook(hook_for(i)) for i, (_, m) in enumerate(chosen)]
    # eval mode for per-sample outputs; on exit every submodule gets its own mode back (a
    # frozen BatchNorm inside a training model must stay frozen)
    try:
        with eval_mode(model):
            jacobian = vmap(jacrev(single, argnums=1), in_dims=(0, None))
            for batch in _as_batches(data):
                x = batch[0] if isinstance(batch, (tuple, list)) else batch
                if not isinstance(x, torch.Tensor) or x.ndim < 1 or x.shape[0] == 0:
                    raise ValueError("each batch must be a non-empty tensor of inputs (B, ...)")
                reference = next(iter(params.values()), x)
                zeros = tuple(
                    torch.zeros(m.in_features, dtype=reference.dtype, device=x.device)
                    for _, m in chosen
                )
                jacobians = jacobian(x.to(reference.dtype), zeros)
                for index, jac in enumerate(jacobians):
                    flat = jac.detach().to(DTYPE).reshape(-1, jac.shape[-1]).cpu()
                    sums[index] += flat.T @ flat
                count += x.shape[0]
    finally:
        for handle in handles:
            handle.remove()
    if count == 0:
        raise ValueError("data yielded no samples")
    return {name: total / count for (name, _), total in zip(chosen, sums, strict=True)}


def matrix_correlation(first: torch.Tensor, second: torch.Tensor) -> float:
    """``<A, B>_F / (||A||_F ||B||_F)``: 1 iff B is a positive multiple of A, scale invariant."""
    a = torch.as_tensor(first).detach().to(DTYPE).cpu()
    b = torch.as_tensor(second).detach().to(DTYPE).cpu()
    if a.shape != b.shape:
        raise ValueError(f"matrices of different shapes: {tuple(a.shape)} and {tuple(b.shape)}")
    norms = float(torch.linalg.vector_norm(a)) * float(torch.linalg.vector_norm(b))
    if norms == 0.0:
        raise ValueError("a zero matrix has no direction: the correlation is undefined")
    return float((a * b).sum()) / norms


def symmetric_power(matrix: torch.Tensor, power: float) -> torch.Tensor:
    """``M^power`` of a symmetric PSD matrix (negative rounding eigenvalues clipped to 0)."""
    values, vectors = torch.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * values.clamp_min(0.0).pow(power)) @ vectors.T


@dataclass(frozen=True)
class LayerAnsatz:
    """The NFA at one linear layer: ``correlation`` of W^T W with the AGOP (alpha = 1) and
    ``correlation_sqrt`` with AGOP^{1/2}; ``agop`` and ``gram`` (= W^T W) as matrices."""

    name: str
    correlation: float
    correlation_sqrt: float
    agop: torch.Tensor
    gram: torch.Tensor


def feature_ansatz(
    model: nn.Module,
    data: torch.Tensor | Iterable[object] | Callable[[], Iterable[object]],
    *,
    layers: Sequence[str] | None = None,
) -> list[LayerAnsatz]:
    """The neural feature ansatz at every (or the named) linear layer of ``model``."""
    agops = layer_agops(model, data, layers=layers)
    modules = dict(linear_layers(model))
    return [layer_ansatz(name, modules[name].weight, matrix) for name, matrix in agops.items()]


def layer_ansatz(name: str, weight: torch.Tensor, agop: torch.Tensor) -> LayerAnsatz:
    """The ansatz at one linear layer from its ``weight`` W (out x in) and its ``agop``:
    ``corr(W^T W, AGOP)`` and ``corr(W^T W, AGOP^{1/2})``. Raises ValueError when either
    matrix is zero (the correlation has no direction)."""
    weight = weight.detach().to(DTYPE).cpu()
    gram = weight.T @ weight
    return LayerAnsatz(
        name=name,
        correlation=matrix_correlation(gram, agop),
        correlation_sqrt=matrix_correlation(gram, symmetric_power(agop, 0.5)),
        agop=agop,
        gram=gram,
    )


# ---------------------------------------------------------------------------------- Deep RFM


@dataclass(frozen=True)
class DeepRFMLayer:
    """One Deep RFM layer: ``nc1`` of its *input* features, the kernel predictor's training
    accuracy on them, the ``bandwidth`` used, and the AGOP ``agop`` of that predictor."""

    nc1: float
    train_accuracy: float
    bandwidth: float
    agop: torch.Tensor


def _median_distance(x: torch.Tensor) -> float:
    distances = torch.cdist(x, x)
    upper = distances[torch.triu(torch.ones_like(distances, dtype=torch.bool), diagonal=1)]
    value = float(upper.median())
    return value if value > 0 else 1.0


def kernel_agop(
    features: torch.Tensor, coefficients: torch.Tensor, bandwidth: float
) -> torch.Tensor:
    """AGOP over the training points of ``f(z) = sum_i alpha_i exp(-||x_i - z||^2/(2 L^2))``.

    ``grad f_c(x_j) = (1/L^2) sum_i alpha_ic K_ij (x_i - x_j)``; returns
    ``(1/N) sum_j sum_c grad f_c(x_j) grad f_c(x_j)^T`` (d x d).
    """
    x = features
    kernel = torch.exp(-torch.cdist(x, x).pow(2) / (2 * bandwidth**2))
    weighted = kernel.T @ coefficients  # (N, c): sum_i alpha_ic K_ij
    # (N, c, d): sum_i alpha_ic K_ij x_i  -  (sum_i alpha_ic K_ij) x_j
    gradients = torch.einsum("ij,ic,id->jcd", kernel, coefficients, x)
    gradients -= weighted.unsqueeze(2) * x.unsqueeze(1)
    gradients /= bandwidth**2
    flat = gradients.reshape(-1, x.shape[1])
    return flat.T @ flat / x.shape[0]


def deep_rfm(
    features: object,
    labels: object,
    *,
    depth: int = 5,
    ridge: float = 1e-3,
    bandwidth: float | None = None,
    width: int | None = None,
    activation: str = "relu",
    seed: int = 0,
) -> list[DeepRFMLayer]:
    """Deep RFM on ``features`` (N, d) with ``labels`` (N,): ``depth`` layers (module docstring).

    ``ridge``: kernel ridge penalty (``(K + ridge N I) alpha = Y``); ``bandwidth``: L, default
    the median pairwise distance of each layer's features; ``width``: the output width of the
    Gaussian matrix R_l (entries N(0, 1/d_l)), None for R_l = I; ``activation``: "relu" or
    "linear". Returns one :class:`DeepRFMLayer` per layer, plus a last entry with the NC1 of
    the final features (its predictor fields are those of one more fit).
    """
    x = check_features(features).to(DTYPE).cpu()
    y = check_labels(labels, x.shape[0], None, x.device)
    depth = check_int("depth", depth, minimum=1, meaning="Deep RFM layers")
    ridge = check_float("ridge", ridge, minimum=0.0, strict=True)
    if bandwidth is not None:
        bandwidth = check_float("bandwidth (L)", bandwidth, minimum=0.0, strict=True)
    if width is not None:
        width = check_int("width", width, minimum=1, alternative="or None (R = identity)")
    if activation not in ("relu", "linear"):
        raise ValueError(f"activation must be 'relu' or 'linear'; got {activation!r}")
    num_classes = int(y.max()) + 1
    targets = torch.nn.functional.one_hot(y, num_classes).to(DTYPE)
    generator = torch.Generator().manual_seed(check_int("seed", seed))
    layers = []
    for _ in range(depth + 1):
        nc1 = float(measure(x, y, num_classes=num_classes).nc1)
        scale = bandwidth if bandwidth is not None else _median_distance(x)
        kernel = torch.exp(-torch.cdist(x, x).pow(2) / (2 * scale**2))
        system = kernel + ridge * x.shape[0] * torch.eye(x.shape[0], dtype=DTYPE)
        coefficients = torch.linalg.solve(system, targets)
        accuracy = float(((kernel @ coefficients).argmax(dim=1) == y).double().mean())
        matrix = kernel_agop(x, coefficients, scale)
        layers.append(DeepRFMLayer(nc1=nc1, train_accuracy=accuracy, bandwidth=scale, agop=matrix))
        if len(layers) == depth + 1:
            break
        x = x @ symmetric_power(matrix, 0.5)
        if width is not None:
            projection = torch.randn(width, x.shape[1], generator=generator, dtype=DTYPE)
            x = x @ projection.T / math.sqrt(x.shape[1])
        if activation == "relu":
            x = torch.relu(x)
    return layers
