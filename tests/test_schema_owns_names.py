"""The schema owns the names (issue 22, item 5): consumers iterate over its groups and named keys.

A string literal equal to a metric key (``schema.METRICS``) or a run column
(``schema.RUN_COLUMNS``) outside ``schema.py`` is a second spelling of a name the schema owns.
Each is counted with ``ast`` over the package (docstrings left out); the count may not grow.
"""

from __future__ import annotations

import ast
import sys
from collections import Counter
from pathlib import Path

import pytest
import torch

import neuralcollapse
from neuralcollapse import schema

PACKAGE = Path(neuralcollapse.__file__).parent

#: the count reached over metric keys and run columns; lower it when literals go, never raise
#: it. What is left is mostly parameter and configuration names that happen to equal a key
#: ("num_classes", "dim", "lr": check_int's argument names, state-dict fields)
MAX_KEY_LITERALS = 47


def _docstrings(tree: ast.AST) -> set[int]:
    nodes = (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)
    return {
        id(node.body[0].value)
        for node in ast.walk(tree)
        if isinstance(node, nodes)
        and node.body
        and isinstance(node.body[0], ast.Expr)
        and isinstance(node.body[0].value, ast.Constant)
    }


def key_literals(keys: frozenset[str] | None = None) -> Counter:
    """Per file (relative to the package), the string literals equal to a schema key (or to
    one of ``keys``)."""
    keys = schema.all_keys() if keys is None else keys
    counts: Counter = Counter()
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "schema.py":
            continue
        tree = ast.parse(path.read_text(), filename=str(path))
        docstrings = _docstrings(tree)
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and node.value in keys
                and id(node) not in docstrings
            ):
                counts[str(path.relative_to(PACKAGE))] += 1
    return counts


def test_few_string_literals_repeat_a_schema_key():
    counts = key_literals()
    total = sum(counts.values())
    listing = "\n".join(f"{count:4d} {path}" for path, count in counts.most_common())
    assert total <= MAX_KEY_LITERALS, (
        f"{total} literals equal a schema key (at most {MAX_KEY_LITERALS}); use the schema's "
        f"named keys and groups:\n{listing}"
    )


def test_fewer_than_50_literals_equal_a_metric_key():
    """Issue 22's own measure: string literals equal to a key of schema.METRICS."""
    metric_keys = frozenset(schema.METRICS)
    total = sum(key_literals(metric_keys).values())
    assert total < 50, f"{total} literals equal a metric key outside schema.py"


def test_the_counter_sees_a_literal_and_ignores_a_docstring(tmp_path, monkeypatch):
    fake = tmp_path / "neuralcollapse"
    fake.mkdir()
    (fake / "schema.py").write_text('X = "nc1"\n')  # the schema itself is not counted
    (fake / "user.py").write_text('"""nc1"""\n\nKEY = "nc1"\nOTHER = "not a key"\n')
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE", fake)
    assert key_literals() == Counter({"user.py": 1})


def test_groups_hold_schema_keys_and_the_column_groups_partition_the_run_columns():
    metric_groups = (
        schema.SIZE_KEYS,
        schema.FRAME_KEYS,
        schema.CLASSIFIER_KEYS,
        schema.UNIFORMITY_KEYS,
        schema.UFM_KEYS,
        tuple(key for pair in schema.PAIRED_KEYS for key in pair),
    )
    for group in metric_groups:
        assert group and set(group) <= set(schema.METRICS), group
    assert all(schema.METRICS[key].needs == "classifier" for key in schema.CLASSIFIER_KEYS)
    grouped = [key for group in schema.COLUMN_GROUPS for key in schema.column_group(group)]
    assert sorted(grouped) == sorted(schema.RUN_COLUMNS)  # every column in exactly one group
    for group in (schema.MSE_TERM_KEYS, schema.ERROR_KEYS, schema.LOSS_KEYS):
        assert set(group) <= set(schema.RUN_COLUMNS)
    assert set(schema.MSE_TERM_KEYS) < set(schema.MSE_KEYS)
    assert schema.IMBALANCE_KEYS == schema.GROUP_ACCURACY_KEYS + schema.MINORITY_COSINE_KEYS


def test_named_keys_are_schema_keys_and_labels_come_from_the_specs():
    named = {
        name: value
        for name, value in vars(schema).items()
        if name.isupper() and isinstance(value, str) and "_" in value
    }
    keys = schema.all_keys()
    named_keys = {name: value for name, value in named.items() if value in keys}
    assert len(named_keys) >= 20
    for key in keys:
        spec = schema.METRICS.get(key) or schema.RUN_COLUMNS[key]
        assert schema.label(key) == spec.label
    try:
        schema.label("not_a_key")
    except KeyError as error:
        assert "not_a_key" in str(error)
    else:  # pragma: no cover
        raise AssertionError("an unknown key must raise KeyError")


def test_the_measure_command_table_lists_every_metric_with_its_schema_label():
    from neuralcollapse.cli.measure import format_table
    from neuralcollapse.metrics import measure

    generator = torch.Generator().manual_seed(0)
    features = torch.randn(60, 5, generator=generator, dtype=torch.float64)
    labels = torch.arange(60) % 3
    weights = torch.randn(3, 5, generator=generator, dtype=torch.float64)
    lines = format_table(measure(features, labels, weights)).splitlines()
    assert [line.split()[-1] for line in lines] == list(schema.METRICS)
    for line, spec in zip(lines, schema.METRICS.values(), strict=True):
        assert line.startswith(spec.label)


def test_a_deepfool_row_puts_each_value_under_its_own_column():
    from neuralcollapse.robustness.deepfool_attack import ROW_KEYS, RobustnessResult

    result = RobustnessResult(
        count=10,
        succeeded=7,
        failed_fraction=0.3,
        mean_ratio=0.11,
        mean_ratio_correct=0.12,
        accuracy=0.9,
        mean_steps=2.5,
        seconds=1.25,
        overshoot=0.02,
        max_steps=50,
        seed=0,
    )
    row = result.to_row()
    assert tuple(row) == ROW_KEYS == schema.column_group("robustness")
    expected = {
        "deepfool_ratio": result.mean_ratio,
        "deepfool_ratio_correct": result.mean_ratio_correct,
        "deepfool_failed_fraction": result.failed_fraction,
        "deepfool_count": result.count,
        "deepfool_succeeded": result.succeeded,
        "deepfool_accuracy": result.accuracy,
        "deepfool_mean_steps": result.mean_steps,
        "deepfool_seconds": result.seconds,
    }
    assert row == expected


def test_group_accuracies_land_in_the_majority_and_minority_columns():
    from neuralcollapse.train.epoch_measures import group_columns

    correct = torch.tensor([10, 10, 10, 2, 4])
    counts = torch.tensor([10, 10, 10, 10, 10])
    row = group_columns(correct, counts, minority_classes=2)
    assert list(row) == ["accuracy_majority", "accuracy_minority"]
    assert row["accuracy_majority"] == 1.0
    assert row["accuracy_minority"] == pytest.approx(0.3)


def test_the_training_panels_are_the_schemas_pairs():
    from neuralcollapse.viz.training_figures import MSE_PANELS, PANEL_SPECS

    assert PANEL_SPECS[0][1][0][0] == schema.NC1
    pairs = [tuple(line[0] for line in lines) for _, lines in PANEL_SPECS[1:]]
    assert pairs == list(schema.PAIRED_KEYS[: len(pairs)])
    drawn = {key for _, lines in MSE_PANELS for key, _ in lines}
    assert set(schema.MSE_TERM_KEYS) <= drawn <= set(schema.MSE_KEYS)
