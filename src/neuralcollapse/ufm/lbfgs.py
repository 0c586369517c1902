"""A batched L-BFGS: many independent smooth problems minimised as one tensor program.

Each of the B problems has its own iterate, curvature memory, step size and stopping test;
the work is done on (B, P) tensors so a whole grid of UFM problems costs about as much per
iteration as a few large matrix products.

Per problem the method is textbook L-BFGS (Nocedal & Wright, Numerical Optimization, 2nd ed.,
Alg. 7.4/7.5): the search direction ``d = -H_k g`` comes from the two-loop recursion over the
last ``m`` pairs ``s = x_{k+1} - x_k``, ``y = g_{k+1} - g_k`` with initial scaling
``gamma = s^T y / y^T y``; a pair is stored only when ``s^T y > 0`` so the implicit inverse
Hessian stays positive definite; the step comes from a backtracking (Armijo) line search
starting at 1. A problem stops when ``||g||_inf <= tol_grad``, or when its objective has not
decreased by more than a few ulps for ``patience`` iterations in a row (the floating-point
floor: further steps only move along round-off). Problems that have stopped are dropped from
the working tensors (compaction), so late iterations cost only what the stragglers need.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from neuralcollapse.checks import check_int


@dataclass
class BatchedLBFGSResult:
    """Outcome per problem: x (B, P), value (B,), grad_norm (B,) (max-abs), iterations (B,),
    converged (B,) bool (gradient test met, or stalled at the precision floor), and
    value_history: one (B,) tensor of objective values per iteration."""

    x: torch.Tensor
    value: torch.Tensor
    grad_norm: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    value_history: list[torch.Tensor]


def _value_and_grad(
    fun: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    rows: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    x = x.detach().requires_grad_(True)
    value = fun(x, rows)
    # the problems are independent, so the gradient of the sum is every problem's gradient
    (grad,) = torch.autograd.grad(value.sum(), x)
    return value.detach(), grad.detach()


def batched_lbfgs(
    fun: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    x0: torch.Tensor,
    *,
    max_iter: int = 2000,
    memory: int = 10,
    tol_grad: float = 1e-10,
    armijo: float = 1e-4,
    max_backtracks: int = 40,
    patience: int = 10,
    callback: Callable[[int, int], None] | None = None,
) -> BatchedLBFGSResult:
    """Minimise B independent functions at once.

    Parameters
    ----------
    fun : ``fun(x, rows)`` maps x (A, P), the iterates of the problems whose indices (into
        0..B-1) are ``rows`` (A,), to their A objective values, differentiably.
    x0 : starting points (B, P), float64.
    max_iter : iteration cap (per problem; all run in lockstep).
    memory : number m of stored curvature pairs.
    tol_grad : stop a problem when the max-abs entry of its gradient is at most this.
    armijo : sufficient-decrease constant c1 of the line search.
    max_backtracks : step halvings before a problem is declared stalled.
    patience : iterations without a decrease beyond round-off before a problem is stalled.
    callback : called as ``callback(iteration, active_count)`` after each iteration.

    Returns
    -------
    BatchedLBFGSResult
    """
    if x0.ndim != 2:
        raise ValueError(f"x0 must have shape (B, P); got {tuple(x0.shape)}")
    memory = check_int("memory", memory, minimum=1, meaning="(s, y) pairs kept")
    batch, size = x0.shape
    dtype = x0.dtype
    rows = torch.arange(batch)
    x = x0.detach().clone()
    value, grad = _value_and_grad(fun, x, rows)
    if not torch.isfinite(value).all():
        bad = torch.nonzero(~torch.isfinite(value)).flatten().tolist()
        raise ValueError(f"the objective is not finite at the starting point of problems {bad}")
    # final answers, filled in as problems stop
    out_x, out_value = x.clone(), value.clone()
    out_grad_norm = grad.abs().amax(dim=1)
    out_iterations = torch.zeros(batch, dtype=torch.long)
    out_converged = torch.zeros(batch, dtype=torch.bool)
    s_mem = torch.zeros(memory, batch, size, dtype=dtype)
    y_mem = torch.zeros(memory, batch, size, dtype=dtype)
    rho = torch.zeros(memory, batch, dtype=dtype)  # 0 marks an empty or skipped slot
    gamma = torch.ones(batch, dtype=dtype)
    flat_count = torch.zeros(batch, dtype=torch.long)
    done = out_grad_norm <= tol_grad
    history = [out_value.clone()]
    for iteration in range(max_iter + 1):
        if done.any():
            # retire finished problems and shrink every working tensor to the rest
            finished = rows[done]
            out_x[finished] = x[done]
            out_value[finished] = value[done]
            out_grad_norm[finished] = grad[done].abs().amax(dim=1)
            out_converged[finished] = True
            keep = ~done
            rows, x, value, grad = rows[keep], x[keep], value[keep], grad[keep]
            s_mem, y_mem, rho = s_mem[:, keep], y_mem[:, keep], rho[:, keep]
            gamma, flat_count = gamma[keep], flat_count[keep]
        if rows.numel() == 0 or iteration == max_iter:
            break
        # two-loop recursion, newest pair first (slot order is chronological modulo memory)
        order = [(iteration - 1 - j) % memory for j in range(min(iteration, memory))]
        q = grad.clone()
        alphas = {}
        for slot in order:
            alpha = rho[slot] * (s_mem[slot] * q).sum(dim=1)
            q -= alpha.unsqueeze(1) * y_mem[slot]
            alphas[slot] = alpha
        r = gamma.unsqueeze(1) * q
        for slot in reversed(order):
            beta = rho[slot] * (y_mem[slot] * r).sum(dim=1)
            r += (alphas[slot] - beta).unsqueeze(1) * s_mem[slot]
        direction = -r
        slope = (direction * grad).sum(dim=1)
        # safeguard: fall back to steepest descent (and forget the memory) where not descent
        not_descent = slope >= 0
        if not_descent.any():
            direction[not_descent] = -grad[not_descent]
            slope = (direction * grad).sum(dim=1)
            rho[:, not_descent] = 0.0
            gamma[not_descent] = 1.0
        if iteration == 0:
            # no curvature yet: a first step of unit length in the max-abs sense
            step = torch.clamp(1.0 / grad.abs().amax(dim=1).clamp_min(1e-300), max=1.0)
        else:
            step = torch.ones(rows.numel(), dtype=dtype)
        accepted = torch.zeros(rows.numel(), dtype=torch.bool)
        new_x = x.clone()
        for _ in range(max_backtracks):
            pending = ~accepted
            trial_x = x[pending] + step[pending].unsqueeze(1) * direction[pending]
            trial_value = fun(trial_x, rows[pending]).detach()
            ok = trial_value <= value[pending] + armijo * step[pending] * slope[pending]
            ok &= torch.isfinite(trial_value)
            index = torch.nonzero(pending).flatten()
            new_x[index[ok]] = trial_x[ok]
            accepted[index[ok]] = True
            if accepted.all():
                break
            step = torch.where(accepted, step, step * 0.5)
        stalled = ~accepted
        new_value, new_grad = _value_and_grad(fun, new_x, rows)
        s_vec = new_x - x
        y_vec = new_grad - grad
        sy = (s_vec * y_vec).sum(dim=1)
        yy = (y_vec * y_vec).sum(dim=1)
        good = ~stalled & (sy > 1e-12 * yy.sqrt() * s_vec.norm(dim=1).clamp_min(1e-300))
        slot = iteration % memory
        s_mem[slot] = torch.where(good.unsqueeze(1), s_vec, 0.0)
        y_mem[slot] = torch.where(good.unsqueeze(1), y_vec, 0.0)
        rho[slot] = torch.where(good, 1.0 / sy.where(good, torch.ones_like(sy)), 0.0)
        gamma = torch.where(good, sy / yy.where(good, torch.ones_like(yy)), gamma)
        moved = ~stalled
        # a decrease within a few ulps of |f| is round-off, not progress
        floor = 8 * torch.finfo(dtype).eps * value.abs().clamp_min(1e-300)
        no_progress = moved & (value - new_value <= floor)
        flat_count = torch.where(no_progress, flat_count + 1, torch.zeros_like(flat_count))
        x = torch.where(moved.unsqueeze(1), new_x, x)
        value = torch.where(moved, new_value, value)
        grad = torch.where(moved.unsqueeze(1), new_grad, grad)
        out_iterations[rows] += 1
        done = stalled | (grad.abs().amax(dim=1) <= tol_grad) | (flat_count >= patience)
        current = out_value.clone()
        current[rows] = value
        history.append(current)
        if callback is not None:
            callback(iteration, int(rows.numel()))
    if rows.numel():
        # problems still running at max_iter: report where they are, not converged
        out_x[rows], out_value[rows] = x, value
        out_grad_norm[rows] = grad.abs().amax(dim=1)
    return BatchedLBFGSResult(
        out_x, out_value, out_grad_norm, out_iterations, out_converged, history
    )
