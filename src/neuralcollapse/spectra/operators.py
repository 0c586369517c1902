"""Curvature and second-moment operators of a model, restricted to chosen parameters.

With ``N`` samples ``(x_i, y_i)``, logits ``z_i = f(x_i; theta)`` (C,), per-sample loss
``l_i = l(z_i, y_i)``, the Jacobian ``J_i = dz_i/dtheta_S`` (C x p) of the chosen parameters
and the logit Hessian ``A_i = d^2 l_i / dz_i^2`` (:mod:`.losses`):

- Hessian of the mean loss: ``H = 1/N sum_i d^2 l_i / dtheta_S^2`` (+ ``weight_decay I``);
- Gauss-Newton term: ``G = 1/N sum_i J_i^T A_i J_i`` (for CE the Fisher information of the
  model's own predictive distribution); ``H = G + 1/N sum_i sum_c (dl_i/dz_ic) d^2 z_ic /
  dtheta^2``, so ``H = G`` when the logits are linear in ``theta_S`` (a last layer);
- the gradients' second moment ``M = 1/N sum_i g_i g_i^T``, ``g_i = J_i^T dl_i/dz_i``
  (uncentred: Papyan, ICML 2019, shows its means are what make the outliers);
- the features' second moment of a layer: ``Sigma = 1/N sum_i h_i h_i^T`` with ``h_i`` the
  layer's output for ``x_i`` (flattened), recorded by a forward hook.

Products are streamed over the data, one batch at a time: ``H v`` by double backward
(``grad(grad(l) . v)``), ``G v`` as ``J^T (A (J v))`` with ``torch.func.jvp`` / ``vjp``,
``M v`` from per-sample gradients (``torch.func.vmap(torch.func.grad(...))``). ``matmat(V)``
gives ``A V`` for a block of b vectors (block Lanczos), in one pass over the data with the b
tangents batched by ``torch.func.vmap`` (Hessian: b products). ``dense()``
builds the full p x p matrix by a separate route (``torch.func.hessian``, per-sample
Jacobians), which is what the tests compare the iterative methods against.

References
----------
Papyan, "Measurements of three-level hierarchical structure in the outliers in the spectrum of
deepnet Hessians", ICML 2019. Papyan, "Traces of class/cross-class structure pervade deep
learning spectra", JMLR 2020. Martens, "New insights and perspectives on the natural gradient
method", JMLR 2020 (the Gauss-Newton term).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence

import torch
from torch.func import functional_call

from neuralcollapse.checks import check_float, check_int
from neuralcollapse.spectra.losses import LossSpec, loss_spec
from neuralcollapse.spectra.params import ParameterSubset, select_parameters

__all__ = [
    "KINDS",
    "FeatureMomentOperator",
    "ModelOperator",
    "SpectralOperator",
    "curvature_operator",
    "feature_moment_operator",
]

#: operators of :func:`curvature_operator`
KINDS: tuple[str, ...] = ("hessian", "gauss_newton", "gradient_moment")
#: the largest p for which dense() builds the p x p matrix unless told otherwise
MAX_DENSE = 4096

Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]


class SpectralOperator:
    """A symmetric p x p matrix known through its products ``matvec(v)``.

    Attributes: ``dim`` (p), ``num_samples`` (N), ``matvecs`` (products computed so far: each
    is one pass over the data), ``kind``.
    """

    kind: str = ""
    dim: int = 0
    num_samples: int = 0

    def __init__(self) -> None:
        self.matvecs = 0

    def matvec(self, vector: torch.Tensor) -> torch.Tensor:
        """``A v`` in float64, for v of shape (p,)."""
        vector = torch.as_tensor(vector)
        if vector.shape != (self.dim,):
            raise ValueError(f"the vector must have shape ({self.dim},); got {tuple(vector.shape)}")
        self.matvecs += 1
        return self._matvec(vector).detach().to(torch.float64)

    def matmat(self, block: torch.Tensor) -> torch.Tensor:
        """``A V`` in float64 for a block V of shape (p, b): b products (``matvecs`` grows by
        b), in one pass over the data where the operator allows it (block Lanczos)."""
        block = torch.as_tensor(block)
        if block.dim() != 2 or block.shape[0] != self.dim:
            raise ValueError(f"the block must have shape ({self.dim}, b); got {tuple(block.shape)}")
        self.matvecs += block.shape[1]
        return self._matmat(block).detach().to(torch.float64)

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return torch.stack([self._matvec(block[:, i]) for i in range(block.shape[1])], dim=1)

    def dense(self, max_dim: int = MAX_DENSE) -> torch.Tensor:
        """The full p x p matrix (float64, symmetrised), for p <= ``max_dim``."""
        max_dim = check_int("max_dim", max_dim, minimum=1)
        if self.dim > max_dim:
            raise ValueError(
                f"dense() would build a {self.dim} x {self.dim} matrix (p > max_dim={max_dim}); "
                "use top_eigenpairs / hutchinson_trace / spectral_density, choose fewer "
                "parameters, or raise max_dim"
            )
        matrix = self._dense().detach().to(torch.float64)
        return 0.5 * (matrix + matrix.T)

    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _dense(self) -> torch.Tensor:
        raise NotImplementedError


def check_batches(data: object) -> Sequence | Iterable:
    """``data`` as a re-iterable source of (x, y) batches, or a clear error."""
    if isinstance(data, Iterator):
        raise TypeError(
            "data must be re-iterable (a list of (x, y) batches or a DataLoader): the "
            "operators pass over it once per product, and a one-shot iterator or generator "
            "would be empty after the first pass. Wrap it: data=list(batches)"
        )
    if isinstance(data, tuple) and len(data) == 2 and isinstance(data[0], torch.Tensor):
        return [data]  # one (x, y) batch
    if not isinstance(data, Iterable):
        raise TypeError(
            f"data must be an iterable of (x, y) batches; got {type(data).__name__}. "
            "Pass [(x, y)] for a single batch"
        )
    return data


def _unpack(batch: object, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    if not isinstance(batch, (tuple, list)) or len(batch) < 2:
        raise TypeError(
            f"batch {index} must be an (x, y) pair of tensors; got {type(batch).__name__}"
        )
    x, y = batch[0], batch[1]
    if not isinstance(x, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError(
            f"batch {index} must hold tensors (x, y); got {type(x).__name__}, {type(y).__name__}"
        )
    if y.dim() != 1 or y.dtype.is_floating_point or y.shape[0] != x.shape[0]:
        raise ValueError(
            f"batch {index}: labels must be integer class indices of shape (B,) matching x's "
            f"B={x.shape[0]}; got dtype {y.dtype}, shape {tuple(y.shape)}"
        )
    return x, y


class ModelOperator(SpectralOperator):
    """Hessian, Gauss-Newton term or gradient second moment of ``model`` (module docstring).

    Build with :func:`curvature_operator`.
    """

    def __init__(
        self,
        kind: str,
        model: torch.nn.Module,
        data: Batches,
        subset: ParameterSubset,
        loss: LossSpec,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.kind = kind
        self.model = model
        self.data = data
        self.subset = subset
        self.loss = loss
        self.weight_decay = weight_decay
        self.dim = subset.dim
        self.theta = subset.flat(model)
        self.num_samples, self.num_classes = self._scan()
        self._batched = True  # False once vmap failed on this model: matmat column by column

    # ---- plumbing ------------------------------------------------------------------------
    def batches(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        """The data's (x, y) batches, moved to the parameters' device."""
        device = self.subset.device
        for index, batch in enumerate(self.data):
            x, y = _unpack(batch, index)
            if x.is_floating_point():
                x = x.to(device=device, dtype=self.subset.dtype)
            yield x.to(device), y.to(device)

    def logits(self, flat: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """z = f(x; theta_S = flat, other parameters as they are): (B, C)."""
        return functional_call(self.model, self.subset.unflatten(flat), (x,))

    def _scan(self) -> tuple[int, int]:
        count, classes = 0, None
        with torch.no_grad():
            for x, y in self.batches():
                z = self.logits(self.theta, x[:1])
                if z.dim() != 2 or z.shape[1] < 2:
                    raise ValueError(
                        f"the model must map a batch (B, ...) to logits (B, C) with C >= 2; "
                        f"got output shape {tuple(z.shape)}"
                    )
                classes = z.shape[1]
                if len(y) and (int(y.min()) < 0 or int(y.max()) >= classes):
                    raise ValueError(
                        f"labels must lie in [0, C) = [0, {classes}); got values in "
                        f"[{int(y.min())}, {int(y.max())}]"
                    )
                count += len(y)
        if count == 0:
            raise ValueError("data holds no samples; pass at least one non-empty (x, y) batch")
        return count, classes

    def _single_loss(self, flat: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return self.loss.per_sample(self.logits(flat, x.unsqueeze(0)), y.unsqueeze(0))[0]

    def per_sample_gradients(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """g_i = d l_i / d theta_S for a batch: (B, p), by ``vmap(grad(...))``."""
        grad = torch.func.grad(self._single_loss)
        return torch.func.vmap(grad, in_dims=(None, 0, 0))(self.theta, x, y)

    def per_sample_jacobians(self, x: torch.Tensor) -> torch.Tensor:
        """J_i = d z_i / d theta_S for a batch: (B, C, p), by ``vmap(jacrev(...))``."""

        def single(flat: torch.Tensor, xi: torch.Tensor) -> torch.Tensor:
            return self.logits(flat, xi.unsqueeze(0))[0]

        return torch.func.vmap(torch.func.jacrev(single), in_dims=(None, 0))(self.theta, x)

    # ---- products ------------------------------------------------------------------------
    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        v = vector.to(device=self.subset.device, dtype=self.subset.dtype)
        out = torch.zeros_like(v)
        for x, y in self.batches():
            if self.kind == "hessian":
                flat = self.theta.clone().requires_grad_(True)
                total = self.loss.per_sample(self.logits(flat, x), y).sum()
                (grad,) = torch.autograd.grad(total, flat, create_graph=True)
                (hv,) = torch.autograd.grad(grad @ v, flat)
                out += hv
            elif self.kind == "gauss_newton":

                def forward(flat: torch.Tensor, x: torch.Tensor = x) -> torch.Tensor:
                    return self.logits(flat, x)

                z, jv = torch.func.jvp(forward, (self.theta,), (v,))
                a = self.loss.hessian(z.detach(), y)
                _, pull = torch.func.vjp(forward, self.theta)
                out += pull(torch.einsum("bij,bj->bi", a, jv))[0]
            else:
                g = self.per_sample_gradients(x, y)
                out += g.T @ (g @ v)
        return out / self.num_samples + self.weight_decay * v

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        """G V with the b tangents batched by ``torch.func.vmap`` (one pass over the data, one
        logit Hessian per batch, b times the activation memory of a product); M V as
        ``g^T (g V)``. The Hessian, and a model whose operations vmap cannot batch, go
        column by column."""
        if self.kind == "hessian" or not self._batched:
            return super()._matmat(block)
        v = block.to(device=self.subset.device, dtype=self.subset.dtype)
        try:
            out = torch.zeros_like(v)
            for x, y in self.batches():
                if self.kind == "gauss_newton":
                    out += self._gauss_newton_block(v, x, y)
                else:
                    g = self.per_sample_gradients(x, y)
                    out += g.T @ (g @ v)
        except RuntimeError:  # an operation without a vmap rule: the same product, unbatched
            self._batched = False
            return super()._matmat(block)
        return out / self.num_samples

    def _gauss_newton_block(
        self, v: torch.Tensor, x: torch.Tensor, y: torch.Tensor
    ) -> torch.Tensor:
        """``sum_i J_i^T A_i J_i V`` over one batch, the columns of V as vmapped tangents."""

        def forward(flat: torch.Tensor) -> torch.Tensor:
            return self.logits(flat, x)

        def push(tangent: torch.Tensor) -> torch.Tensor:
            return torch.func.jvp(forward, (self.theta,), (tangent,))[1]

        jv = torch.func.vmap(push)(v.T)  # (b, B, C): J V, one slice per column
        with torch.no_grad():
            a = self.loss.hessian(self.logits(self.theta, x), y)
        _, pull = torch.func.vjp(forward, self.theta)
        weighted = torch.einsum("nij,bnj->bni", a, jv)
        return torch.func.vmap(lambda w: pull(w)[0])(weighted).T

    def _dense(self) -> torch.Tensor:
        p = self.dim
        out = torch.zeros(p, p, dtype=self.subset.dtype, device=self.subset.device)
        for x, y in self.batches():
            if self.kind == "hessian":

                def total(flat: torch.Tensor, x: torch.Tensor = x, y: torch.Tensor = y):
                    return self.loss.per_sample(self.logits(flat, x), y).sum()

                out += torch.func.hessian(total)(self.theta)
            elif self.kind == "gauss_newton":
                jac = self.per_sample_jacobians(x)
                with torch.no_grad():
                    z = self.logits(self.theta, x)
                a = self.loss.hessian(z, y)
                out += torch.einsum("bcp,bcd,bdq->pq", jac, a, jac)
            else:
                g = self.per_sample_gradients(x, y)
                out += g.T @ g
        eye = torch.eye(p, dtype=out.dtype, device=out.device)
        return out / self.num_samples + self.weight_decay * eye


def curvature_operator(
    model: torch.nn.Module,
    data: Batches,
    *,
    kind: str = "gauss_newton",
    params: str | Iterable[str] | None = None,
    loss: str | Callable | LossSpec = "ce",
    weight_decay: float = 0.0,
) -> ModelOperator:
    """The ``kind`` operator (``"hessian"``, ``"gauss_newton"``, ``"gradient_moment"``) of
    ``model`` on ``data`` over the parameters ``params`` (names or prefixes; None: all).

    Parameters
    ----------
    model : maps a batch x to logits (B, C); put it in eval mode first if it has batch norm
        or dropout (per-sample products need a per-sample function).
    data : a re-iterable of (x, y) batches (a list, a DataLoader); y integer labels.
    loss : "ce", "mse" (``1/2 ||z - e_y||^2``) or a callable per-sample loss.
    weight_decay : lam >= 0 added as ``lam I`` to the Hessian (the curvature of
        ``lam/2 ||theta_S||^2``); refused for the other kinds, which have no such term.

    Formulas: module docstring; references: Papyan, JMLR 2020.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {KINDS}")
    weight_decay = check_float("weight_decay", weight_decay, minimum=0.0)
    if weight_decay and kind != "hessian":
        raise ValueError(
            f"weight_decay applies to kind='hessian' only (the Hessian of lam/2 ||theta||^2); "
            f"got kind={kind!r} with weight_decay={weight_decay}. Add it to the eigenvalues "
            "yourself, or use kind='hessian'"
        )
    subset = select_parameters(model, params)
    return ModelOperator(kind, model, check_batches(data), subset, loss_spec(loss), weight_decay)


