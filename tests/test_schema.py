"""The metric contract: every metric has an entry, theory values hold, JSON is strict."""

from __future__ import annotations

import json
import math

import pytest
import torch

from neuralcollapse import schema
from neuralcollapse.geometry import orthogonal_frame, simplex_etf
from neuralcollapse.metrics import CollapseMetrics, measure


def _strict_loads(text: str):
    def refuse(token: str):
        raise ValueError(f"non-standard JSON token {token}")

    return json.loads(text, parse_constant=refuse)


def test_every_scalar_metric_has_exactly_one_schema_entry_in_field_order():
    assert list(schema.METRICS) == CollapseMetrics.keys()


@pytest.mark.parametrize("frame", ["etf", "orthogonal"])
@pytest.mark.parametrize("num_classes", [3, 5])
def test_theory_values_are_what_the_engine_measures_at_exact_collapse(frame, num_classes):
    dim = 2 * num_classes
    if frame == "etf":
        means = simplex_etf(num_classes, dim, seed=num_classes)
    else:
        means = orthogonal_frame(num_classes, dim, seed=num_classes)
    labels = torch.arange(num_classes).repeat(4)
    result = measure(means[labels], labels, weights=means).to_dict()
    checked = 0
    for key in schema.METRICS:
        expected = schema.theory_value(key, frame, num_classes)
        if expected is None or result[key] is None:
            continue
        assert result[key] == pytest.approx(expected, abs=1e-9), key
        checked += 1
    assert checked >= 15


def test_non_finite_values_are_strings_and_not_computed_is_null():
    row = {"a": math.inf, "b": -math.inf, "c": math.nan, "d": None, "e": [1.5, math.inf]}
    text = schema.dumps(row)
    parsed = _strict_loads(text)
    assert parsed == {
        "a": "Infinity",
        "b": "-Infinity",
        "c": "NaN",
        "d": None,
        "e": [1.5, "Infinity"],
    }
    back = schema.decode_row(parsed)
    assert back["a"] == math.inf and back["b"] == -math.inf and math.isnan(back["c"])
    assert back["d"] is None


def test_numpy_and_torch_scalars_are_written_as_numbers():
    import numpy as np

    text = schema.dumps({"x": np.float32(0.5), "y": torch.tensor(float("inf")), "z": np.int64(3)})
    assert _strict_loads(text) == {"x": 0.5, "y": "Infinity", "z": 3}


def test_a_row_that_was_not_computed_says_why_and_needs_a_reason():
    row = schema.metric_row(None, "all class means coincide")
    assert all(row[key] is None for key in schema.METRICS)
    assert row[schema.NOT_COMPUTED] == {"*": "all class means coincide"}
    with pytest.raises(ValueError, match="needs the reason"):
        schema.metric_row(None)


def test_scalar_logs_name_layer_and_key_and_leave_out_what_is_missing():
    means = simplex_etf(3, 4)
    labels = torch.arange(3).repeat(2)
    result = measure(means[labels], labels)
    logs = schema.scalar_logs({"penultimate": result, "dead": None}, split="val")
    assert logs["nc/val/penultimate/nc1"] == result.nc1
    assert not any("dead" in name for name in logs)
    assert "nc/val/penultimate/self_duality" not in logs  # no classifier: not computed
    assert "nc/val/penultimate/num_classes" not in logs


def test_measure_json_output_is_strict_with_an_infinite_metric(tmp_path, capsys):
    import numpy as np

    from neuralcollapse.cli import main

    # <w_k, m_k> = 1, -1, 0 average to exactly 0, so unc3_cv is infinite
    means = np.array([[1.0, 0.0], [-1.0, 0.0], [0.0, 1.0]])
    weights = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]])
    labels = np.repeat(np.arange(3), 3)
    features = means[labels]
    np.savez(tmp_path / "f.npz", features=features, labels=labels, weights=weights)
    assert main(["measure", str(tmp_path / "f.npz"), "--json"]) == 0
    parsed = _strict_loads(capsys.readouterr().out)
    assert parsed["unc3_cv"] == "Infinity"


def test_every_extra_run_column_has_a_schema_entry():
    from neuralcollapse.robustness import ROW_KEYS
    from neuralcollapse.train.epoch_measures import GROUP_KEYS, MINORITY_KEYS, MSE_KEYS

    for key in (*ROW_KEYS, *MSE_KEYS, *GROUP_KEYS, *MINORITY_KEYS):
        assert key in schema.RUN_COLUMNS, key
    assert not set(schema.RUN_COLUMNS) & set(schema.METRICS)  # one owner per column
