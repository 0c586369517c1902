"""The run directory: one owner of its file names, its version, its writer and its reader.

A run directory is the contract between whatever measures through training (``neuralcollapse
train``, :class:`~neuralcollapse.integrations.CollapseTracker`, the Lightning and Hugging Face
callbacks, ``neuralcollapse probe``) and whatever reads it (the report, the generalisation
table, resume). Every one of them goes through this module; no other module names the files.

Layout (docs/training.md)::

    RUN/config.json            every option, "version", and "source" (the writer)
    RUN/epochs.jsonl           one row per epoch
    RUN/metrics.jsonl          one row per (measured epoch, split, layer)
    RUN/metrics.csv            the same rows as metrics.jsonl
    RUN/summary.json           tpt_epoch, epochs_done, final, finished, generalisation
    RUN/spectra.jsonl          with --track-spectra: one spectral summary per tracked epoch
    RUN/agop.jsonl             with --track-agop: the feature ansatz per linear layer per
                               tracked epoch
    RUN/checkpoints/last.pt    written atomically (temporary file + os.replace)
    RUN/tensorboard/           event files, with --tensorboard

Rules the writer keeps (:class:`RunWriter`): it never appends to a directory that another
writer or another configuration made (it refuses, naming both, unless told to replace that
run); an epoch written again replaces the rows of that epoch and every later one (a resumed or
restarted loop, or a callback called twice within one epoch: the later call wins); every
JSON file is strict JSON (:mod:`neuralcollapse.schema`) and every whole-file write is atomic.
The reader (:func:`read_run`) checks the version and says what to do with another one.
"""

from __future__ import annotations

import csv
import io
import json
import pickle
import zipfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from neuralcollapse import schema
from neuralcollapse.atomic import atomic_write, atomic_write_bytes

#: the version of the layout and of the rows' meaning; bumped when either changes
VERSION = 1
CONFIG = "config.json"
EPOCHS = "epochs.jsonl"
METRICS = "metrics.jsonl"
METRICS_CSV = "metrics.csv"
SUMMARY = "summary.json"
#: one row per measured epoch of ``--track-spectra``: the full spectral summary
SPECTRA = "spectra.jsonl"
#: one row per measured epoch of ``--track-agop``: the neural feature ansatz of every linear
#: layer (Beaglehole et al. 2024)
AGOP = "agop.jsonl"
#: the logs with one row per epoch (or per tracked epoch): truncated together on resume
EPOCH_LOGS = (EPOCHS, METRICS, SPECTRA, AGOP)
CHECKPOINTS = "checkpoints"
CHECKPOINT_NAME = "last.pt"
TENSORBOARD_DIR = "tensorboard"
#: the files in RUN/ that a run writes (and that --overwrite may delete)
LOG_NAMES = (CONFIG, EPOCHS, METRICS, METRICS_CSV, SUMMARY, SPECTRA, AGOP)
#: the writer named in config.json's "source" when it names none (neuralcollapse train)
TRAIN_SOURCE = "train"


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


def _read_text(path: Path) -> str:
    """The text of a run file; bytes that are not UTF-8 (the run format writes nothing else)
    are a ValueError naming the file and the byte."""
    try:
        return path.read_text(encoding="utf-8")
    except UnicodeDecodeError as error:
        raise ValueError(
            f"{path} is not UTF-8 text ({error.reason} at byte {error.start}): the run format "
            "writes nothing else, so the file was damaged or written by another program; "
            "restore or delete it"
        ) from None


def _parse_jsonl(path: Path) -> tuple[list[dict[str, Any]], TornLine | None]:
    """The rows, and the torn final line (None when the file ends cleanly).

    Rows are appended one write at a time, so a crash mid-write can only tear the *last*
    line; an invalid line before it means the file was edited or damaged: an error that
    names the file and the line.
    """
    if not path.is_file():
        return [], None
    text = _read_text(path)  # universal newlines, as open(path) reads them
    lines = [(number, line) for number, line in enumerate(text.split("\n"), 1) if line.strip()]
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
    rows = [row for row in checked_rows(path, rows) if row["epoch"] <= last_epoch]
    atomic_write_bytes(path, "".join(schema.dumps(row) + "\n" for row in rows).encode())
    return None if torn is None else torn.text


