"""Minority collapse: how far the classifier rows (or class means) of a group of classes merge.

Fang, He, Long & Su (PNAS 2021) show that with K_A majority classes of n_A samples and K_B
minority classes of n_A / R samples, the minority classifiers' directions merge as R grows
("minority collapse"). The measure is the mean pairwise cosine within the group G:

    minority_cosine(G) = 1 / (|G| (|G|-1)) sum_{k != k' in G} <v_k, v_k'> / (||v_k|| ||v_k'||)

over the classifier rows ``v_k = w_k`` (used as given: no centring, as in Fang et al.) or over
the centred class means ``v_k = mu_k - mu_G`` with ``mu_G`` the mean of the K class means (the
project's convention, docs/metrics.md). A simplex ETF gives -1/(K-1) in any group; a fully
collapsed group gives 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from neuralcollapse.metrics.stats import ClassStats
from neuralcollapse.metrics.validation import ArrayLike, as_tensor, check_finite


def _group(group: Sequence[int], num_classes: int) -> list[int]:
    try:
        members = [int(k) for k in group]
    except (TypeError, ValueError):
        raise ValueError(f"group must be a sequence of class indices; got {group!r}") from None
    if any(int(k) != k for k in group):
        raise ValueError(f"group must hold integer class indices; got {list(group)}")
    if len(set(members)) != len(members):
        raise ValueError(f"group lists a class twice: {members}; give each class once")
    if len(members) < 2:
        raise ValueError(
            f"a group needs at least 2 classes for a pairwise cosine; got {members}. Pass two "
            "or more class indices (e.g. the K_B minority classes)"
        )
    outside = [k for k in members if not 0 <= k < num_classes]
    if outside:
        raise ValueError(
            f"group holds class indices outside [0, {num_classes}): {outside}; the matrix has "
            f"{num_classes} rows (one per class)"
        )
    return members


def _rows(source: ClassStats | ArrayLike, centred: bool | None) -> torch.Tensor:
    if isinstance(source, ClassStats):
        # class means; centred by default (Papyan's M = [mu_k - mu_G])
        rows = source.means()
        centre = True if centred is None else centred
    else:
        rows = as_tensor(source, "rows")
        if rows.ndim != 2:
            raise ValueError(
                f"rows must be a (K, d) matrix (one row per class); got shape {tuple(rows.shape)}"
            )
        if rows.dtype == torch.bool or rows.is_complex():
            raise ValueError(f"rows must be real numbers; got dtype {rows.dtype}")
        rows = rows.detach().to(torch.float64)
        check_finite(rows, "rows")
        centre = bool(centred)
    if centre:
        rows = rows - rows.mean(dim=0, keepdim=True)
    return rows


def minority_cosine(
    source: ClassStats | ArrayLike,
    group: Sequence[int],
    *,
    centred: bool | None = None,
) -> float:
    """Mean pairwise cosine of the rows of ``source`` within ``group`` (Fang et al., PNAS 2021).

    Parameters
    ----------
    source : a (K, d) matrix, one row per class (NumPy or torch; e.g. the classifier ``W``),
        or a :class:`ClassStats`, whose class means are used.
    group : the class indices (>= 2 distinct values in [0, K)), e.g. the minority classes.
    centred : subtract the mean of the K rows first. Default: False for a matrix (classifier
        rows are compared as they are), True for a ClassStats (centred means, as NC2).

    Returns
    -------
    ``1/(|G|(|G|-1)) sum_{k != k'} cos(v_k, v_k')``: -1/(K-1) for a simplex ETF, 1 when the
    group's rows all point the same way.

    Raises
    ------
    ValueError : a group with fewer than 2 classes, repeated or out-of-range indices, a
        non-finite matrix, or a zero row in the group (its direction is undefined).
    """
    rows = _rows(source, centred)
    members = _group(group, rows.shape[0])
    picked = rows[members]
    norms = picked.norm(dim=1)
    scale = rows.norm(dim=1).max()
    zero = [k for k, norm in zip(members, norms.tolist(), strict=True) if not norm > 1e-12 * scale]
    if zero:
        raise ValueError(
            f"class(es) {zero} have a zero row (after centring: {_centre_word(source, centred)}); "
            "a cosine needs a direction. Drop them from the group, or check that the model "
            "learnt those classes at all"
        )
    unit = picked / norms.unsqueeze(1)
    cosines = unit @ unit.T
    size = len(members)
    return float((cosines.sum() - cosines.diagonal().sum()) / (size * (size - 1)))


def _centre_word(source: ClassStats | ArrayLike, centred: bool | None) -> str:
    """'yes' or 'no': whether :func:`minority_cosine` centres ``source`` (for messages)."""
    if centred is None:
        return "yes" if isinstance(source, ClassStats) else "no"
    return "yes" if centred else "no"
