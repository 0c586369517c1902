"""Numbers and phrases of the report's captions: values, percentages, factors, trends."""

from __future__ import annotations

from collections.abc import Sequence

from neuralcollapse.viz.style import nice_number


def _num(value: float | None) -> str:
    return "—" if value is None else nice_number(value)


def _percent(value: float | None) -> str:
    return "—" if value is None else f"{nice_number(100 * value)}%"


def _factor(first: float, last: float) -> str:
    """ "÷88" when ``last`` is 88 times smaller, "×2.1" when larger, "×1" when equal."""
    if first == last:
        return "×1"
    if last == 0:
        return "to 0"
    if first == 0:
        return "from 0"
    ratio = first / last
    return f"÷{nice_number(ratio)}" if ratio > 1 else f"×{nice_number(1 / ratio)}"


def _join(parts: Sequence[str], word: str = "and") -> str:
    parts = list(parts)
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + f" {word} " + parts[-1]


def _trend(series: Sequence[tuple[int, float]]) -> tuple[str, float, float] | None:
    """("falls" | "rises" | "is flat", first, last) of a series, None with fewer than 2 points."""
    if len(series) < 2:
        return None
    first, last = series[0][1], series[-1][1]
    if last < first:
        return "falls", first, last
    if last > first:
        return "rises", first, last
    return "is flat", first, last


def _trend_phrase(series: Sequence[tuple[int, float]], *, factor: bool = True) -> str | None:
    """ "falls ÷3.2 from 0.4 (epoch 1) to 0.125 (epoch 11)", None with fewer than 2 points."""
    trend = _trend(series)
    if trend is None:
        return None
    word, first, last = trend
    change = f" {_factor(first, last)}" if factor and word != "is flat" else ""
    return (
        f"{word}{change} from {_num(first)} (epoch {series[0][0]}) to {_num(last)} "
        f"(epoch {series[-1][0]})"
    )
