"""The UFM's prediction of the outliers of G, from the class means (docs/theory.md, "Deepnet
spectra from the class means").

Treat a UFM solution as a network ``z = W_L s(... s(W_1 h)) + b`` applied to the data
``(h_i, y_i)`` (the columns of H). At collapse every sample of class c has the class mean's
features ``h^l_c`` at every layer, its logits ``z_c``, its backward matrices
``B_{L,c} = I``, ``B_{l,c} = B_{l+1,c} W_{l+1} diag(s'(W_l h^{l-1}_c))`` and its logit-Hessian
factor ``F_c`` (:mod:`.losses`). Since ``dz/dW_l = B_l (x) h^{l-1 T}``, the C x C kernel of the
chosen layers S between two classes is

    Theta_{ce} = sum_{l in S} <h^{l-1}_c, h^{l-1}_e> B_{l,c} B_{l,e}^T  (+ I for the last bias),

and G restricted to S equals ``G_between`` exactly (the within-class part vanishes), whose
nonzero eigenvalues are those of the C^2 x C^2 matrix

    Gamma_{(c,a),(e,b)} = sqrt(pi_c pi_e) (F_c^T Theta_{ce} F_e)_{ab}.

Closed forms at depth 1 (W only, balanced, ``g = ||hbar_c||^2``, Gram of the means ``M^T M``):
MSE: ``Gamma = (M^T M / K) (x) I_K``: no bias, an orthogonal frame, K^2 outliers equal to
``g/K = s* sqrt(lam_W/(n lam_H)) / K``; free bias, a simplex ETF ``M^T M = g K/(K-1) (I - J)``:
K(K - 1) outliers equal to ``g/(K-1)``, the other K eigenvalues 0. The Hessian of the
objective in W is ``G + lam_W I`` (the logits are linear in W).

Reference: Garrod & Keating, "Unifying low dimensional observations in deep learning through the
deep linear unconstrained feature model" (2024) and "Unifying low dimensional spectra in deep
learning" (the outliers from the class means); Papyan, JMLR 2020.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from neuralcollapse.spectra.losses import loss_spec
from neuralcollapse.ufm.closed_forms import theory
from neuralcollapse.ufm.problem import UFMProblem

__all__ = [
    "OutlierPrediction",
    "class_mean_prediction",
    "layer_names",
    "theory_prediction",
    "ufm_network",
]


def _activation(name: str) -> torch.nn.Module:
    return torch.nn.ReLU() if name == "relu" else torch.nn.Identity()


def layer_names(problem: UFMProblem) -> dict[str, str]:
    """``"W1"``..``"WL"`` (and ``"b"``) -> parameter names in :func:`ufm_network`'s model."""
    names = {f"W{l + 1}": f"{2 * l}.weight" for l in range(problem.depth)}
    if problem.has_bias:
        names["b"] = f"{2 * (problem.depth - 1)}.bias"
    return names


def ufm_network(
    problem: UFMProblem,
    weights: Sequence[torch.Tensor],
    features: torch.Tensor,
    bias: torch.Tensor | None = None,
) -> tuple[torch.nn.Sequential, list[tuple[torch.Tensor, torch.Tensor]]]:
    """The UFM as a float64 ``nn.Sequential`` (Linear, activation, ..., Linear) and its data
    ``[(H^T, labels)]``; parameter names from :func:`layer_names`. Pass a solution's
    ``weights``, ``features``, ``bias`` (:class:`~neuralcollapse.ufm.solve.UFMSolution`)."""
    if not isinstance(problem, UFMProblem):
        raise TypeError(f"problem must be a UFMProblem; got {type(problem).__name__}")
    if len(weights) != problem.depth:
        raise ValueError(f"need {problem.depth} weight matrices (W_1..W_L); got {len(weights)}")
    layers: list[torch.nn.Module] = []
    for index, ((out, inp), w) in enumerate(zip(problem.layer_shapes, weights, strict=True)):
        last = index == problem.depth - 1
        if tuple(w.shape) != (out, inp):
            raise ValueError(f"W_{index + 1} must have shape ({out}, {inp}); got {tuple(w.shape)}")
        linear = torch.nn.Linear(inp, out, bias=last and problem.has_bias, dtype=torch.float64)
        with torch.no_grad():
            linear.weight.copy_(w)
            if last and problem.has_bias:
                if bias is None:
                    raise ValueError(f"bias={problem.bias!r}: pass the solution's bias b (K,)")
                linear.bias.copy_(bias)
        layers.append(linear)
        if not last:
            layers.append(_activation(problem.activation))
    features = torch.as_tensor(features, dtype=torch.float64)
    if tuple(features.shape) != (problem.dim, problem.num_samples):
        raise ValueError(
            f"features must be H of shape (d, N) = ({problem.dim}, {problem.num_samples}); got "
            f"{tuple(features.shape)}"
        )
    return torch.nn.Sequential(*layers), [(features.T.contiguous(), problem.labels())]


@dataclass
class OutlierPrediction:
    """Predicted nonzero spectrum of G: ``values`` (C^2,), largest first; ``vectors`` (p, C^2)
    in the flat parameter order of the chosen layers (zero columns for zero values);
    ``gram`` (C^2 x C^2) Gamma."""

    values: torch.Tensor
    vectors: torch.Tensor | None
    gram: torch.Tensor


