"""One checker for scalar arguments (integers and floats), with one message style.

Every public entry point that takes a count, a size or a hyperparameter checks it here, so
the same value is accepted everywhere (Python and NumPy scalars alike: ``np.int64(3)`` from an
array is as good as ``3``) and refused with the same kind of message::

    {name} must be an integer >= 1 (meaning), or None (automatic); got 0. Hint.
    {name} must be a finite number > 0; got nan. Hint.

``bool`` is refused although it is an ``int`` subclass: ``True`` passed as a size is a bug.
NaN is always refused (no bound holds for it); infinities unless ``finite=False``.

A value of the wrong type (a string, ``None``, ``True``, a float where a count belongs)
raises :class:`ArgumentTypeError`, a ``TypeError``; a number out of its bounds raises
``ValueError``. ``ArgumentTypeError`` is also a ``ValueError``, so code written against the
earlier ``ValueError`` keeps working.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

__all__ = ["ArgumentTypeError", "check_float", "check_int"]


class ArgumentTypeError(TypeError, ValueError):
    """An argument of the wrong type (a TypeError; also a ValueError, as it used to be)."""


def _is_integer(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_))


def _message(
    name: str, kind: str, bounds: str, value: object, meaning: str, alternative: str, hint: str
) -> str:
    text = f"{name} must be {kind}{bounds}"
    if meaning:
        text += f" ({meaning})"
    if alternative:
        text += f", {alternative}"
    text += f"; got {value!r}"
    return f"{text}. {hint}" if hint else text


def _integer_bounds(minimum: int | None, maximum: int | None) -> str:
    if minimum is not None and maximum is not None:
        return f" in [{minimum}, {maximum}]"
    if minimum is not None:
        return f" >= {minimum}"
    if maximum is not None:
        return f" <= {maximum}"
    return ""


def check_int(
    name: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    meaning: str = "",
    alternative: str = "",
    hint: str = "",
) -> int:
    """``value`` as a Python ``int`` in ``[minimum, maximum]`` (either bound optional).

    Accepts ``int`` and NumPy integer scalars, refuses ``bool``, floats (even ``3.0``: a
    float where a count belongs is usually a computation gone wrong) and everything else,
    with a ``ValueError`` naming the argument:
    ``"{name} must be an integer >= {minimum} ({meaning}), {alternative}; got {value!r}. {hint}"``.

    ``name`` may carry the paper's symbol, e.g. ``"per_class (n)"``; ``meaning`` says what
    the number counts; ``alternative`` names another accepted value the caller handles
    itself (``"or None (automatic)"``); ``hint`` says how to fix it.
    """
    bounds = _integer_bounds(minimum, maximum)
    message = _message(name, "an integer", bounds, value, meaning, alternative, hint)
    if not _is_integer(value):
        raise ArgumentTypeError(message)
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise ValueError(message)
    return int(value)


def check_float(
    name: str,
    value: object,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    strict: bool | tuple[bool, bool] = False,
    finite: bool = True,
    meaning: str = "",
    alternative: str = "",
    hint: str = "",
) -> float:
    """``value`` as a Python ``float`` within the given bounds.

    Accepts Python and NumPy integer and float scalars, refuses ``bool``, strings and
    everything else. NaN is always refused; ``inf`` / ``-inf`` too unless ``finite=False``.
    ``strict=True`` makes the bounds exclusive (``> minimum``, ``< maximum``), e.g.
    ``check_float("lr", lr, minimum=0, strict=True)`` for a positive step size; a pair
    ``(strict_minimum, strict_maximum)`` sets each end, e.g. ``minimum=0, maximum=1,
    strict=(False, True)`` for [0, 1). The message:
    ``"{name} must be a finite number > {minimum} ({meaning}); got {value!r}. {hint}"``.
    """
    strict_low, strict_high = strict if isinstance(strict, tuple) else (strict, strict)
    low, high = (">" if strict_low else ">="), ("<" if strict_high else "<=")
    if minimum is not None and maximum is not None:
        opening, closing = ("(" if strict_low else "["), (")" if strict_high else "]")
        bounds = f" in {opening}{minimum:g}, {maximum:g}{closing}"
    elif minimum is not None:
        bounds = f" {low} {minimum:g}"
    elif maximum is not None:
        bounds = f" {high} {maximum:g}"
    else:
        bounds = ""
    kind = "a finite number" if finite else "a number (not NaN)"
    message = _message(name, kind, bounds, value, meaning, alternative, hint)
    is_number = isinstance(value, (numbers.Real, np.integer, np.floating)) and not isinstance(
        value, (bool, np.bool_)
    )
    if not is_number:
        raise ArgumentTypeError(message)
    number = float(value)  # type: ignore[arg-type]
    if math.isnan(number) or (finite and math.isinf(number)):
        raise ValueError(message)
    if minimum is not None and (number <= minimum if strict_low else number < minimum):
        raise ValueError(message)
    if maximum is not None and (number >= maximum if strict_high else number > maximum):
        raise ValueError(message)
    return number
