"""The report's AGOP section (``neuralcollapse train --track-agop``): the feature ansatz by
depth beside the NC1 of each linear layer's input.

The fake runs are :func:`write_fake_run`'s with an agop.jsonl written as the training loop
writes it; expected numbers are read back from the files, not from the module under test."""

from __future__ import annotations

import json
import re

import pytest

from neuralcollapse import runformat, schema
from neuralcollapse.train.epoch_measures import (
    AGOP_CORRELATION,
    AGOP_CORRELATION_SQRT,
    AGOP_INPUT_LAYER,
    AGOP_LAYERS,
    AGOP_NAME,
)
from neuralcollapse.viz.agop_figures import agop_caption, agop_rows, has_agop, plot_agop
from neuralcollapse.viz.html import HtmlReport
from neuralcollapse.viz.report import add_measure_sections
from neuralcollapse.viz.report.sections import AGOP_TITLE
from neuralcollapse.viz.runs import load_run
from neuralcollapse.viz.style import nice_number

from .fake_runs import write_fake_run

MEASURED = (0, 1, 3)
#: the linear layers of a 3-hidden-layer MLP and the measured layer each reads
LINEAR = (
    ("layer1.0", None),
    ("layer2.0", "layer1"),
    ("penultimate.0", "layer2"),
    ("classifier", schema.PENULTIMATE_POST),
)


def _layers(epoch: int, rising: bool) -> list[dict]:
    layers = []
    for depth, (name, source) in enumerate(LINEAR):
        last = depth == len(LINEAR) - 1
        change = 0.05 * epoch if rising else -0.05 * epoch
        sqrt = 1.0 if last else min(0.99, 0.6 + 0.05 * depth + change)
        layers.append(
            {
                AGOP_NAME: name,
                AGOP_INPUT_LAYER: source,
                "in_features": 8,
                AGOP_CORRELATION: 1.0 if last else sqrt - 0.2,
                AGOP_CORRELATION_SQRT: sqrt,
            }
        )
    return layers


def write_agop_run(directory, *, rising=True, not_computed=False):
    run = write_fake_run(directory, epochs=4, measured=MEASURED)
    with open(run / runformat.AGOP, "w") as stream:
        for epoch in MEASURED:
            row = {"epoch": epoch, "samples": 64, "seconds": 0.1}
            if not_computed:
                row[schema.NOT_COMPUTED] = "vmap failed: a batch norm in train mode"
            else:
                row[AGOP_LAYERS] = _layers(epoch, rising)
            stream.write(json.dumps(row) + "\n")
    return run


def _nc1(run_dir, layer, epoch):
    for line in (run_dir / runformat.METRICS).read_text().splitlines():
        row = json.loads(line)
        if (row["epoch"], row["split"], row["layer"]) == (epoch, "train", layer):
            return row[schema.NC1]
    return None


def _sections(runs):
    report = HtmlReport("test")
    return add_measure_sections(report, [load_run(run) for run in runs]), report


def test_the_section_appears_only_with_ansatz_data(tmp_path):
    plain = write_fake_run(tmp_path / "plain", epochs=4, measured=MEASURED)
    broken = write_agop_run(tmp_path / "broken", not_computed=True)
    assert AGOP_TITLE not in _sections([plain, broken])[0]
    assert not has_agop(load_run(broken))
    titles, report = _sections([plain, write_agop_run(tmp_path / "agop")])
    assert AGOP_TITLE in titles
    assert "--track-agop" in report.to_html()


def test_the_caption_reads_the_hidden_layers_and_nc1_by_depth(tmp_path):
    run_dir = write_agop_run(tmp_path / "rising")
    caption = agop_caption([load_run(run_dir)])
    rows = [json.loads(line) for line in (run_dir / runformat.AGOP).read_text().splitlines()]
    hidden_last = [layer[AGOP_CORRELATION_SQRT] for layer in rows[-1][AGOP_LAYERS][:-1]]
    hidden_first = [layer[AGOP_CORRELATION_SQRT] for layer in rows[0][AGOP_LAYERS][:-1]]
    assert f"between {nice_number(min(hidden_last))} and {nice_number(max(hidden_last))}" in (
        caption
    )
    assert "rose at 3 of the 3 hidden layer(s)" in caption
    mean_first, mean_last = sum(hidden_first) / 3, sum(hidden_last) / 3
    assert f"mean {nice_number(mean_first)} → {nice_number(mean_last)}" in caption
    # NC1 of the inputs that were measured (the network's input has none), shallow to deep
    nc1 = [_nc1(run_dir, source, 3) for _, source in LINEAR if source]
    assert ", ".join(nice_number(v) for v in nc1) in caption
    falls = all(b < a for a, b in zip(nc1, nc1[1:], strict=False))
    assert ("falls at every step" in caption) == falls
    falling = agop_caption([load_run(write_agop_run(tmp_path / "falling", rising=False))])
    assert "rose at 0 of the 3 hidden layer(s)" in falling


def test_a_run_with_only_failed_measurements_is_named_with_its_reason(tmp_path):
    caption = agop_caption(
        [
            load_run(write_agop_run(tmp_path / "ok")),
            load_run(write_agop_run(tmp_path / "x", not_computed=True)),
        ]
    )
    assert re.search(r"x: the ansatz was not computed \(vmap failed", caption)


def test_the_table_pairs_each_layer_with_the_nc1_of_its_input(tmp_path):
    run_dir = write_agop_run(tmp_path / "run")
    rows = agop_rows([load_run(run_dir)])
    assert [row["layer"] for row in rows] == [name for name, _ in LINEAR]
    assert all(row["epoch"] == MEASURED[-1] for row in rows)
    for row, (_, source) in zip(rows, LINEAR, strict=True):
        expected = _nc1(run_dir, source, MEASURED[-1]) if source else None
        assert row[schema.NC1] == (pytest.approx(expected) if expected is not None else None)


def test_the_figure_draws_both_panels(tmp_path):
    figure = plot_agop([load_run(write_agop_run(tmp_path / "run"))])
    ansatz, nc1 = figure.axes[:2]
    assert len(ansatz.get_lines()) == 3  # sqrt and plain at the last epoch, sqrt at the first
    assert [t.get_text() for t in ansatz.get_xticklabels()] == [name for name, _ in LINEAR]
    (line,) = nc1.get_lines()
    assert len(line.get_xdata()) == 3  # the network's input has no NC1
