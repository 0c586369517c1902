"""What the Lightning and Hugging Face callbacks share: the optional import, the scalars.

**What is logged.** Every measurement writes the full set of metrics into the run directory
(``run_dir=``, :class:`~neuralcollapse.integrations.CollapseTracker`); the loggers get the
``metrics=`` the caller chose, by metric key (``"nc1"``) or group name (:data:`METRIC_GROUPS`:
``"NC1"`` ... ``"NC5"``, ``"GNC2"``, ``"UNC3"``, ``"default"``, ``"all"``). The default
(:data:`DEFAULT_METRICS`) is one number per collapse property:

- NC1 ``nc1`` (within- over between-class variability);
- NC2 ``etf_gap_means`` and ``etf_gap_weights`` (distance of the class means and of the
  classifier rows from a simplex ETF);
- NC3 ``self_duality`` (classifier against the class means);
- NC4 ``ncc_mismatch`` (classifier against the nearest class centre).

Names are :func:`neuralcollapse.schema.scalar_logs`'s ``nc/<split>/<layer>/<metric>``.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Iterable, Mapping
from types import ModuleType

from neuralcollapse import schema
from neuralcollapse.integrations.model_metrics import ModelCollapse

#: one scalar per collapse property: nc1 (NC1), etf_gap_means and etf_gap_weights (NC2),
#: self_duality (NC3), ncc_mismatch (NC4)
DEFAULT_METRICS: tuple[str, ...] = (
    schema.NC1,
    schema.ETF_GAP_MEANS,
    schema.ETF_GAP_WEIGHTS,
    schema.SELF_DUALITY,
    schema.NCC_MISMATCH,
)

# the measured keys in the schema's order, which runs NC1, NC2, NC3, NC4, then the later
# measures; the groups are spans of it between the schema's named keys (no key spelt here)
_MEASURED = tuple(key for key in schema.METRICS if key not in schema.SIZE_KEYS)


def _span(first: str, last: str) -> tuple[str, ...]:
    return _MEASURED[_MEASURED.index(first) : _MEASURED.index(last) + 1]


_NC1 = _MEASURED[: _MEASURED.index(schema.PAIRED_KEYS[0][0])]
_NC2 = _span(schema.PAIRED_KEYS[0][0], schema.GLOBAL_MEAN_RATIO)
_NC3 = (schema.SELF_DUALITY, schema.SELF_DUALITY_UNCENTRED)
_NC4 = _span(schema.NCC_MISMATCH, schema.ACCURACY)
_NC5 = tuple(key for key in _MEASURED if schema.METRICS[key].needs == "ood")
_GNC2 = schema.UNIFORMITY_KEYS
_UNC3 = tuple(key for key in _MEASURED if key not in {*_NC1, *_NC2, *_NC3, *_NC4, *_NC5, *_GNC2})

#: group name -> metric keys (docs/integrations.md has the table). Upper-case names, so a
#: group never shadows a metric key ("NC1" is the group, "nc1" the metric); every metric
#: of the schema is in exactly one of the NC, GNC2 and UNC3 groups.
METRIC_GROUPS: dict[str, tuple[str, ...]] = {
    "NC1": _NC1,
    "NC2": _NC2,
    "NC3": _NC3,
    "NC4": _NC4,
    "NC5": _NC5,
    "GNC2": _GNC2,
    "UNC3": _UNC3,
    "default": DEFAULT_METRICS,
    "all": _MEASURED,
}


def resolve_metrics(metrics: str | Iterable[str] | None) -> tuple[str, ...]:
    """The metric keys that ``metrics`` names (keys and groups, in the order given).

    None means :data:`DEFAULT_METRICS`; a string is one name or a comma-separated list.
    An unknown name is an error that lists the closest names.
    """
    if metrics is None:
        return DEFAULT_METRICS
    if isinstance(metrics, str):
        metrics = [name.strip() for name in metrics.split(",") if name.strip()]
    names = list(metrics)
    if not names:
        raise ValueError("metrics= is empty: name at least one metric or group (e.g. 'default')")
    keys: dict[str, None] = {}
    for name in names:
        if not isinstance(name, str):
            raise ValueError(f"metrics= takes names (strings); got {type(name).__name__}")
        if name in METRIC_GROUPS:
            keys.update(dict.fromkeys(METRIC_GROUPS[name]))
        elif name in schema.METRICS and name not in schema.SIZE_KEYS:
            keys[name] = None
        else:
            choices = [*METRIC_GROUPS, *(k for k in schema.METRICS if k not in schema.SIZE_KEYS)]
            close = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
            hint = f" (did you mean {', '.join(repr(c) for c in close)}?)" if close else ""
            raise ValueError(
                f"unknown metric or group {name!r} in metrics={names!r}{hint}; groups: "
                f"{', '.join(METRIC_GROUPS)}; metric keys: docs/metrics.md"
            )
    return tuple(keys)


def require(module: str, feature: str, extra: str) -> ModuleType:
    """Import ``module`` or say which package (and which extra of ours) brings it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        raise ModuleNotFoundError(
            f"{feature} needs the {extra} package: pip install {extra} "
            f"(or pip install 'neuralcollapse[{extra}]')",
            name=error.name,
        ) from error


def logged_scalars(
    results: Mapping[str, ModelCollapse | str], keys: Iterable[str] | None = None
) -> dict[str, float]:
    """``nc/<split>/<layer>/<key>`` for every split that could be measured.

    ``keys``: the metric keys to log (:func:`resolve_metrics`); default every one.
    """
    wanted = None if keys is None else tuple(keys)
    scalars: dict[str, float] = {}
    for split, result in results.items():
        if isinstance(result, ModelCollapse):
            scalars.update(schema.scalar_logs(result, split=split, keys=wanted))
    return scalars