def class_mean_prediction(
    weights: Sequence[torch.Tensor],
    class_means: torch.Tensor,
    *,
    bias: torch.Tensor | None = None,
    class_counts: Sequence[int] | torch.Tensor | None = None,
    loss: str = "mse",
    activation: str = "linear",
    layers: Sequence[int] | None = None,
    include_bias: bool = False,
) -> OutlierPrediction:
    """Gamma and its eigenpairs from the class means (module docstring), for G over the layers
    ``layers`` (0-based indices of W_1..W_L; default all) and the last bias if
    ``include_bias``. ``class_means`` is Hbar, (d, K)."""
    means = torch.as_tensor(class_means, dtype=torch.float64)
    ws = [torch.as_tensor(w, dtype=torch.float64) for w in weights]
    if means.dim() != 2 or means.shape[0] != ws[0].shape[1]:
        raise ValueError(
            f"class_means must be Hbar of shape (d, K) with d = W_1's input width {ws[0].shape[1]}"
            f"; got {tuple(means.shape)}"
        )
    if activation not in ("linear", "relu"):
        raise ValueError(f"unknown activation {activation!r}; use 'linear' or 'relu'")
    k = means.shape[1]
    depth = len(ws)
    layers = list(range(depth)) if layers is None else list(layers)
    for index in layers:
        if not 0 <= index < depth:
            raise ValueError(f"layers holds {index}, outside [0, {depth}) (W_1..W_L are 0..L-1)")
    counts = torch.ones(k) if class_counts is None else torch.as_tensor(class_counts)
    pi = counts.to(torch.float64) / counts.sum()
    inputs, slopes = [means], []
    current = means
    for index, w in enumerate(ws):
        pre = w @ current
        if index < depth - 1:
            slope = (pre > 0).to(pre) if activation == "relu" else torch.ones_like(pre)
            current = torch.relu(pre) if activation == "relu" else pre
            slopes.append(slope)
            inputs.append(current)
        else:
            current = pre
    logits = current + (0 if bias is None else torch.as_tensor(bias, dtype=torch.float64)[:, None])
    # backward matrices B_{l,c}: (K classes, C logits, out_l)
    backs: list[torch.Tensor] = [torch.eye(ws[-1].shape[0], dtype=torch.float64).expand(k, -1, -1)]
    for index in range(depth - 2, -1, -1):
        nxt = backs[0] @ ws[index + 1]  # (K, C, out_index)
        backs.insert(0, nxt * slopes[index].T.unsqueeze(1))
    spec = loss_spec(loss)
    factors = spec.factor(logits.T, torch.arange(k))  # (K, C, C')
    theta = torch.zeros(k, k, ws[-1].shape[0], ws[-1].shape[0], dtype=torch.float64)
    for index in layers:
        h = inputs[index]
        theta += torch.einsum("ce,cai,ebi->ceab", h.T @ h, backs[index], backs[index])
    if include_bias:
        theta += torch.eye(ws[-1].shape[0], dtype=torch.float64)
    gamma = torch.einsum("cax,cexy,eyb->caeb", factors.transpose(1, 2), theta, factors)
    gamma = gamma * (pi.sqrt()[:, None, None, None] * pi.sqrt()[None, None, :, None])
    size = k * ws[-1].shape[0]
    gamma = gamma.reshape(size, size)
    gamma = 0.5 * (gamma + gamma.T)
    values, vecs = torch.linalg.eigh(gamma)
    values, vecs = values.flip(0), vecs.flip(1)
    # D^T w / sqrt(gamma): rows of D are sqrt(pi_c) J_c^T F_c[:, a]
    blocks = []
    for index in layers:
        h = inputs[index]  # (in, K)
        grads = torch.einsum("cai,cak->cki", backs[index], factors)  # B^T F: (K, C', out)
        blocks.append(torch.einsum("cki,jc->ckij", grads, h).reshape(size, -1))
    if include_bias:
        blocks.append(factors.transpose(1, 2).reshape(size, -1))
    rows = torch.cat(blocks, dim=1) * pi.sqrt().repeat_interleave(ws[-1].shape[0])[:, None]
    positive = values > values.max().clamp_min(1e-300) * 1e-12
    vectors = rows.T @ vecs / values.clamp_min(1e-300).sqrt() * positive
    return OutlierPrediction(values, vectors, gamma)


def theory_prediction(problem: UFMProblem, *, include_bias: bool = False) -> OutlierPrediction:
    """The outliers of G over W (and b) of a depth-1 UFM from its closed form alone
    (:func:`~neuralcollapse.ufm.closed_forms.theory`): the means are any Hbar with
    ``Hbar^T Hbar = gram_means``, ``W = sqrt(n lam_H / lam_W) Hbar^T``, b the closed form's
    (0 when it is free under CE: the spectrum does not depend on it). Vectors are in the
    frame of that Hbar (the spectrum is rotation invariant)."""
    if problem.depth != 1:
        raise ValueError(
            f"theory_prediction covers depth 1 (got depth={problem.depth}); for deeper UFMs use "
            "class_mean_prediction with a solution's weights and class means"
        )
    result = theory(problem)
    if not result.available or result.is_zero:
        raise ValueError(
            f"no nonzero closed-form minimiser for this problem ({result.reason or 'W = H = 0'}); "
            "G has no outliers there"
        )
    gram = result.gram_means
    values, vectors = torch.linalg.eigh(gram)
    means = (vectors * values.clamp_min(0).sqrt()).T  # (K, K): Hbar with Hbar^T Hbar = gram
    scale = math.sqrt(problem.per_class * problem.lam_h / problem.layer_lams[0])
    weight = scale * means.T
    bias = result.bias if result.bias is not None else None
    if problem.has_bias and bias is None:
        bias = torch.zeros(problem.num_classes, dtype=torch.float64)
    return class_mean_prediction(
        [weight], means, bias=bias, loss=problem.loss, include_bias=include_bias
    )
