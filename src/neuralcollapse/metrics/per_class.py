"""One row per class: the per-class quantities behind the scalar metrics.

Scalars average over classes; on imbalanced data (a vocabulary's token frequencies span
orders of magnitude) the interesting part is how they vary with the class. The table
keeps, for every class k:

- ``count``: samples of the class, ``n_k``;
- ``within_variance``: ``V_k = (1/n_k) sum_{i in k} ||h_i - mu_k||^2`` (pass 2);
- ``mean_norm``: ``||m_k||``, the norm of the centred class mean (NC2's equinorm);
- ``weight_norm``: ``||w_k||``, the classifier row's norm;
- ``duality``: ``<w_k, m_k>``, whose spread over classes is UNC3 (Wu & Papyan, 2024);
- ``cdnv``: ``(1/(K-1)) sum_{j != k} (V_k + V_j) / (2 ||mu_k - mu_j||^2)``, the class's mean
  class-distance normalised variance to the others (Galanti et al., ICLR 2022); the mean
  of this column is the scalar ``cdnv``.

Columns that need what was not given (pass 2, a classifier) are None.

:meth:`PerClassTable.group_summary` averages every column over groups of classes (the
majority and minority classes of an imbalanced set, Fang et al., PNAS 2021): a minority
whose ``weight_norm`` and ``duality`` shrink is the per-class face of minority collapse.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass, fields

import numpy as np
import torch

Column = np.ndarray | None


def _column(values: torch.Tensor | None) -> Column:
    return None if values is None else values.detach().cpu().numpy()


@dataclass(frozen=True)
class PerClassTable:
    """Per-class columns (NumPy arrays of length K, or None where not available)."""

    count: np.ndarray
    within_variance: Column
    mean_norm: np.ndarray
    weight_norm: Column
    duality: Column
    cdnv: Column

    @classmethod
    def from_tensors(cls, **columns: torch.Tensor | None) -> PerClassTable:
        return cls(**{name: _column(values) for name, values in columns.items()})

    @property
    def num_classes(self) -> int:
        return len(self.count)

    def column_names(self) -> list[str]:
        """``class`` and the columns that are available, in order."""
        return ["class"] + [f.name for f in fields(self) if getattr(self, f.name) is not None]

    def to_dict(self) -> dict[str, list]:
        """Column name -> list of K values (JSON-ready); unavailable columns are left out."""
        table: dict[str, list] = {"class": list(range(self.num_classes))}
        for name in self.column_names()[1:]:
            table[name] = getattr(self, name).tolist()
        return table

    def group_summary(self, groups: dict[str, list[int] | range]) -> dict[str, dict[str, float]]:
        """The mean of every available column over each named group of classes.

        ``groups`` maps a name to class indices, e.g. ``{"majority": range(5),
        "minority": range(5, 10)}``; the result maps each name to ``{"classes": size,
        column: mean}``. A group with no class, an index outside [0, K) or a class in two
        groups is an error.
        """
        seen: set[int] = set()
        summary: dict[str, dict[str, float]] = {}
        for name, members in groups.items():
            members = [int(k) for k in members]
            if not members:
                raise ValueError(f"group {name!r} has no class; give at least one class index")
            outside = [k for k in members if not 0 <= k < self.num_classes]
            if outside:
                raise ValueError(
                    f"group {name!r} has class(es) {outside} outside [0, {self.num_classes})"
                )
            repeated = seen.intersection(members)
            if repeated:
                raise ValueError(f"class(es) {sorted(repeated)} are in more than one group")
            seen.update(members)
            row: dict[str, float] = {"classes": float(len(members))}
            for column in self.column_names()[1:]:
                row[column] = float(np.mean(getattr(self, column)[members]))
            summary[name] = row
        return summary

    def write_csv(self, path: str | os.PathLike) -> None:
        """Write the table as CSV: a header of column names, then one row per class."""
        table = self.to_dict()
        names = list(table)
        with open(path, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(names)
            writer.writerows(zip(*(table[name] for name in names), strict=True))
