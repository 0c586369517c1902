"""``neuralcollapse train --data MODULE:FACTORY``: any map-style dataset, streamed (issue 22)."""

from __future__ import annotations

import json

import pytest

from neuralcollapse import runformat
from neuralcollapse.cli import main

COMMON = ["--arch", "mlp", "--width", "16", "--depth", "2", "--epochs", "3", "--track", "every"]
COMMON += ["--no-progress", "--seed", "4"]


def _rows(run, name):
    rows = [json.loads(line) for line in (run / name).read_text().splitlines()]
    for row in rows:
        row.pop("seconds", None)
        row.pop("deepfool_seconds", None)  # timings
    return rows


def _train(tmp_path, name, *options):
    out = tmp_path / name
    assert main(["train", *COMMON, *options, "--out", str(out)]) == 0
    return out


def test_a_factory_dataset_trains_exactly_as_the_registered_set(tmp_path):
    registered = _train(tmp_path, "registered", "--dataset", "digits", "--robustness", "8")
    factory = _train(
        tmp_path,
        "factory",
        "--data",
        "tests.train.factories:digits",
        "--num-classes",
        "10",
        "--robustness",
        "8",
    )
    for name in (runformat.EPOCHS, runformat.METRICS):
        assert _rows(factory, name) == _rows(registered, name), name
    config = json.loads((factory / runformat.CONFIG).read_text())
    assert config["dataset"] == "custom" and config["data"] == "tests.train.factories:digits"


def test_worker_processes_read_the_same_batches(tmp_path):
    spec = ["--data", "tests.train.factories:digits", "--num-classes", "10"]
    inline = _train(tmp_path, "inline", *spec)
    workers = _train(tmp_path, "workers", *spec, "--workers", "2")
    assert _rows(workers, runformat.EPOCHS) == _rows(inline, runformat.EPOCHS)
    assert _rows(workers, runformat.METRICS) == _rows(inline, runformat.METRICS)


