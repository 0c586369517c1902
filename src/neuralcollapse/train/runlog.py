"""The run directory: JSONL/CSV logs, summary, and atomic checkpoints.

Layout (the contract with the report; see docs/training.md)::

    RUN/config.json            every option + "version"
    RUN/epochs.jsonl           one row per epoch
    RUN/metrics.jsonl          one row per (measured epoch, split, layer)
    RUN/metrics.csv            the same rows as metrics.jsonl
    RUN/summary.json           tpt_epoch, epochs_done, final, finished
    RUN/checkpoints/last.pt    written atomically (temporary file + os.replace)
    RUN/tensorboard/           event files, with --tensorboard
"""

from __future__ import annotations

import csv
import io
import json
import pickle
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from neuralcollapse import schema
from neuralcollapse.atomic import atomic_write, atomic_write_bytes

CHECKPOINT_NAME = "last.pt"
#: the files in RUN/ that a run writes (and that --overwrite may delete)
LOG_NAMES = ("config.json", "epochs.jsonl", "metrics.jsonl", "metrics.csv", "summary.json")
TENSORBOARD_DIR = "tensorboard"


def append_jsonl(path: Path, row: dict[str, Any]) -> None:
    """Append one row in the strict-JSON form of :mod:`neuralcollapse.schema`."""
    with open(path, "a") as stream:
        stream.write(schema.dumps(row) + "\n")


@dataclass(frozen=True)
class TornLine:
    """The final line of a JSONL log that a crash cut short."""

    number: int
    text: str
    error: str


def _parse_jsonl(path: Path) -> tuple[list[dict[str, Any]], TornLine | None]:
    """The rows, and the torn final line (None when the file ends cleanly).

    Rows are appended one write at a time, so a crash mid-write can only tear the *last*
    line; an invalid line before it means the file was edited or damaged: an error that
    names the file and the line.
    """
    if not path.is_file():
        return [], None
    with open(path) as stream:
        lines = [(number, line) for number, line in enumerate(stream, 1) if line.strip()]
    rows: list[dict[str, Any]] = []
    for index, (number, line) in enumerate(lines):
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            if index == len(lines) - 1:
                return rows, TornLine(number, line.strip(), str(error))
            raise ValueError(
                f"{path}, line {number}: not valid JSON ({error}); only the last line can be "
                "torn by a crash, so the file was edited or damaged: fix or delete that line"
            ) from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}, line {number}: expected a JSON object, got {line[:60]!r}")
        rows.append(row)
    return rows, None


def read_jsonl(path: Path, *, torn: str = "drop") -> list[dict[str, Any]]:
    """The rows of a JSONL log as written (non-finite values still as their strings).

    This is the one reader of the run format's logs (training, resume, the report, the
    generalisation table). A torn final line (a crash mid-write) is left out with
    ``torn="drop"`` (:func:`truncate_jsonl` removes it from the file); ``torn="error"``
    raises a ValueError naming the line instead.
    """
    rows, torn_line = _parse_jsonl(Path(path))
    if torn_line is not None and torn == "error":
        raise ValueError(
            f"{path}, line {torn_line.number}: not valid JSON ({torn_line.error}); delete that "
            "line (a run interrupted while writing leaves one)"
        )
    return rows


def write_json(path: Path, content: dict[str, Any]) -> None:
    """Write strict JSON atomically, so a reader never sees half a file."""
    atomic_write_bytes(path, (schema.dumps(content, indent=2) + "\n").encode())


def truncate_jsonl(path: Path, last_epoch: int) -> str | None:
    """Keep the rows with epoch <= last_epoch (a resumed run rewrites what came after).

    Returns the text of a torn final line that was dropped (None when there was none), so
    the caller can say so.
    """
    rows, torn = _parse_jsonl(path)
    rows = [row for row in rows if row["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(schema.dumps(row) + "\n" for row in rows).encode())
    return None if torn is None else torn.text


def run_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that a run writes and that exist (orphaned temporaries too)."""
    found = [run_dir / name for name in LOG_NAMES]
    found.append(run_dir / "checkpoints" / CHECKPOINT_NAME)
    found += orphaned_temporaries(run_dir)
    found += sorted((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    return [path for path in found if path.is_file()]


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir/config.json`` was written by ``neuralcollapse train``."""
    try:
        config = json.loads((run_dir / "config.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"version", "dataset", "arch", "seed"} <= set(config)


def remove_run_files(run_dir: Path) -> None:
    """Delete the files a run writes (:func:`run_files`), and its folders if left empty."""
    for path in run_files(run_dir):
        path.unlink()
    for folder in (run_dir / "checkpoints", run_dir / TENSORBOARD_DIR):
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


def orphaned_temporaries(run_dir: Path) -> list[Path]:
    """Temporary files of atomic writes to the run's files that a kill left behind.

    :func:`neuralcollapse.atomic.atomic_write` names them ``.<name>.<random>.tmp`` beside
    the target; a kill during the write (before ``os.replace``) leaves them (issue 16).
    """
    found = []
    for name in LOG_NAMES:
        found += run_dir.glob(f".{name}.*.tmp")
    found += (run_dir / "checkpoints").glob(f".{CHECKPOINT_NAME}.*.tmp")
    return sorted(path for path in found if path.is_file())


def remove_orphaned_temporaries(run_dir: Path) -> list[Path]:
    """Delete :func:`orphaned_temporaries` (only one writer, rank 0, may call this)."""
    removed = orphaned_temporaries(run_dir)
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


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
