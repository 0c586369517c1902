"""`neuralcollapse measure FILE.npz`: table, JSON, and errors without tracebacks."""

import json
import subprocess
import sys

import numpy as np
import pytest

from neuralcollapse.cli import main
from neuralcollapse.metrics import measure

from .reference import assert_same_metrics


@pytest.fixture
def features_file(tmp_path):
    rng = np.random.default_rng(0)
    labels = np.arange(4).repeat(10)
    features = rng.normal(size=(40, 6)) + 3 * np.eye(4, 6)[labels]
    path = tmp_path / "feats.npz"
    np.savez(path, features=features, labels=labels, weights=np.eye(4, 6), bias=np.zeros(4))
    return path, features, labels


def test_json_output_equals_measure(features_file, capsys):
    path, features, labels = features_file
    assert main(["measure", str(path), "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = measure(features, labels, np.eye(4, 6), np.zeros(4)).to_dict()
    assert_same_metrics(printed, expected, rel=1e-12)


def test_table_lists_every_metric(features_file, capsys):
    path, _, _ = features_file
    assert main(["measure", str(path)]) == 0
    out = capsys.readouterr().out
    for key in measure(np.eye(3), np.arange(3)).to_dict():
        assert key in out


def test_missing_file_and_missing_arrays_are_clean_errors(tmp_path, capsys):
    assert main(["measure", str(tmp_path / "nope.npz")]) == 2
    assert "no such file" in capsys.readouterr().err
    np.savez(tmp_path / "bad.npz", x=np.zeros(3))
    assert main(["measure", str(tmp_path / "bad.npz")]) == 2
    assert "lacks features, labels" in capsys.readouterr().err


def test_python_dash_m_entry_point_works(features_file):
    path, _, _ = features_file
    completed = subprocess.run(
        [sys.executable, "-m", "neuralcollapse", "measure", str(path), "--json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert json.loads(completed.stdout)["num_samples"] == 40


def test_ood_features_in_the_file_give_nc5_and_per_class_csv_is_written(tmp_path, capsys):
    import csv

    rng = np.random.default_rng(1)
    labels = np.arange(4).repeat(10)
    features = rng.normal(size=(40, 6)) + 3 * np.eye(4, 6)[labels]
    ood = rng.normal(size=(25, 6)) + 2.0
    path = tmp_path / "with_ood.npz"
    np.savez(path, features=features, labels=labels, weights=np.eye(4, 6), ood_features=ood)
    table = tmp_path / "classes.csv"
    assert main(["measure", str(path), "--json", "--per-class", str(table)]) == 0
    printed = json.loads(capsys.readouterr().out)
    expected = measure(features, labels, np.eye(4, 6), ood_features=ood)
    assert printed["nc5"] == pytest.approx(expected.nc5, rel=1e-12)
    with open(table, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [int(row["class"]) for row in rows] == [0, 1, 2, 3]
    assert [int(row["count"]) for row in rows] == [10, 10, 10, 10]
    assert [float(row["within_variance"]) for row in rows] == pytest.approx(
        expected.per_class.within_variance.tolist(), rel=1e-12
    )


def test_reference_npz_makes_ncc_decide_with_the_training_means(tmp_path, capsys):
    import json

    import numpy as np
    from scipy.spatial.distance import cdist

    from neuralcollapse.cli import main

    generator = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), 20)
    centres = 2.0 * np.eye(3, 4)
    train = centres[labels] + generator.normal(size=(60, 4))
    test = centres[labels] + 0.5 + generator.normal(size=(60, 4))  # shifted: own means differ
    np.savez(tmp_path / "train.npz", features=train, labels=labels)
    np.savez(tmp_path / "test.npz", features=test, labels=labels)
    assert (
        main(
            [
                "measure",
                str(tmp_path / "test.npz"),
                "--reference",
                str(tmp_path / "train.npz"),
                "--json",
            ]
        )
        == 0
    )
    held_out = json.loads(capsys.readouterr().out)
    means = np.stack([train[labels == k].mean(0) for k in range(3)])
    expected = float((cdist(test, means).argmin(1) == labels).mean())
    assert held_out["ncc_accuracy"] == expected
