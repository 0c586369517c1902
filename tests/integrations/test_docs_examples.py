"""Every ```python block of docs/integrations.md runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOC = Path(__file__).parents[2] / "docs" / "integrations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_document_has_an_example_for_each_entry_point():
    text = "\n".join(BLOCKS)
    for name in ("measure_model(", "CollapseTracker(", "lightning import", "huggingface import"):
        assert name in text, name


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    block = BLOCKS[index]
    if "lightning" in block:
        pytest.importorskip("lightning")
    if "transformers" in block:
        pytest.importorskip("transformers")
    exec(compile(block, f"{DOC.name} example {index + 1}", "exec"), {"__name__": "__doc_example__"})
    assert capsys.readouterr().out.strip()  # every example prints what it measured
