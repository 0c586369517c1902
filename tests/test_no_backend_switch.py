"""Importing any module of the package leaves the user's matplotlib backend as it was."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import importlib, pkgutil, matplotlib
matplotlib.use("svg")
import neuralcollapse
for module in pkgutil.walk_packages(neuralcollapse.__path__, "neuralcollapse."):
    if module.name.endswith(("lightning", "huggingface")):
        try:
            importlib.import_module(module.name)
        except ModuleNotFoundError:  # an optional extra that is not installed
            continue
    else:
        importlib.import_module(module.name)
    assert matplotlib.get_backend() == "svg", module.name
print("ok")
"""


def test_importing_every_module_keeps_the_backend():
    completed = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=300
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    assert completed.stdout.strip() == "ok"
