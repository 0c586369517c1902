"""All-or-nothing file writes: a reader (or a crash) never sees half a file.

The content goes to a temporary file in the target's folder, is flushed to disk, and
replaces the target with ``os.replace`` (atomic on POSIX and Windows when both are on one
file system). Checkpoints, run logs and saved statistics all go through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def _readable_by_all(temporary: str) -> None:
    # mkstemp creates 0600 files; give the final file the permissions open() would
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(temporary, 0o666 & ~umask)


def atomic_write(path: str | os.PathLike, write: Callable[[BinaryIO], object]) -> Path:
    """Call ``write(stream)`` on a temporary file, fsync it, then rename it onto ``path``.

    On any error (or interruption) the temporary file is removed and an existing ``path``
    is left as it was. Returns ``path`` as a :class:`~pathlib.Path`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        _readable_by_all(temporary)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, payload: bytes) -> Path:
    """Write ``payload`` to ``path`` atomically (see :func:`atomic_write`)."""
    return atomic_write(path, lambda stream: stream.write(payload))
