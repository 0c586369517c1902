"""The run directory: JSONL/CSV logs, summary, and atomic checkpoints.

Layout (the contract with the report; see docs/training.md)::

    RUN/config.json            every option + "version"
    RUN/epochs.jsonl           one row per epoch
    RUN/metrics.jsonl          one row per (measured epoch, split, layer)
    RUN/metrics.csv            the same rows as metrics.jsonl
    RUN/summary.json           tpt_epoch, epochs_done, final, finished
    RUN/checkpoints/last.pt    written atomically (temporary file + os.replace)
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from neuralcollapse import schema
from neuralcollapse.atomic import atomic_write, atomic_write_bytes

CHECKPOINT_NAME = "last.pt"


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one row in the strict-JSON form of :mod:`neuralcollapse.schema`."""
    with open(path, "a") as stream:
        stream.write(schema.dumps(row) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """The rows of a JSONL log as written (non-finite values still as their strings)."""
    if not path.is_file():
        return []
    with open(path) as stream:
        return [json.loads(line) for line in stream if line.strip()]


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write strict JSON atomically, so a reader never sees half a file."""
    atomic_write_bytes(path, (schema.dumps(content, indent=2) + "\n").encode())


def truncate_jsonl(path: Path, last_epoch: int) -> None:
    """Keep the rows with epoch <= last_epoch (a resumed run rewrites what came after)."""
    rows = [row for row in read_jsonl(path) if row["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(schema.dumps(row) + "\n" for row in rows).encode())


def write_csv_from_jsonl(jsonl_path: Path, csv_path: Path) -> None:
    """metrics.csv: the rows of metrics.jsonl, columns in order of first appearance."""
    rows = read_jsonl(jsonl_path)
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    text = io.StringIO(newline="")
    writer = csv.DictWriter(text, fieldnames=columns, restval="")
    writer.writeheader()
    for row in rows:
        # nested values (the not_computed reasons) as their JSON text
        writer.writerow(
            {
                k: "" if v is None else (schema.dumps(v) if isinstance(v, dict) else v)
                for k, v in row.items()
            }
        )
    atomic_write_bytes(csv_path, text.getvalue().encode())


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temporary file in checkpoints/, then os.replace onto last.pt.

    A crash mid-write leaves the previous last.pt intact.
    """
    final = run_dir / "checkpoints" / CHECKPOINT_NAME
    atomic_write(final, lambda stream: torch.save(state, stream))
    return final


class UnsafeCheckpoint(ValueError):
    """A checkpoint that cannot be read without unpickling arbitrary objects."""


def load_checkpoint(run_dir: Path) -> dict[str, Any]:
    """Read ``checkpoints/last.pt`` with ``torch.load(weights_only=True)``.

    A run directory may come from someone else, and a full unpickle would run any code a
    crafted file carries. Everything this package saves (tensors, RNG states as uint8
    tensors, the optimiser's and scheduler's plain containers, the config as plain
    values) loads under the restricted unpickler; anything else is refused.

    Raises
    ------
    FileNotFoundError : no checkpoint.
    UnsafeCheckpoint : the file needs a full unpickle (it was not written by this package).
    """
    path = run_dir / "checkpoints" / CHECKPOINT_NAME
    if not path.is_file():
        raise FileNotFoundError(
            f"nothing to resume: {path} does not exist; start the run without --resume"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"refusing to resume from {path}: it holds objects that only a full unpickle "
            "can rebuild, and unpickling a file can run arbitrary code. Checkpoints written "
            f"by neuralcollapse load without that. Delete {path} and train afresh "
            f"(--overwrite, or another --out). Detail: {str(error).splitlines()[0]}"
        ) from None