class FeatureMomentOperator(SpectralOperator):
    """``Sigma = 1/N sum_i h_i h_i^T`` of one layer's outputs (flattened), one pass, d x d."""

    kind = "feature_moment"

    def __init__(
        self, matrix: torch.Tensor, num_samples: int, means: torch.Tensor, counts: torch.Tensor
    ) -> None:
        super().__init__()
        self.matrix = matrix
        self.dim = matrix.shape[0]
        self.num_samples = num_samples
        self.class_means = means
        self.class_counts = counts

    def _matvec(self, vector: torch.Tensor) -> torch.Tensor:
        return self.matrix @ vector.to(self.matrix)

    def _matmat(self, block: torch.Tensor) -> torch.Tensor:
        return self.matrix @ block.to(self.matrix)

    def _dense(self) -> torch.Tensor:
        return self.matrix.clone()


def feature_moment_operator(
    model: torch.nn.Module, data: Batches, layer: str
) -> FeatureMomentOperator:
    """Second moment of the outputs of the submodule named ``layer`` (forward hook), with the
    class means and counts of those features (for the between-class part ``sum_c pi_c mu_c
    mu_c^T``, whose C eigenvalues are the features' outliers: Papyan, JMLR 2020, Sec. 3)."""
    modules = dict(model.named_modules())
    if layer not in modules:
        shown = ", ".join(n for n in modules if n)
        raise ValueError(f"no submodule named {layer!r}; available: {shown}")
    data = check_batches(data)
    captured: list[torch.Tensor] = []
    handle = modules[layer].register_forward_hook(
        lambda _m, _i, out: captured.append(out.detach().reshape(out.shape[0], -1))
    )
    matrix = sums = counts = None
    total = 0
    try:
        with torch.no_grad():
            for index, batch in enumerate(data):
                x, y = _unpack(batch, index)
                captured.clear()
                z = model(x)
                if not captured:
                    raise ValueError(f"submodule {layer!r} was not called in the forward pass")
                h = captured[-1].to(torch.float64)
                if matrix is None:
                    c = z.shape[1]
                    matrix = torch.zeros(h.shape[1], h.shape[1], dtype=torch.float64)
                    sums = torch.zeros(c, h.shape[1], dtype=torch.float64)
                    counts = torch.zeros(c, dtype=torch.float64)
                h, y = h.cpu(), y.cpu()
                matrix += h.T @ h
                sums.index_add_(0, y, h)
                counts += torch.bincount(y, minlength=len(counts)).to(counts)
                total += len(y)
    finally:
        handle.remove()
    if matrix is None or total == 0:
        raise ValueError("data holds no samples; pass at least one non-empty (x, y) batch")
    means = sums / counts.clamp_min(1).unsqueeze(1)
    return FeatureMomentOperator(matrix / total, total, means, counts)
