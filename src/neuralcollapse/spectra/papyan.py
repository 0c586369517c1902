"""Papyan's class/cross-class decomposition of the Gauss-Newton term G.

Write each sample's logit Hessian as ``A_i = F_i F_i^T`` (:mod:`.losses`: for CE
``F_i[:, c'] = sqrt(p_ic') (e_c' - p_i)``, for MSE ``F_i = I``) and let
``delta_{i,c'} = J_i^T F_i[:, c']`` (p,), the logit-c' gradient of sample i (weighted, for CE).
Then ``G = 1/N sum_i sum_c' delta_{i,c'} delta_{i,c'}^T``: a second moment, not a covariance.
Grouping the samples by their true class c (``pi_c = N_c / N``), with the means

    delta_{c,c'} = 1/N_c sum_{i: y_i = c} delta_{i,c'}      (C^2 of them)

the identity ``E[x x^T] = E[x] E[x]^T + Cov x`` within each class gives, exactly,

    G = G_between + G_within,
    G_between = sum_c pi_c sum_c' delta_{c,c'} delta_{c,c'}^T,
    G_within  = 1/N sum_i sum_c' (delta_{i,c'} - delta_{y_i,c'})(...)^T   (PSD).

``G_between = D^T D`` with the rows ``sqrt(pi_c) delta_{c,c'}`` of D (C^2 x p), so its nonzero
eigenvalues are those of the C^2 x C^2 Gram ``Gamma = D D^T``,
``Gamma_{(c,c'),(e,e')} = sqrt(pi_c pi_e) <delta_{c,c'}, delta_{e,e'}>``, and its eigenvectors are
``u_j = D^T w_j / sqrt(gamma_j)`` for the eigenpairs ``(gamma_j, w_j)`` of Gamma. When the
within-class part is small (collapse), the top C^2 eigenvalues of G are close to the gammas
(Weyl: ``|lambda_j(G) - gamma_j| <= ||G_within||``) and G's principal subspace to the span of
the means: Papyan's "averaging" approximation, which needs no p-dimensional eigensolver.

The ``delta_{c,c}`` (c' = c) are the C *class means* and the ``delta_{c,c'}``, c' != c, the
C(C - 1) *cross-class means*; each eigenvector's fractions of energy in their spans say which
outliers the classes make and which the cross-class confusions make (Papyan, JMLR 2020).

References
----------
Papyan, "Measurements of three-level hierarchical structure in the outliers in the spectrum of
deepnet Hessians", ICML 2019. Papyan, "Traces of class/cross-class structure pervade deep
learning spectra", JMLR 2020.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch

from neuralcollapse.spectra.losses import LossSpec
from neuralcollapse.spectra.operators import Batches, curvature_operator

__all__ = ["PapyanDecomposition", "papyan_decomposition", "span_basis"]


def span_basis(rows: torch.Tensor, rtol: float = 1e-10) -> torch.Tensor:
    """Orthonormal basis (p, r) of the span of ``rows`` (m, p), singular values above
    ``rtol`` times the largest."""
    if rows.numel() == 0:
        return rows.new_zeros(rows.shape[-1], 0)
    u, s, vh = torch.linalg.svd(rows, full_matrices=False)
    if float(s.max()) == 0.0:
        return rows.new_zeros(rows.shape[1], 0)
    keep = s > rtol * s.max()
    return vh[keep].T


@dataclass
class PapyanDecomposition:
    """The means of the logit gradients, their Gram and the spans (module docstring).

    Attributes
    ----------
    means : (C, C, p), ``means[c, c'] = delta_{c,c'}`` (true class c, logit c').
    class_counts : (C,) samples per class; ``weights`` pi_c = N_c / N.
    gram : (C^2, C^2) Gamma, row index ``c * C + c'``.
    gram_eigenvalues : (C^2,), largest first; ``gram_eigenvectors`` (C^2, C^2).
    trace_total, trace_between, trace_within : tr G and its two exact parts.
    """

    means: torch.Tensor
    class_counts: torch.Tensor
    gram: torch.Tensor
    gram_eigenvalues: torch.Tensor
    gram_eigenvectors: torch.Tensor
    trace_total: float
    trace_between: float

    @property
    def num_classes(self) -> int:
        return self.means.shape[0]

    @property
    def weights(self) -> torch.Tensor:
        return self.class_counts / self.class_counts.sum()

    @property
    def trace_within(self) -> float:
        return self.trace_total - self.trace_between

    def _rows(self) -> torch.Tensor:
        c = self.num_classes
        scale = self.weights.sqrt().repeat_interleave(c).unsqueeze(1)
        return scale * self.means.reshape(c * c, -1)

    def between_matrix(self) -> torch.Tensor:
        """G_between (p x p); for small p only."""
        rows = self._rows()
        return rows.T @ rows

    def averaging_eigenpairs(self, k: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Papyan's averaging approximation: the top k eigenvalues gamma_j of Gamma and the
        vectors ``u_j = D^T w_j / sqrt(gamma_j)`` (p, k), orthonormal where gamma_j > 0."""
        k = self.num_classes**2 if k is None else min(k, self.num_classes**2)
        values = self.gram_eigenvalues[:k]
        positive = values > values.max().clamp_min(1e-300) * 1e-12
        vectors = self._rows().T @ self.gram_eigenvectors[:, :k]
        vectors = vectors / values.clamp_min(1e-300).sqrt()
        return values, vectors * positive

    def class_basis(self) -> torch.Tensor:
        """Orthonormal basis of span{delta_{c,c}} (the class means)."""
        c = self.num_classes
        return span_basis(self.means[torch.arange(c), torch.arange(c)])

    def cross_basis(self) -> torch.Tensor:
        """Orthonormal basis of span{delta_{c,c'} : c' != c} (the cross-class means)."""
        c = self.num_classes
        off = ~torch.eye(c, dtype=torch.bool)
        return span_basis(self.means[off])

    def span_fractions(self, vectors: torch.Tensor) -> dict[str, list[float]]:
        """For each column u of ``vectors`` (p, k), unit norm: ``||P u||^2`` for P the
        projector on the class span, the cross-class span and the span of all C^2 means."""
        vectors = vectors.to(self.means.dtype)
        vectors = vectors / vectors.norm(dim=0, keepdim=True).clamp_min(1e-300)
        out = {}
        for name, basis in (
            ("class", self.class_basis()),
            ("cross", self.cross_basis()),
            ("all", span_basis(self.means.reshape(self.num_classes**2, -1))),
        ):
            out[name] = (basis.T @ vectors).pow(2).sum(0).tolist()
        return out

    def subspace_overlap(self, vectors: torch.Tensor, k: int | None = None) -> float:
        """``||U_k^T V||_F^2 / k`` in [0, 1]: how much of the k-dimensional principal subspace
        spanned by ``vectors`` (p, k), orthonormal, the averaging approximation captures."""
        k = vectors.shape[1] if k is None else k
        _, approx = self.averaging_eigenpairs(k)
        approx = span_basis(approx.T)
        return float((approx.T @ vectors[:, :k].to(approx)).pow(2).sum()) / k

    def to_dict(self, k: int | None = None) -> dict:
        k = self.num_classes**2 if k is None else k
        return {
            "gram_eigenvalues": self.gram_eigenvalues[:k].tolist(),
            "trace_total": self.trace_total,
            "trace_between": self.trace_between,
            "trace_within": self.trace_within,
            "class_counts": self.class_counts.tolist(),
        }


def papyan_decomposition(
    model: torch.nn.Module,
    data: Batches,
    *,
    params: str | Iterable[str] | None = None,
    loss: str | Callable | LossSpec = "ce",
) -> PapyanDecomposition:
    """One pass over ``data``: per-sample Jacobians J_i (``vmap(jacrev)``), the vectors
    ``delta_{i,c'}``, their class means and tr G (formulas: module docstring).

    Cost: C backward passes per sample; memory C^2 p for the means (plus B C p per batch).
    Every class in [0, C) needs at least one sample.
    """
    op = curvature_operator(model, data, kind="gauss_newton", params=params, loss=loss)
    c, p = op.num_classes, op.dim
    sums = torch.zeros(c, c, p, dtype=torch.float64, device=op.subset.device)
    counts = torch.zeros(c, dtype=torch.float64, device=op.subset.device)
    total = 0.0
    for x, y in op.batches():
        jac = op.per_sample_jacobians(x).detach()  # (B, C, p)
        with torch.no_grad():
            z = op.logits(op.theta, x)
        factor = op.loss.factor(z, y)  # (B, C, C'), columns indexed by the logit c'
        deltas = torch.einsum("bkc,bkp->bcp", factor, jac).to(torch.float64)
        sums.index_add_(0, y, deltas)
        counts += torch.bincount(y, minlength=c).to(counts)
        total += float(deltas.pow(2).sum())
    missing = (counts == 0).nonzero().flatten().tolist()
    if missing:
        raise ValueError(
            f"classes {missing} have no sample in data; the class/cross-class means need every "
            "class in [0, C): use a class-balanced subsample"
        )
    means = sums / counts.view(c, 1, 1)
    decomposition = PapyanDecomposition(
        means=means.cpu(),
        class_counts=counts.cpu(),
        gram=torch.empty(0),
        gram_eigenvalues=torch.empty(0),
        gram_eigenvectors=torch.empty(0),
        trace_total=total / op.num_samples,
        trace_between=0.0,
    )
    rows = decomposition._rows()
    gram = rows @ rows.T
    values, vectors = torch.linalg.eigh(gram)
    decomposition.gram = gram
    decomposition.gram_eigenvalues = values.flip(0)
    decomposition.gram_eigenvectors = vectors.flip(1)
    decomposition.trace_between = float(torch.trace(gram))
    return decomposition
