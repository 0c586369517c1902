"""The law of data separation: the fit, the fuzziness and its relation to NC1."""

import math

import numpy as np
import pytest
import scipy.stats
import torch

from neuralcollapse import measure
from neuralcollapse.measures import (
    fit_separation_law,
    fuzziness_from_metrics,
    separation_fuzziness,
    separation_fuzziness_batches,
)


def _clusters(counts, dim, seed, spread=1.0):
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(len(counts), dim)) * 3
    labels = np.repeat(np.arange(len(counts)), counts)
    features = means[labels] + spread * rng.normal(size=(labels.size, dim))
    return features, labels


def _dense_fuzziness(features, labels, weighting):
    """Tr(SS_W SS_B^+) with d x d matrices and numpy's pinv (the direct route)."""
    classes = np.unique(labels)
    means = np.array([features[labels == k].mean(0) for k in classes])
    counts = np.array([(labels == k).sum() for k in classes])
    weights = (
        counts / counts.sum() if weighting == "samples" else np.full(len(classes), 1 / len(classes))
    )
    centre = weights @ means
    residual = features - means[labels]
    within = residual.T @ residual / len(labels)
    between = sum(w * np.outer(m - centre, m - centre) for w, m in zip(weights, means, strict=True))
    return float(np.trace(within @ np.linalg.pinv(between)))


def test_exact_geometric_sequence_gives_its_ratio_and_r2_one():
    fit = fit_separation_law([5.0 * 0.6**layer for layer in range(1, 7)])
    assert fit.rho == pytest.approx(0.6, rel=1e-12)
    assert fit.intercept == pytest.approx(math.log(5.0), abs=1e-12)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    assert np.allclose(fit.residuals, 0, atol=1e-12)
    assert np.allclose(fit.fitted(), fit.fuzziness, rtol=1e-12)


def test_noisy_geometric_sequence_recovers_rho_and_matches_linregress():
    rng = np.random.default_rng(1)
    depth = np.arange(1, 13)
    logs = math.log(40.0) + depth * math.log(0.7) + rng.normal(scale=0.05, size=depth.size)
    fit = fit_separation_law(
        dict(zip([f"l{i}" for i in depth], np.exp(logs).tolist(), strict=True))
    )
    reference = scipy.stats.linregress(depth, logs)
    assert math.log(fit.rho) == pytest.approx(reference.slope, rel=1e-10)
    assert fit.r_squared == pytest.approx(reference.rvalue**2, rel=1e-10)
    assert abs(fit.rho - 0.7) < 0.02  # the noise is small against 12 layers of decay
    # least-squares residuals are orthogonal to the design (1 and l)
    assert abs(sum(fit.residuals)) < 1e-10
    assert abs(float(np.dot(fit.residuals, depth))) < 1e-9
    assert fit.r_squared < 1.0  # noisy data: not a perfect line
    assert fit.layers[0] == "l1" and fit.positions == tuple(float(p) for p in depth)


def test_positions_change_the_slope_not_the_fit_quality():
    values = [3.0, 1.0, 0.5, 0.2]
    even = fit_separation_law(values)
    spaced = fit_separation_law(values, positions=[2, 4, 6, 8])
    assert math.log(spaced.rho) == pytest.approx(math.log(even.rho) / 2, rel=1e-12)
    assert spaced.r_squared == pytest.approx(even.r_squared, rel=1e-12)


def test_fuzziness_is_k_times_nc1_on_balanced_classes_and_differs_on_imbalanced():
    features, labels = _clusters([40, 40, 40, 40], dim=9, seed=2)
    result = measure(features, labels)
    assert fuzziness_from_metrics(result) == pytest.approx(4 * result.nc1, rel=1e-12)
    he_su = separation_fuzziness(features, labels)
    assert he_su == pytest.approx(4 * result.nc1, rel=1e-10)
    assert he_su == pytest.approx(_dense_fuzziness(features, labels, "samples"), rel=1e-9)

    features, labels = _clusters([10, 80, 30], dim=6, seed=3)
    result = measure(features, labels)
    he_su = separation_fuzziness(features, labels)
    ours = separation_fuzziness(features, labels, weighting="classes")
    assert he_su == pytest.approx(_dense_fuzziness(features, labels, "samples"), rel=1e-9)
    assert ours == pytest.approx(3 * result.nc1, rel=1e-10)
    assert abs(he_su - ours) > 1e-3 * ours  # the weighting matters on imbalanced data


def test_streamed_fuzziness_equals_in_memory():
    features, labels = _clusters([15, 25, 35], dim=5, seed=4)
    tensor = torch.as_tensor(features)
    batches = lambda: [(tensor[i : i + 7], labels[i : i + 7]) for i in range(0, 75, 7)]  # noqa: E731
    streamed = separation_fuzziness_batches(batches, num_classes=3, batch_size=4)
    assert streamed == pytest.approx(separation_fuzziness(features, labels), rel=1e-12)


def test_fit_from_a_mapping_of_measured_layers():
    rng = np.random.default_rng(10)
    labels = np.repeat(np.arange(3), 30)
    means = rng.normal(size=(3, 8)) * 3
    noise = rng.normal(size=(90, 8))
    for k in range(3):  # centre the noise per class: the class means stay exactly `means`
        noise[labels == k] -= noise[labels == k].mean(0)
    layers = {}
    for depth, spread in enumerate([2.0, 1.0, 0.5, 0.25], start=1):
        layers[f"layer{depth}"] = measure(means[labels] + spread * noise, labels)
    fit = fit_separation_law(layers)
    # the within-class spread halves per layer, so D (a variance ratio) falls ~4x per layer
    assert fit.rho == pytest.approx(0.25, rel=1e-9)
    assert fit.r_squared == pytest.approx(1.0, abs=1e-12)
    dict_fit = fit_separation_law({name: m.to_dict() for name, m in layers.items()})
    assert dict_fit.rho == pytest.approx(fit.rho, rel=1e-12)
    assert fit.to_dict()["layers"] == list(layers)


def test_single_layer_is_an_error_naming_the_fix():
    with pytest.raises(ValueError, match="at least 2 layers"):
        fit_separation_law([0.5])
    with pytest.raises(ValueError, match="at least 2 layers"):
        fit_separation_law({})


def test_layers_of_unequal_n_are_an_error():
    a, la = _clusters([20, 20], dim=4, seed=5)
    b, lb = _clusters([20, 21], dim=4, seed=6)
    with pytest.raises(ValueError, match="different numbers of samples.*same samples"):
        fit_separation_law({"a": measure(a, la), "b": measure(b, lb)})


def test_bad_fuzziness_values_and_positions():
    with pytest.raises(ValueError, match="finite and > 0"):
        fit_separation_law([1.0, 0.0, 0.5])
    with pytest.raises(ValueError, match="finite and > 0"):
        fit_separation_law([1.0, float("nan")])
    with pytest.raises(ValueError, match="one per layer"):
        fit_separation_law([1.0, 0.5], positions=[1, 2, 3])
    with pytest.raises(ValueError, match="all equal"):
        fit_separation_law([1.0, 0.5], positions=[3, 3])
    with pytest.raises(ValueError, match="mapping layer-name"):
        fit_separation_law("layer1")
    with pytest.raises(ValueError, match="no nc1"):
        fuzziness_from_metrics({"num_classes": 3, "nc1": None})
    with pytest.raises(ValueError, match="unknown weighting"):
        separation_fuzziness(np.eye(3), [0, 1, 2], weighting="balanced")
