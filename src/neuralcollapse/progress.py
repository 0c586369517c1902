"""Progress output: tqdm bars on a terminal, one line per stage when output is not one.

``make demo > log`` used to fill the log with hundreds of lines of nested bars; a bar is only
worth drawing where someone watches it.
"""

from __future__ import annotations

import sys


def interactive() -> bool:
    """Whether progress goes to a terminal (stderr, where tqdm writes)."""
    return bool(getattr(sys.stderr, "isatty", lambda: False)())


def bar_disabled(enabled: bool) -> bool | None:
    """tqdm's ``disable=``: off when not wanted, and off on a non-terminal (tqdm's None)."""
    return None if enabled else True


def stage_line(message: str, enabled: bool = True) -> None:
    """One line for a finished stage, written only where no bar is drawn."""
    if enabled and not interactive():
        print(message, file=sys.stderr, flush=True)
