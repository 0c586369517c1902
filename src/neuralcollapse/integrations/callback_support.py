"""What the Lightning and Hugging Face callbacks share: the optional import, the scalars."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType

from neuralcollapse import schema
from neuralcollapse.integrations.model_metrics import ModelCollapse


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


def logged_scalars(results: Mapping[str, ModelCollapse | str]) -> dict[str, float]:
    """``nc/<split>/<layer>/<key>`` for every split that could be measured."""
    scalars: dict[str, float] = {}
    for split, result in results.items():
        if isinstance(result, ModelCollapse):
            scalars.update(schema.scalar_logs(result, split=split))
    return scalars
