"""The generalisation table: what training on past zero training error does to the test split.

Papyan, Han & Donoho (PNAS 2020, Table 1) compare the test accuracy of each network at the
first epoch of the terminal phase of training (TPT: the first epoch whose training error is
exactly 0) with the test accuracy at the last epoch. From the rows of a run's
``epochs.jsonl`` (fields ``epoch``, ``train_error``, ``test_error``, ``test_loss``, ...;
docs/training.md) :func:`generalisation_table` returns

    accuracy_tpt  = 1 - test_error(tpt_epoch),    loss_tpt  = test_loss(tpt_epoch)
    accuracy_last = 1 - test_error(last epoch),   loss_last = test_loss(last epoch)
    accuracy_change = accuracy_last - accuracy_tpt   (> 0: the terminal phase helped)
    loss_change     = loss_last - loss_tpt

"Zero training error" is exact (``train_error == 0``), the test the training loop uses for
``summary.json: tpt_epoch``. When no epoch reached it, or the run has no test split, the
values are None and ``not_computed`` says why. The loss is the data loss without weight
decay, as logged.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from neuralcollapse import runformat, schema
from neuralcollapse.checks import check_int

_VALUE_KEYS = (
    "accuracy_tpt",
    "loss_tpt",
    "accuracy_last",
    "loss_last",
    "accuracy_change",
    "loss_change",
)


@dataclass(frozen=True)
class GeneralisationTable:
    """Test accuracy and loss at the TPT onset and at the last epoch (Papyan et al., Table 1).

    Attributes
    ----------
    tpt_epoch : first epoch with training error 0, or None.
    last_epoch : the last logged epoch, or None without rows.
    terminal_epochs : ``last_epoch - tpt_epoch`` (epochs trained in the TPT), or None.
    accuracy_tpt, loss_tpt, accuracy_last, loss_last, accuracy_change, loss_change : as in
        the module docstring; None when not computed.
    not_computed : value key (or ``"*"`` for all) -> reason.
    """

    tpt_epoch: int | None
    last_epoch: int | None
    terminal_epochs: int | None
    accuracy_tpt: float | None = None
    loss_tpt: float | None = None
    accuracy_last: float | None = None
    loss_last: float | None = None
    accuracy_change: float | None = None
    loss_change: float | None = None
    not_computed: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON dict for ``summary.json`` (None = not computed, with the reason)."""
        out: dict[str, Any] = {
            "tpt_epoch": self.tpt_epoch,
            "last_epoch": self.last_epoch,
            "terminal_epochs": self.terminal_epochs,
        }
        out.update({key: getattr(self, key) for key in _VALUE_KEYS})
        if self.not_computed:
            out["not_computed"] = dict(self.not_computed)
        return out


def _finite(value: Any) -> float | None:
    """A logged number as a float; None for null, non-numbers and non-finite values."""
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def generalisation_table(rows: Iterable[Mapping[str, Any]]) -> GeneralisationTable:
    """Papyan et al.'s Table 1 for one run, from its ``epochs.jsonl`` rows.

    Parameters
    ----------
    rows : one mapping per epoch with at least ``epoch`` and ``train_error``; ``test_error``
        and ``test_loss`` are null (None) for a run without a test split. Any order; an epoch
        logged twice keeps its last row (what a resumed run means).

    Returns
    -------
    :class:`GeneralisationTable`; values are None, with a reason, when no epoch reached
    zero training error, the run has no test split, or there are no rows.

    Raises
    ------
    ValueError : a row without an integer ``epoch``.
    """
    by_epoch: dict[int, Mapping[str, Any]] = {}
    for number, row in enumerate(rows, start=1):
        epoch = row.get("epoch") if isinstance(row, Mapping) else None
        epoch = check_int(
            f"'epoch' of row {number}",
            epoch,
            hint="Pass the rows of a run's epochs.jsonl, each with its integer 'epoch'",
        )
        by_epoch[epoch] = row
    if not by_epoch:
        return GeneralisationTable(None, None, None, not_computed={"*": "no epoch was logged"})
    epochs = sorted(by_epoch)
    last = epochs[-1]
    tpt = next((e for e in epochs if _finite(by_epoch[e].get(schema.TRAIN_ERROR)) == 0.0), None)
    if tpt is None:
        reason = (
            f"no epoch reached zero training error (the terminal phase never began in "
            f"{len(epochs)} epochs)"
        )
        return GeneralisationTable(None, last, None, not_computed={"*": reason})
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    for when, epoch in (("tpt", tpt), ("last", last)):
        row = by_epoch[epoch]
        error, loss = _finite(row.get(schema.TEST_ERROR)), _finite(row.get(schema.TEST_LOSS))
        values[f"accuracy_{when}"] = None if error is None else 1.0 - error
        values[f"loss_{when}"] = loss
        for key, value in ((f"accuracy_{when}", error), (f"loss_{when}", loss)):
            if value is None:
                reasons[key] = f"epoch {epoch} has no finite test value (no test split?)"
    for quantity in ("accuracy", "loss"):
        start, end = values[f"{quantity}_tpt"], values[f"{quantity}_last"]
        values[f"{quantity}_change"] = None if start is None or end is None else end - start
        if values[f"{quantity}_change"] is None:
            reasons[f"{quantity}_change"] = f"{quantity} missing at epoch {tpt} or {last}"
    if all(values[key] is None for key in _VALUE_KEYS):
        reasons = {"*": "the run has no test split (test_error and test_loss are null)"}
    return GeneralisationTable(tpt, last, last - tpt, **values, not_computed=reasons)


def read_generalisation_table(run_dir: str | Path) -> GeneralisationTable:
    """:func:`generalisation_table` of ``RUN_DIR/epochs.jsonl``.

    Raises
    ------
    FileNotFoundError : no ``epochs.jsonl`` in ``run_dir``.
    ValueError : a line that is not a JSON object.
    """
    path = Path(run_dir) / runformat.EPOCHS
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} does not exist; pass a run directory written by `neuralcollapse train`"
        )
    return generalisation_table(runformat.read_run(run_dir).epochs)
