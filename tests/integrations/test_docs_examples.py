"""Every ```python block of docs/integrations.md runs as written.

A block that needs a package the tests do not install (``wandb``) is skipped with that
reason. The DDP recipe (its first line names ``torchrun``) is saved as a script and run
under ``torch.distributed.run`` with two gloo processes. The ``torch.compile`` recipe runs
with ``torch.compile``'s ``eager`` backend: the default (inductor) compiles C++ for ~20 s on
the test machine, and the wrapper, its ``_orig_mod.`` names and the hooks are the same.
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

DOC = Path(__file__).parents[2] / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)

#: package a block imports -> the module to look for
_OPTIONAL = {
    "lightning": "lightning",
    "transformers": "transformers",
    "tensorboard": "tensorboard",
    "torchmetrics": "torchmetrics",
    "wandb": "wandb",
}


def _title(block: str) -> str:
    return block.strip().splitlines()[0][:60]


def _imports(block: str, package: str) -> bool:
    if package == "wandb":  # also through Lightning's WandbLogger
        return "wandb" in block.lower()
    return re.search(rf"^\s*(from|import)\s+{package}\b", block, flags=re.M) is not None


def test_the_document_has_an_example_for_each_entry_point_and_recipe():
    text = "\n".join(BLOCKS)
    for name in (
        "measure_model(",
        "CollapseTracker(",
        "CollapseMetric(",
        "lightning import",
        "huggingface import",
        "class ResNet",
        "BertForSequenceClassification",
        "ViTForImageClassification",
        "GPT2LMHeadModel",
        "TensorBoardLogger",
        "WandbLogger",
        'eval_strategy="no"',
        'eval_strategy="epoch"',
        "torch.compile(",
        "torchrun",
        "torch.bfloat16",
    ):
        assert name in text, name


def _skip_without_packages(block: str) -> None:
    for package, module in _OPTIONAL.items():
        if _imports(block, package) and importlib.util.find_spec(module) is None:
            pytest.skip(f"the recipe needs {package}, which the tests do not install")


@pytest.mark.parametrize("index", range(len(BLOCKS)), ids=lambda i: f"block{i + 1}")
def test_example_runs(index, tmp_path, monkeypatch, capsys):
    block = BLOCKS[index]
    _skip_without_packages(block)
    if "torchrun" in block.splitlines()[0]:
        pytest.skip("run under torchrun by test_ddp_recipe_runs_under_torchrun")
    monkeypatch.chdir(tmp_path)
    if "torch.compile(" in block:
        monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="eager"))
    name = f"{DOC.name} example {index + 1} ({_title(block)})"
    exec(compile(block, name, "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()  # every example prints what it measured


def _ddp_block() -> str:
    (block,) = [b for b in BLOCKS if "torchrun" in b.splitlines()[0]]
    return block


@pytest.mark.slow
def test_ddp_recipe_runs_under_torchrun(tmp_path):
    pytest.importorskip("torchmetrics")
    script = tmp_path / "ddp_recipe.py"
    script.write_text(_ddp_block())
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).parents[2])}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        str(script),
    ]
    done = subprocess.run(
        command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=240
    )
    assert done.returncode == 0, done.stderr[-3000:]
    samples = re.search(r"samples (\d+) (\d+)", done.stdout)
    values = re.search(r"nc1 (\S+) (\S+) (\S+)", done.stdout)
    assert samples and values, done.stdout
    # both routes saw each of the 300 samples once, over the two ranks
    assert samples.groups() == ("300", "300")
    two_pass, one_pass, single = (float(v) for v in values.groups())
    assert two_pass == pytest.approx(single, rel=1e-10)
    assert one_pass == pytest.approx(single, rel=1e-10)
