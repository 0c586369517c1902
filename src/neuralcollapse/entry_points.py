"""``package.module:attribute`` specifications: the user's own factories, by name.

The command line takes the user's code this way (``probe --model``, ``probe --data``,
``train --data``); one loader gives every one of them the same rules and messages.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any


def load_entry_point(spec: str, what: str) -> Any:
    """``package.module:attribute`` -> the attribute (a factory), with a clear error.

    Like ``python -m`` and other entry-point loaders, the working directory is importable.
    """
    if not isinstance(spec, str):
        raise TypeError(f"{what} must be a string MODULE:FACTORY; got {type(spec).__name__}")
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise ValueError(
            f"{what} must be MODULE:FACTORY (e.g. mypkg.models:make_net); got {spec!r}"
        )
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        raise ValueError(
            f"cannot import {module_name!r} for {what} ({error}); is it on PYTHONPATH?"
        ) from error
    if not hasattr(module, attribute):
        raise ValueError(f"{module_name} has no {attribute!r} (from {what} {spec!r})")
    return getattr(module, attribute)


def required_arguments(target: Any) -> list[str] | None:
    """The parameters a call of ``target`` with no arguments would miss; None when Python
    cannot tell (a builtin without a signature, such as ``os.system``)."""
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return None
    return [
        name
        for name, parameter in signature.parameters.items()
        if parameter.default is parameter.empty
        and parameter.kind not in (parameter.VAR_POSITIONAL, parameter.VAR_KEYWORD)
    ]