def test_a_factory_run_resumes(tmp_path):
    spec = ["--data", "tests.train.factories:digits_without_test", "--num-classes", "10"]
    whole = _train(tmp_path, "whole", *spec)
    out = tmp_path / "parts"
    assert main(["train", *COMMON, *spec, "--out", str(out), "--stop-after-epoch", "2"]) == 0
    assert main(["train", "--resume", "--out", str(out), "--no-progress"]) == 0
    assert _rows(out, runformat.EPOCHS) == _rows(whole, runformat.EPOCHS)
    assert {row["split"] for row in _rows(out, runformat.METRICS)} == {"train"}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--data", "tests.train.factories:digits"], "--data needs --num-classes K"),
        (["--num-classes", "10"], "--num-classes goes with --data"),
        (
            ["--data", "tests.train.factories:digits", "--num-classes", "10", "--per-class", "5"],
            "--per-class applies to the registered data sets",
        ),
        (
            ["--data", "tests.train.factories:shifted_labels", "--num-classes", "10"],
            r"label 1[0-4], outside \[0, 10\): pass --num-classes",
        ),
        (
            ["--data", "tests.train.factories:not_a_pair", "--num-classes", "10"],
            r"must return a pair \(train_dataset, test_dataset\)",
        ),
        (
            ["--data", "tests.train.factories:integer_images", "--num-classes", "10"],
            "inputs must be floating point",
        ),
        (["--data", "tests.train.factories:nothing", "--num-classes", "10"], "has no 'nothing'"),
        (
            [
                "--data",
                "tests.train.factories:digits_without_test",
                "--num-classes",
                "10",
                "--robustness",
                "4",
            ],
            "--robustness needs a test split",
        ),
    ],
)
def test_bad_data_options_are_one_line(tmp_path, capsys, options, message):
    assert main(["train", *COMMON, *options, "--out", str(tmp_path / "run")]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "Traceback" not in error[0]
    import re

    assert re.search(message, error[0]), error[0]


def test_a_fixed_etf_classifier_stays_an_exact_etf_through_training(tmp_path):
    """--classifier fixed-etf (Zhu et al. 2021): the last layer is a simplex ETF buffer the
    optimiser never moves, so NC2 of the weights is 0 at every epoch; the run resumes."""
    import torch

    from neuralcollapse.frontier.fixed_etf import simplex_etf_rows
    from neuralcollapse.integrations import measure_model

    options = ["--dataset", "digits", "--classifier", "fixed-etf", "--no-bias"]
    out = _train(tmp_path, "fixed", *options)
    rows = [r for r in _rows(out, runformat.METRICS) if r["layer"] == "penultimate_post"]
    assert len(rows) == 6  # 3 epochs x (train, test)
    for row in rows:
        assert row["etf_gap_weights"] < 1e-6 and row["equinorm_weights"] < 1e-6
    state = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    etf = simplex_etf_rows(10, 16, dtype=torch.float32)
    assert torch.equal(state["model"]["classifier.weight"], etf)
    config = json.loads((out / runformat.CONFIG).read_text())
    assert config["classifier"] == "fixed-etf"
    # measure_model takes the fixed head as the classifier too
    from neuralcollapse.frontier.fixed_etf import FixedETFClassifier
    from neuralcollapse.train.data import load_dataset
    from neuralcollapse.train.nets import build_net

    data = load_dataset("digits")
    net = build_net("mlp", data.input_shape, 10, width=16, depth=2, bias=False)
    net.classifier = FixedETFClassifier(16, 10)
    net.load_state_dict(state["model"])
    result = measure_model(net, [(data.train_images, data.train_labels)], classifier="classifier")
    assert result["penultimate"].etf_gap_weights == pytest.approx(0.0, abs=1e-6)
    train_row = [r for r in rows if r["split"] == "train"][-1]
    assert result["penultimate"].nc1 == pytest.approx(train_row["nc1"], rel=1e-6)


def test_fixed_etf_needs_d_at_least_k_minus_1(tmp_path, capsys):
    options = ["--dataset", "digits", "--classifier", "fixed-etf", "--width", "4"]
    assert (
        main(
            [
                "train",
                *COMMON[:2],
                "--depth",
                "2",
                "--epochs",
                "1",
                *options,
                "--out",
                str(tmp_path / "run"),
            ]
        )
        == 2
    )
    assert "K - 1 = 9 dimensions" in capsys.readouterr().err


def test_track_spectra_records_the_spectrum_and_leaves_training_as_it_was(tmp_path):
    """--track-spectra (issue 26): at tracked epochs the Gauss-Newton spectrum of the last
    layer on a seeded training subsample goes to spectra.jsonl and its headline into the
    epoch row; training itself is untouched (the same rows as without it)."""
    import torch

    from neuralcollapse import schema
    from neuralcollapse.spectra import spectral_summary
    from neuralcollapse.train.data import load_dataset
    from neuralcollapse.train.nets import build_net

    plain = _train(tmp_path, "plain", "--dataset", "digits")
    spectra = _train(tmp_path, "spectra", "--dataset", "digits", "--track-spectra", "120")
    strip = set(schema.SPECTRA_KEYS)
    rows = _rows(spectra, runformat.EPOCHS)
    assert [{k: v for k, v in row.items() if k not in strip} for row in rows] == _rows(
        plain, runformat.EPOCHS
    )
    assert _rows(spectra, runformat.METRICS) == _rows(plain, runformat.METRICS)
    summaries = [
        json.loads(line) for line in (spectra / runformat.SPECTRA).read_text().split("\n") if line
    ]
    assert [s["epoch"] for s in summaries] == [1, 2, 3]
    assert summaries[-1]["num_samples"] == 120
    assert summaries[-1]["params"] == ["classifier.weight", "classifier.bias"]
    assert rows[-1]["spectra_top_eigenvalue"] == summaries[-1]["top_eigenvalues"][0]
    # the last epoch's spectrum, recomputed from the checkpoint on the same samples
    from neuralcollapse.robustness import subset_indices

    data = load_dataset("digits")
    net = build_net("mlp", data.input_shape, 10, width=16, depth=2)
    state = torch.load(spectra / "checkpoints" / "last.pt", weights_only=True)
    net.load_state_dict(state["model"])
    indices = subset_indices(len(data.train_labels), 120, 4 + 3)
    again = spectral_summary(
        net.eval(),
        [(data.train_images[indices], data.train_labels[indices])],
        params=["classifier"],
        subsample=None,
        seed=4,
    )
    assert again["top_eigenvalues"][:5] == pytest.approx(
        summaries[-1]["top_eigenvalues"][:5], rel=1e-9
    )


def test_flat_vector_inputs_train_an_mlp_and_refuse_a_cnn(tmp_path, capsys):
    spec = ["--data", "tests.train.factories:flat_vectors", "--num-classes", "10"]
    flat = _train(tmp_path, "flat", *spec)
    images = _train(
        tmp_path, "images", "--data", "tests.train.factories:digits", "--num-classes", "10"
    )
    # the MLP flattens (1, 8, 8) images itself: the same run on the same numbers
    assert _rows(flat, runformat.METRICS) == _rows(images, runformat.METRICS)
    status = main(["train", *COMMON, *spec, "--arch", "cnn", "--out", str(tmp_path / "cnn")])
    assert status == 2
    assert "arch cnn needs images of shape (C, H, W)" in capsys.readouterr().err


def test_the_python_api_takes_the_same_datasets(tmp_path):
    """train(config, datasets=(train, test)) is --data without a factory: the same rows."""
    from neuralcollapse.train.config import TrainConfig
    from neuralcollapse.train.loop import train
    from tests.train.factories import digits

    factory = _train(
        tmp_path, "factory", "--data", "tests.train.factories:digits", "--num-classes", "10"
    )
    options = {
        "arch": "mlp",
        "width": 16,
        "depth": 2,
        "epochs": 3,
        "track": "every",
        "progress": False,
        "seed": 4,
        "num_classes": 10,
        "out": str(tmp_path / "api"),
    }
    result = train(TrainConfig(**options), datasets=digits())
    assert _rows(result.run_dir, runformat.EPOCHS) == _rows(factory, runformat.EPOCHS)
    assert _rows(result.run_dir, runformat.METRICS) == _rows(factory, runformat.METRICS)
    config = json.loads((result.run_dir / runformat.CONFIG).read_text())
    assert config["data"] == "<Samples>" and config["dataset"] == "custom"
    with pytest.raises(TypeError, match="datasets must be a pair"):
        train(TrainConfig(**{**options, "out": str(tmp_path / "bad")}), datasets=digits()[0])


def test_replayed_features_give_the_numbers_of_a_second_read(tmp_path):
    """--feature-cache-mb: the engine's second pass replays the first pass's features when
    they fit (the default), or reads the data again (0); the rows are the same."""
    spec = ["--data", "tests.train.factories:digits", "--num-classes", "10", "--layers", "all"]
    replayed = _train(tmp_path, "replayed", *spec, "--loss", "mse")
    reread = _train(tmp_path, "reread", *spec, "--loss", "mse", "--feature-cache-mb", "0")
    assert _rows(reread, runformat.METRICS) == _rows(replayed, runformat.METRICS)
    assert _rows(reread, runformat.EPOCHS) == _rows(replayed, runformat.EPOCHS)
