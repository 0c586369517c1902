"""``neuralcollapse train --feature-dim D`` with D < K - 1: the geometry of more classes than
feature dimensions plus one (Jiang et al. 2023) rides along each tracked epoch."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from neuralcollapse import runformat, schema
from neuralcollapse.cli import main
from neuralcollapse.frontier.softmax_codes import TAMMES_ANGLES_D3, best_known_angle
from neuralcollapse.train.data import load_dataset
from neuralcollapse.train.epoch_measures import code_columns, spherical_code_reference
from neuralcollapse.train.nets import build_net

COMMON = ["--arch", "mlp", "--width", "16", "--depth", "2", "--epochs", "4", "--track", "every"]
COMMON += ["--no-progress", "--seed", "2", "--dataset", "digits"]


def _epochs(run):
    return [json.loads(line) for line in (run / runformat.EPOCHS).read_text().splitlines()]


@pytest.fixture(scope="module")
def narrow_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("codes") / "run"
    assert main(["train", *COMMON, "--feature-dim", "3", "--out", str(out)]) == 0
    return out


def _smallest_angle(rows: np.ndarray) -> float:
    """Written out: the largest cosine between two distinct unit rows, as an angle."""
    units = rows / np.linalg.norm(rows, axis=1, keepdims=True)
    cosines = units @ units.T
    np.fill_diagonal(cosines, -np.inf)
    return math.degrees(math.acos(min(1.0, cosines.max())))


def test_the_columns_equal_an_independent_computation(narrow_run):
    """The last epoch's columns from the saved network and the training images."""
    data = load_dataset("digits")
    net = build_net("mlp", tuple(data.input_shape), 10, width=16, depth=2, feature_dim=3)
    net.load_state_dict(runformat.load_checkpoint(narrow_run)["model"])
    net.eval()
    with torch.no_grad():
        features = net(data.train_images, return_features=True)[1].double().numpy()
    labels = data.train_labels.numpy()
    means = np.stack([features[labels == k].mean(0) for k in range(10)])
    centred = means - means.mean(0)
    weights = net.classifier.weight.detach().double().numpy()
    u = centred / np.linalg.norm(centred, axis=1, keepdims=True)
    v = weights / np.linalg.norm(weights, axis=1, keepdims=True)
    scores = u @ v.T
    margin = min(scores[k, k] - max(scores[k, j] for j in range(10) if j != k) for k in range(10))
    last = _epochs(narrow_run)[-1]
    assert last["code_angle_weights"] == pytest.approx(_smallest_angle(weights), abs=1e-6)
    assert last["code_angle_means"] == pytest.approx(_smallest_angle(centred), abs=1e-4)
    assert last["code_margin_means"] == pytest.approx(margin, abs=1e-6)
    assert net.classifier.in_features == 3


def test_the_summary_holds_the_best_known_angle(narrow_run):
    summary = json.loads((narrow_run / runformat.SUMMARY).read_text())
    code = summary["spherical_code"]
    assert code["num_classes"] == 10 and code["dim"] == 3 and code["exact"] is True
    assert code["optimum_angle_degrees"] == pytest.approx(TAMMES_ANGLES_D3[10], abs=1e-9)
    # d = 4 has no tabulated optimum: the solver's best, marked as such
    unknown = spherical_code_reference(10, 4, seed=0)
    assert unknown["exact"] is False and unknown["restarts"] == 8
    assert unknown["optimum_angle_degrees"] == pytest.approx(best_known_angle(10, 4)[0])
    # every trained net is at or below the best angle K points can have
    for row in _epochs(narrow_run):
        assert row["code_angle_weights"] <= code["optimum_angle_degrees"] + 1e-9


def test_a_wide_run_has_no_code_columns(tmp_path):
    """d = 16 >= K - 1 = 9: a simplex ETF exists; nothing is added."""
    out = tmp_path / "wide"
    assert main(["train", *COMMON, "--out", str(out)]) == 0
    assert not any(key in row for row in _epochs(out) for key in schema.CODE_KEYS)
    assert "spherical_code" not in json.loads((out / runformat.SUMMARY).read_text())


def test_untracked_epochs_and_missing_means_are_null_with_a_reason():
    weights = torch.randn(10, 3)
    assert code_columns(weights, None, measure_now=False) == dict.fromkeys(schema.CODE_KEYS)
    row = code_columns(weights, None, measure_now=True)
    assert row["code_angle_weights"] == pytest.approx(_smallest_angle(weights.double().numpy()))
    assert row["code_angle_means"] is None and row["code_margin_means"] is None
    assert "not gathered" in row[schema.NOT_COMPUTED]["code_angle_means"]
    weights[4] = 0.0  # a vanished row has no direction
    row = code_columns(weights, None, measure_now=True)
    assert row["code_angle_weights"] is None
    assert "code_angle_weights" in row[schema.NOT_COMPUTED]


@pytest.mark.parametrize(
    ("arch", "shape", "extra"),
    [("mlp", (1, 8, 8), {}), ("cnn", (1, 8, 8), {"base_channels": 4}), ("vgg11", (1, 8, 8), {})],
)
def test_feature_dim_sets_the_classifier_input(arch, shape, extra):
    base = extra or ({"base_channels": 4} if arch.startswith("vgg") else {})
    net = build_net(arch, shape, 10, feature_dim=5, **base)
    assert net.classifier.in_features == 5 == net.feature_dim
    logits, features = net(torch.randn(3, *shape), return_features=True)
    assert features.shape == (3, 5) and logits.shape == (3, 10)


def test_feature_dim_is_refused_where_it_does_not_apply():
    with pytest.raises(ValueError, match="does not apply to resnet18"):
        build_net("resnet18", (3, 8, 8), 10, feature_dim=5)
    with pytest.raises(ValueError, match="feature_dim"):
        build_net("mlp", (1, 8, 8), 10, feature_dim=0)
