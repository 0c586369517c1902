"""The generalisation table (Papyan et al., Table 1) against hand-made run directories."""

from __future__ import annotations

import json

import pytest

from neuralcollapse.robustness import generalisation_table, read_generalisation_table


def _row(epoch, train_error, test_error, test_loss):
    return {
        "epoch": epoch,
        "lr": 0.1,
        "train_loss": 0.5,
        "train_error": train_error,
        "test_loss": test_loss,
        "test_error": test_error,
        "seconds": 0.1,
        "tracked": True,
    }


# training error touches 0 at epoch 3, leaves it at 4, is 0 again from 5: TPT starts at 3
ROWS = [
    _row(1, 0.30, 0.40, 1.20),
    _row(2, 0.10, 0.30, 0.90),
    _row(3, 0.00, 0.25, 0.70),
    _row(4, 0.02, 0.26, 0.72),
    _row(5, 0.00, 0.22, 0.75),
    _row(6, 0.00, 0.20, 0.80),
]


def _write_run(directory, rows):
    directory.mkdir()
    with open(directory / "epochs.jsonl", "w") as stream:
        for row in rows:
            stream.write(json.dumps(row) + "\n")
    return directory


def test_table_of_a_hand_made_run(tmp_path):
    table = read_generalisation_table(_write_run(tmp_path / "run", ROWS))
    assert (table.tpt_epoch, table.last_epoch, table.terminal_epochs) == (3, 6, 3)
    assert table.accuracy_tpt == pytest.approx(0.75)
    assert table.accuracy_last == pytest.approx(0.80)
    assert table.accuracy_change == pytest.approx(0.05)
    assert table.loss_tpt == pytest.approx(0.70)
    assert table.loss_last == pytest.approx(0.80)
    assert table.loss_change == pytest.approx(0.10)  # accuracy up while the test loss rises
    assert table.not_computed == {}
    out = table.to_dict()
    assert json.loads(json.dumps(out, allow_nan=False)) == out
    assert out["tpt_epoch"] == 3 and "not_computed" not in out


def test_order_and_resumed_duplicates():
    shuffled = [ROWS[4], ROWS[0], ROWS[5], ROWS[2], ROWS[1], ROWS[3]]
    # a resumed run may log an epoch again: the later row is the one that counts
    resumed = shuffled + [_row(6, 0.00, 0.10, 0.50)]
    table = generalisation_table(resumed)
    assert table.tpt_epoch == 3 and table.accuracy_last == pytest.approx(0.90)


def test_no_zero_training_error():
    rows = [_row(e, 0.01 * (10 - e), 0.3, 1.0) for e in range(1, 6)]
    table = generalisation_table(rows)
    assert table.tpt_epoch is None and table.last_epoch == 5
    assert table.accuracy_tpt is None and table.accuracy_change is None
    assert "no epoch reached zero training error" in table.not_computed["*"]
    json.dumps(table.to_dict(), allow_nan=False)


def test_no_test_split():
    rows = [_row(e, 0.0, None, None) for e in range(1, 4)]
    table = generalisation_table(rows)
    assert table.tpt_epoch == 1
    assert table.accuracy_tpt is None and table.loss_change is None
    assert "no test split" in table.not_computed["*"]


def test_non_finite_logged_values_are_not_computed():
    rows = [_row(1, 0.0, 0.2, "NaN"), _row(2, 0.0, 0.1, 0.4)]  # the schema's NaN string
    table = generalisation_table(rows)
    assert table.accuracy_change == pytest.approx(0.1)
    assert table.loss_tpt is None and table.loss_change is None
    assert "loss_tpt" in table.not_computed and "loss_change" in table.not_computed
    json.dumps(table.to_dict(), allow_nan=False)


def test_empty_and_bad_rows(tmp_path):
    assert generalisation_table([]).not_computed == {"*": "no epoch was logged"}
    with pytest.raises(ValueError, match="'epoch' of row 1 must be an integer"):
        generalisation_table([{"train_error": 0.0}])
    with pytest.raises(FileNotFoundError, match="epochs.jsonl"):
        read_generalisation_table(tmp_path)
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "epochs.jsonl").write_text(json.dumps(ROWS[0]) + '\n{"epoch": 2, "tr')
    with pytest.raises(ValueError, match="line 2"):
        read_generalisation_table(broken)
