"""No module of the package is hidden by a function its package exports under the same name."""

from __future__ import annotations

import importlib
import pkgutil
import types

import neuralcollapse


def test_every_submodule_attribute_of_its_package_is_the_module_itself():
    shadowed = []
    for info in pkgutil.walk_packages(neuralcollapse.__path__, "neuralcollapse."):
        if info.name.endswith(("lightning", "huggingface")):
            continue  # optional extras; they export nothing under their own names
        module = importlib.import_module(info.name)
        parent_name, _, child = info.name.rpartition(".")
        parent = importlib.import_module(parent_name)
        attribute = getattr(parent, child, module)
        if not isinstance(attribute, types.ModuleType) or attribute is not module:
            shadowed.append(info.name)
    assert shadowed == []