def run_files(run_dir: Path) -> list[Path]:
    """The files of ``run_dir`` that a run writes and that exist (orphaned temporaries too)."""
    found = [run_dir / name for name in LOG_NAMES]
    found.append(run_dir / CHECKPOINTS / CHECKPOINT_NAME)
    found += orphaned_temporaries(run_dir)
    found += sorted((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))
    return [path for path in found if path.is_file()]


def is_run_dir(run_dir: Path) -> bool:
    """Whether ``run_dir/config.json`` was written by ``neuralcollapse train``."""
    try:
        config = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return isinstance(config, dict) and {"version", "dataset", "arch", "seed"} <= set(config)


def remove_run_files(run_dir: Path) -> None:
    """Delete the files a run writes (:func:`run_files`), and its folders if left empty."""
    for path in run_files(run_dir):
        path.unlink()
    for folder in (run_dir / CHECKPOINTS, run_dir / TENSORBOARD_DIR):
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
    found += (run_dir / CHECKPOINTS).glob(f".{CHECKPOINT_NAME}.*.tmp")
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
    final = run_dir / CHECKPOINTS / CHECKPOINT_NAME
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
    path = run_dir / CHECKPOINTS / CHECKPOINT_NAME
    if path.exists() and not path.is_file():
        raise ValueError(f"cannot resume: {path} is not a file; remove it and train afresh")
    if not path.is_file():
        raise FileNotFoundError(
            f"nothing to resume: {path} does not exist; start the run without --resume"
        )
    # torch.save writes a zip archive: anything else (an empty, truncated or overwritten
    # file) was not written by this package, and torch.load would fail with EOFError or a
    # misleading unpickling error
    if not zipfile.is_zipfile(path):
        raise ValueError(
            f"cannot resume: {path} is not a PyTorch checkpoint (empty, truncated or "
            "overwritten); train afresh (--overwrite, or another --out)"
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except RuntimeError as error:
        if "PytorchStreamReader" not in str(error):  # only a damaged archive is the user's
            raise
        raise ValueError(
            f"cannot resume: {path} is damaged ({str(error).splitlines()[0]}); train afresh "
            "(--overwrite, or another --out)"
        ) from None
    except pickle.UnpicklingError as error:
        raise UnsafeCheckpoint(
            f"refusing to resume from {path}: it holds objects that only a full unpickle "
            "can rebuild, and unpickling a file can run arbitrary code. Checkpoints written "
            f"by neuralcollapse load without that. Delete {path} and train afresh "
            f"(--overwrite, or another --out). Detail: {str(error).splitlines()[0]}"
        ) from None


# ----------------------------------------------------------------------------- the reader


def source_of(config: Mapping[str, Any]) -> str:
    """Which writer made a run: config.json's ``"source"`` (``"train"`` when absent)."""
    return str(config.get("source", TRAIN_SOURCE))


def check_version(config: Mapping[str, Any], path: Path) -> None:
    """A run's config.json must carry this module's :data:`VERSION`; say what to do if not."""
    version = config.get("version")
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(
            f'{path / CONFIG} has no integer run-format "version" (got {version!r}), so it was '
            "not written by neuralcollapse; point to a run directory that neuralcollapse wrote"
        )
    if version > VERSION:
        raise ValueError(
            f"{path} is in run format {version}, newer than this neuralcollapse reads "
            f"({VERSION}); upgrade neuralcollapse (pip install -U neuralcollapse) to read it"
        )
    if version < VERSION:
        raise ValueError(
            f"{path} is in run format {version}, older than this neuralcollapse's ({VERSION}); "
            "read it with the release that wrote it, or train the run again"
        )


def read_config(run_dir: Path) -> dict[str, Any] | None:
    """config.json of ``run_dir`` (None when missing), after :func:`check_version`."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    if not path.is_file():
        raise ValueError(f"{path} is not a file; a run's {CONFIG} is a JSON file: remove it")
    config = _json_object(path, "rewrite or delete it")
    check_version(config, Path(run_dir))
    return config


def _json_object(path: Path, fix: str) -> dict[str, Any]:
    """The JSON object in ``path``, or a ValueError naming the file and ``fix``."""
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not valid JSON ({error}); {fix}") from None
    if not isinstance(value, dict):
        raise ValueError(f"{path} must hold a JSON object; got {type(value).__name__}")
    return value


@dataclass(frozen=True)
class RunFiles:
    """What a run directory holds, as written (non-finite values still as their strings).

    ``config`` and ``summary`` are None and ``epochs`` empty when their file is missing (a
    run in progress, or one whose summary was lost, can still be read).
    """

    path: Path
    config: dict[str, Any] | None
    epochs: list[dict[str, Any]]
    metrics: list[dict[str, Any]]
    summary: dict[str, Any] | None
    #: spectra.jsonl's rows (``train --track-spectra``), empty without
    spectra: list[dict[str, Any]] = field(default_factory=list)
    #: agop.jsonl's rows (``train --track-agop``), empty without
    agop: list[dict[str, Any]] = field(default_factory=list)


def read_run(run_dir: str | Path, *, torn: str = "error") -> RunFiles:
    """Read a run directory: config (version checked), epochs, metrics, summary.

    Rows of the logs must be JSON objects with an integer ``epoch`` (a row whose epoch is a
    string, say, is named with its file and line). ``torn`` as in :func:`read_jsonl`.
    """
    directory = Path(run_dir)
    config = read_config(directory)
    epochs = checked_rows(directory / EPOCHS, read_jsonl(directory / EPOCHS, torn=torn))
    metrics = checked_rows(directory / METRICS, read_jsonl(directory / METRICS, torn=torn))
    summary = None
    if (directory / SUMMARY).is_file():
        summary = _checked_summary(
            directory / SUMMARY,
            _json_object(directory / SUMMARY, "delete it (the report reads the logs without it)"),
        )
    spectra = checked_rows(directory / SPECTRA, read_jsonl(directory / SPECTRA, torn=torn))
    agop = checked_rows(directory / AGOP, read_jsonl(directory / AGOP, torn=torn))
    return RunFiles(directory, config, epochs, metrics, summary, spectra, agop)


#: the row keys whose values are names (strings)
_NAME_KEYS = ("split", "layer")
#: the summary keys whose values are epochs (or null)
_SUMMARY_EPOCH_KEYS = ("tpt_epoch", "epochs_done")
_EDITED = "the file was edited or written by another program; fix or delete that row"


def _is_number(value: Any) -> bool:
    """A metric's value as the run format writes it: a number, null (not computed), or one
    of the schema's strings for a non-finite float."""
    value = schema.decode_value(value)
    return value is None or isinstance(value, (int, float))


def _is_epoch(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def checked_rows(path: Path, rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows, each with an integer ``epoch`` >= 0, its metrics and columns numbers and its
    split and layer names (a bad one named with its row)."""
    rows = list(rows)
    numeric = schema.all_keys()
    for number, row in enumerate(rows, 1):
        if "epoch" not in row:
            raise ValueError(
                f"{path}, row {number}: missing key(s) ['epoch']; each row of the run format "
                "carries its epoch"
            )
        epoch = row["epoch"]
        if not _is_epoch(epoch):
            kind = "an integer" if isinstance(epoch, bool) or not isinstance(epoch, int) else ">= 0"
            raise ValueError(
                f'{path}, row {number}: "epoch" must be {kind}; got {epoch!r}. The run format '
                f"writes integers >= 0: {_EDITED}"
            )
        for key in _NAME_KEYS:
            if key in row and not isinstance(row[key], str):
                raise ValueError(
                    f'{path}, row {number}: "{key}" must be a string (a name); got '
                    f"{row[key]!r}: {_EDITED}"
                )
        for key, value in row.items():
            if key in numeric and not _is_number(value):
                raise ValueError(
                    f'{path}, row {number}: "{key}" must be a number or null; got {value!r}: '
                    f"{_EDITED}"
                )
    return rows


def _checked_summary(path: Path, summary: dict[str, Any]) -> dict[str, Any]:
    """summary.json with its epochs integers (or null)."""
    for key in _SUMMARY_EPOCH_KEYS:
        if summary.get(key) is not None and not _is_epoch(summary[key]):
            raise ValueError(
                f'{path}: "{key}" must be an integer >= 0 or null; got {summary[key]!r}: the '
                "file was edited or written by another program; delete it (the report reads "
                "the logs without it)"
            )
    return summary


# ----------------------------------------------------------------------------- the writer


#: config.json keys that may differ when a writer continues a run (they do not change rows)
_VOLATILE_KEYS = frozenset({"version", "stop_after_epoch", "progress", "overwrite"})


def _comparable(config: Mapping[str, Any]) -> dict[str, Any]:
    # through strict JSON, so a tuple and a list (or a NumPy number and a float) compare equal
    plain = json.loads(schema.dumps(dict(config)))
    return {k: v for k, v in plain.items() if k not in _VOLATILE_KEYS}


class RunWriter:
    """The one writer of a run directory's logs and summary.

    Open it with :meth:`create` (a new run; refuses an existing one unless ``overwrite``),
    :meth:`resume` (``neuralcollapse train --resume``: rows after the checkpoint's epoch are
    dropped) or :meth:`attach` (a tracker: continues a run it made with the same
    configuration, refuses anyone else's). Then :meth:`write_epoch` per epoch,
    :meth:`write_summary` and :meth:`write_csv`.
    """

    def __init__(self, run_dir: Path, last_epoch: int | None) -> None:
        self.run_dir = Path(run_dir)
        #: the last epoch in epochs.jsonl (None: none yet)
        self.last_epoch = last_epoch

    # -- opening

    @classmethod
    def create(
        cls, run_dir: str | Path, config: Mapping[str, Any], *, overwrite: bool = False
    ) -> RunWriter:
        """A fresh run in ``run_dir``: config.json written, no rows.

        An existing run there is refused unless ``overwrite``; then only the files a run
        writes are deleted (:func:`run_files`), and only when config.json says the folder
        holds a run of neuralcollapse's: anything else in it (notes, other checkpoints) stays.
        """
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise ValueError(f"{run_dir} is a file, not a folder; choose another directory")
        existing = run_files(run_dir)
        if existing and not overwrite:
            names = ", ".join(str(path.relative_to(run_dir)) for path in existing)
            raise ValueError(
                f"{run_dir} already holds a run ({names}); pass --resume to "
                "continue it, --overwrite to replace it, or choose another --out"
            )
        if existing and not _written_by_us(run_dir):
            names = ", ".join(str(path.relative_to(run_dir)) for path in existing)
            raise ValueError(
                f"{run_dir} holds files named like a run's ({names}) but no config.json written "
                "by neuralcollapse, so --overwrite will not delete them; choose another "
                "--out or remove them yourself"
            )
        remove_run_files(run_dir)
        run_dir.mkdir(parents=True, exist_ok=True)
        write_json(run_dir / CONFIG, {**config, "version": VERSION})
        return cls(run_dir, None)

    @classmethod
    def resume(cls, run_dir: str | Path, checkpoint_epoch: int) -> tuple[RunWriter, list[str]]:
        """Continue a run from its checkpoint: rows after ``checkpoint_epoch`` are dropped.

        Returns the writer and a message per torn last line that was dropped (a run killed
        while writing leaves one; its epoch is recomputed).
        """
        run_dir = Path(run_dir)
        read_config(run_dir)  # the version
        notes = []
        for name in EPOCH_LOGS:
            if not (run_dir / name).is_file():
                continue
            torn = truncate_jsonl(run_dir / name, checkpoint_epoch)
            if torn is not None:
                shown = torn if len(torn) <= 60 else torn[:57] + "..."
                notes.append(
                    f"resume: dropped the torn last line of {run_dir / name} (a run killed "
                    f"while writing leaves one; its epoch is recomputed): {shown}"
                )
        return cls(run_dir, checkpoint_epoch if checkpoint_epoch else None), notes

    @classmethod
    def attach(
        cls, run_dir: str | Path, config: Mapping[str, Any], *, overwrite: bool = False
    ) -> RunWriter:
        """Write into ``run_dir`` as the writer ``config["source"]`` with this ``config``.

        A new or empty directory starts a run. A run that the same writer made with the same
        configuration is continued (a restarted loop). Anything else is refused, naming who
        wrote it, so a tracker pointed at a training run can never touch its rows; with
        ``overwrite=True`` that run is replaced by a new one instead.
        """
        run_dir = Path(run_dir)
        if run_dir.exists() and not run_dir.is_dir():
            raise ValueError(f"run_dir {run_dir} is a file; choose a directory")
        existing_files = run_files(run_dir)
        if not existing_files:
            return cls.create(run_dir, config)
        existing = read_config(run_dir) if (run_dir / CONFIG).is_file() else None
        theirs = None if existing is None else _comparable(existing)
        ours = _comparable(config)
        if theirs == ours:
            epochs = read_jsonl(run_dir / EPOCHS)
            return cls(run_dir, epochs[-1]["epoch"] if epochs else None)
        if overwrite:
            return cls.create(run_dir, config, overwrite=True)
        if existing is None:
            who = "another program (no config.json)"
        elif source_of(existing) != source_of(config):
            who = f"`{_describe_source(source_of(existing))}`"
        else:
            changed = sorted(
                key for key in theirs.keys() | ours.keys() if theirs.get(key) != ours.get(key)
            )
            who = f"{_describe_source(source_of(config))} with another configuration " + (
                f"({', '.join(changed[:5])} differ)"
            )
        raise ValueError(
            f"{run_dir} already holds a run written by {who}; writing here would mix its rows "
            "with this one's. Choose another run_dir, or pass overwrite=True to replace that run"
        )

    # -- writing

    def write_epoch(
        self, epoch: int, epoch_row: Mapping[str, Any], metric_rows: Iterable[Mapping[str, Any]]
    ) -> None:
        """Append one epoch's row and its metric rows.

        An epoch at or before the last one written replaces the rows from that epoch on
        (the later call wins), so a log never holds an epoch twice.
        """
        if self.last_epoch is not None and epoch <= self.last_epoch:
            for name in EPOCH_LOGS:
                if (self.run_dir / name).is_file():
                    truncate_jsonl(self.run_dir / name, epoch - 1)
        append_jsonl(self.run_dir / EPOCHS, dict(epoch_row))
        for row in metric_rows:
            append_jsonl(self.run_dir / METRICS, dict(row))
        self.last_epoch = epoch

    def write_spectra(self, epoch: int, summary: Mapping[str, Any]) -> None:
        """Append an epoch's spectral summary to spectra.jsonl (after its write_epoch)."""
        append_jsonl(self.run_dir / SPECTRA, {"epoch": epoch, **summary})

    def write_agop(self, epoch: int, row: Mapping[str, Any]) -> None:
        """Append an epoch's feature-ansatz row to agop.jsonl (after its write_epoch)."""
        append_jsonl(self.run_dir / AGOP, {"epoch": epoch, **row})

    def epochs(self) -> list[dict[str, Any]]:
        """The rows of epochs.jsonl as written so far."""
        return read_jsonl(self.run_dir / EPOCHS)

    def write_summary(
        self,
        *,
        tpt_epoch: int | None,
        epochs_done: int,
        final: Mapping[str, Any],
        finished: bool,
        **extra: Any,
    ) -> None:
        """summary.json: the first zero-error epoch, epochs done, the last epoch row, whether
        the run finished, and what the writer adds (``generalisation``, ``stopped``)."""
        write_json(
            self.run_dir / SUMMARY,
            {
                "tpt_epoch": tpt_epoch,
                "epochs_done": epochs_done,
                "final": dict(final),
                "finished": finished,
                **extra,
            },
        )

    def write_csv(self) -> None:
        """metrics.csv from metrics.jsonl."""
        write_csv_from_jsonl(self.run_dir / METRICS, self.run_dir / METRICS_CSV)


_SOURCES = {TRAIN_SOURCE: "neuralcollapse train", "probe": "neuralcollapse probe"}


def _describe_source(source: str) -> str:
    return _SOURCES.get(source, source)


def _written_by_us(run_dir: Path) -> bool:
    """Whether config.json says neuralcollapse wrote this folder (any of its writers)."""
    try:
        config = json.loads((run_dir / CONFIG).read_text())
    except (OSError, ValueError):
        return False
    return (
        isinstance(config, dict)
        and "version" in config
        and ("source" in config or is_run_dir(run_dir))
    )
