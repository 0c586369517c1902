"""Empirical (finite-width) NTKs of torch networks and their convergence to the analytic ones.

The empirical NTK of a scalar network f with parameters p is
``Theta(x, x') = sum_p (df(x)/dp) (df(x')/dp) = J(x) J(x')^T``.

Two ways to compute it:

- :func:`empirical_ntk_jacobian`: per-sample Jacobians with ``torch.func`` (``vmap`` of
  ``jacrev``) contracted over every parameter. General (any module), but it holds an
  ``n x P`` Jacobian, so only for small networks; it is the reference.
- :func:`empirical_ntk`: the layer-wise form for networks built from
  :class:`~neuralcollapse.ntk.models.NTKLinear`. A weight used as ``h = u W^T / sqrt(n_in)``
  has gradient ``delta u^T / sqrt(n_in)`` for one sample (``delta = df/dh``), so its
  share of the NTK is ``(delta . delta') (u . u') / n_in``: one forward pass records every
  ``u`` and ``h``, one backward pass of ``sum_i f(x_i)`` gives every per-sample ``delta``
  (samples do not interact), and the kernel is a sum of Hadamard products of small Gram
  matrices. Cost O(n P) time and O(n m L) memory instead of O(n P) memory.

References
----------
A. Jacot, F. Gabriel and C. Hongler, "Neural tangent kernel", NeurIPS 2018.
R. Novak, J. Sohl-Dickstein and S. S. Schoenholz, "Fast finite width neural tangent
kernel", ICML 2022 (structured NTK computation).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from torch import nn
from tqdm.auto import tqdm

from neuralcollapse.ntk.analytic import mlp_ntk, resnet_ntk
from neuralcollapse.ntk.models import NTKLinear, build_network
from neuralcollapse.ntk.validation import check_depth, check_input_pair, check_width
from neuralcollapse.progress import bar_disabled


def _check_layerwise_model(model: nn.Module) -> int:
    """Number of NTKLinear layers; every parameter must belong to one of them."""
    layers = [module for module in model.modules() if isinstance(module, NTKLinear)]
    covered = {id(layer.weight) for layer in layers}
    stray = [name for name, param in model.named_parameters() if id(param) not in covered]
    if stray:
        raise ValueError(
            f"empirical_ntk needs a network whose parameters all live in NTKLinear layers; "
            f"{stray[0]!r} does not. Use empirical_ntk_jacobian for general modules"
        )
    return len(layers)


def _layer_factors(
    model: nn.Module, inputs: torch.Tensor, num_layers: int
) -> list[tuple[torch.Tensor, torch.Tensor, int]]:
    """(layer inputs u, per-sample output gradients delta, fan_in) for every NTKLinear."""
    taps: list[tuple[torch.Tensor, torch.Tensor, int]] = []
    with torch.enable_grad():
        outputs = model(inputs, taps)
        if outputs.ndim != 1:
            raise ValueError(
                f"empirical_ntk needs a scalar-output network (output shape (n,)); got "
                f"{tuple(outputs.shape)}"
            )
        if len(taps) != num_layers:
            raise ValueError(
                f"the network called its NTKLinear layers {len(taps)} times for "
                f"{num_layers} layers; the layer-wise NTK needs each used exactly once "
                "(pass taps to every layer, no weight sharing)"
            )
        # the i-th output depends only on the i-th sample, so the gradient of the sum
        # w.r.t. each layer output is the stack of per-sample gradients
        deltas = torch.autograd.grad(outputs.sum(), [h for _, h, _ in taps])
    return [(u.detach(), delta, fan_in) for (u, _, fan_in), delta in zip(taps, deltas, strict=True)]


def empirical_ntk(
    model: nn.Module, x1: object, x2: object | None = None, *, batch_size: int = 256
) -> torch.Tensor:
    """Empirical NTK ``J(x1) J(x2)^T`` of a network made of :class:`NTKLinear` layers.

    ``Theta = sum_layers (Delta_1 Delta_2^T) * (U_1 U_2^T) / fan_in`` (Hadamard product),
    with ``U`` the layer inputs and ``Delta`` the per-sample gradients of the output
    w.r.t. the layer outputs (module docstring).

    Parameters
    ----------
    model : nn.Module
        Scalar-output network whose ``forward(x, taps)`` passes ``taps`` to each
        :class:`NTKLinear` (e.g. :class:`~neuralcollapse.ntk.models.ReLUMLP`).
    x1 : array or tensor, shape (n1, d)
        Inputs.
    x2 : array or tensor, shape (n2, d), optional
        Second inputs; ``None`` means ``x1``.
    batch_size : int
        Inputs per forward/backward pass (bounds the memory to O(batch_size m L)).

    Returns
    -------
    torch.Tensor
        The (n1, n2) float64 empirical NTK.
    """
    first, second = check_input_pair(x1, x2)
    num_layers = _check_layerwise_model(model)
    param = next(model.parameters())
    first, second = first.to(param), second.to(param)

    def factors(inputs: torch.Tensor):
        chunks = [
            _layer_factors(model, inputs[start : start + batch_size], num_layers)
            for start in range(0, inputs.shape[0], batch_size)
        ]
        return [
            (
                torch.cat([chunk[i][0] for chunk in chunks]),
                torch.cat([chunk[i][1] for chunk in chunks]),
                chunks[0][i][2],
            )
            for i in range(num_layers)
        ]

    factors_1 = factors(first)
    factors_2 = factors_1 if x2 is None else factors(second)
    kernel = torch.zeros(first.shape[0], second.shape[0], dtype=param.dtype, device=param.device)
    for (u1, d1, fan_in), (u2, d2, _) in zip(factors_1, factors_2, strict=True):
        kernel += (d1 @ d2.T) * (u1 @ u2.T) / fan_in
    return kernel.to(torch.float64)


def empirical_ntk_jacobian(model: nn.Module, x1: object, x2: object | None = None) -> torch.Tensor:
    """Empirical NTK from full per-sample Jacobians (``torch.func.vmap`` of ``jacrev``).

    ``Theta = sum_p J_p(x1) J_p(x2)^T`` over every parameter tensor p. Works for any
    scalar-output module, but stores an (n, P) Jacobian: use it on small networks (it is
    the independent reference for :func:`empirical_ntk`).

    Parameters
    ----------
    model : nn.Module
        Network mapping a batch (n, d) to outputs (n,).
    x1, x2 : array or tensor, shapes (n1, d) and (n2, d)
        Inputs (``x2=None`` means ``x1``).

    Returns
    -------
    torch.Tensor
        The (n1, n2) float64 empirical NTK.
    """
    first, second = check_input_pair(x1, x2)
    params = {name: param.detach() for name, param in model.named_parameters()}
    reference = next(iter(params.values()))
    first, second = first.to(reference), second.to(reference)

    def single_output(parameters: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
        return torch.func.functional_call(model, parameters, (x.unsqueeze(0),)).reshape(())

    per_sample_jacobian = torch.func.vmap(torch.func.jacrev(single_output), in_dims=(None, 0))
    jac_1 = per_sample_jacobian(params, first)
    jac_2 = jac_1 if x2 is None else per_sample_jacobian(params, second)
    kernel = torch.zeros(first.shape[0], second.shape[0], dtype=reference.dtype)
    for name in params:
        kernel += jac_1[name].flatten(1) @ jac_2[name].flatten(1).T
    return kernel.to(torch.float64)


def relative_kernel_error(empirical: torch.Tensor, analytic: torch.Tensor) -> float:
    """Relative Frobenius error ``||Theta_emp - Theta||_F / ||Theta||_F``."""
    if empirical.shape != analytic.shape:
        raise ValueError(
            f"kernel shapes differ: empirical {tuple(empirical.shape)} vs analytic "
            f"{tuple(analytic.shape)}"
        )
    difference = empirical.to(torch.float64) - analytic.to(torch.float64)
    return float(torch.linalg.norm(difference) / torch.linalg.norm(analytic.to(torch.float64)))


@dataclass(frozen=True)
class ConvergencePoint:
    """Relative error of the empirical NTK at one width (mean and spread over seeds)."""

    architecture: str
    depth: int
    alpha: float | None
    width: int
    mean_relative_error: float
    std_relative_error: float
    num_seeds: int

    def to_dict(self) -> dict[str, object]:
        """Plain dict for tables and JSON."""
        return asdict(self)


def ntk_convergence(
    architecture: str,
    inputs: object,
    *,
    depth: int,
    widths: Sequence[int],
    alpha: float | None = None,
    seeds: Sequence[int] = (0,),
    progress: bool = True,
) -> list[ConvergencePoint]:
    """Relative error of the empirical NTK to the analytic one, for each width.

    For each width m and seed, build the finite network (NTK parametrisation, float64),
    compute its NTK Gram on ``inputs`` with :func:`empirical_ntk` and compare it with
    :func:`mlp_ntk` / :func:`resnet_ntk`. The error is a random variable of order
    ``1/sqrt(m)`` (Jacot et al. 2018), so it falls as the width grows.

    Parameters
    ----------
    architecture : {"mlp", "resnet"}
        Which network.
    inputs : array or tensor, shape (n, d)
        Inputs on which the Gram matrices are compared.
    depth : int
        Hidden layers (MLP) or residual blocks (ResNet), >= 1.
    widths : sequence of int
        Widths to try.
    alpha : float, optional
        Residual branch scale (required for "resnet").
    seeds : sequence of int
        Initialisation seeds averaged over at each width.
    progress : bool
        Show a tqdm progress bar.

    Returns
    -------
    list of ConvergencePoint
        One per width, in the order given.
    """
    depth = check_depth(depth)
    widths = [check_width(width) for width in widths]
    if not widths:
        raise ValueError("widths must list at least one width, e.g. [64, 256, 1024]")
    if not seeds:
        raise ValueError("seeds must list at least one seed, e.g. [0]")
    points, _ = check_input_pair(inputs, None)
    if architecture == "mlp":
        analytic = mlp_ntk(points, depth=depth)
        alpha = None
    elif architecture == "resnet":
        if alpha is None:
            raise ValueError("architecture 'resnet' needs alpha (the residual branch scale)")
        analytic = resnet_ntk(points, depth=depth, alpha=alpha)
    else:
        raise ValueError(f"architecture must be 'mlp' or 'resnet'; got {architecture!r}")
    results = []
    jobs = [(width, seed) for width in widths for seed in seeds]
    bar = tqdm(
        jobs, desc=f"empirical NTK ({architecture})", disable=bar_disabled(progress), leave=False
    )
    errors: dict[int, list[float]] = {width: [] for width in widths}
    for width, seed in bar:
        network = build_network(
            architecture, in_dim=points.shape[1], width=width, depth=depth, alpha=alpha, seed=seed
        )
        errors[width].append(relative_kernel_error(empirical_ntk(network, points), analytic))
        del network  # free the m x m matrices before the next (possibly wider) network
    for width in widths:
        values = torch.tensor(errors[width], dtype=torch.float64)
        spread = float(values.std()) if len(values) > 1 else 0.0
        results.append(
            ConvergencePoint(
                architecture=architecture,
                depth=depth,
                alpha=alpha,
                width=width,
                mean_relative_error=float(values.mean()),
                std_relative_error=spread if math.isfinite(spread) else 0.0,
                num_seeds=len(values),
            )
        )
    return results
