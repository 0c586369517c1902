"""Transfer: CDNV on held-out classes, few-shot NCC error, and the bound."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from neuralcollapse.frontier.transfer import class_distance_variance, few_shot_bound, few_shot_error
from neuralcollapse.metrics import measure


def _clusters(spread: float, seed: int = 0, k: int = 4, n: int = 30, d: int = 6):
    rng = np.random.default_rng(seed)
    centres = 3.0 * rng.standard_normal((k, d))
    labels = np.repeat(np.arange(k), n) + 5  # new classes keep their own labels
    features = centres[labels - 5] + spread * rng.standard_normal((k * n, d))
    return features, labels


def test_cdnv_matches_numpy_and_the_engine():
    features, labels = _clusters(0.8)
    result = class_distance_variance((features, labels))
    means = np.stack([features[labels == c].mean(0) for c in range(5, 9)])
    variances = np.array(
        [((features[labels == c] - means[i]) ** 2).sum(1).mean() for i, c in enumerate(range(5, 9))]
    )
    pairs = [
        (variances[i] + variances[j]) / (2 * np.sum((means[i] - means[j]) ** 2))
        for i in range(4)
        for j in range(4)
        if i != j
    ]
    assert result.value == pytest.approx(np.mean(pairs), rel=1e-12)
    assert result.classes.tolist() == [5, 6, 7, 8]
    assert result.value == pytest.approx(measure(features, labels - 5).cdnv, rel=1e-10)


def test_cdnv_streams_over_batches_and_restricts_to_classes():
    features, labels = _clusters(0.5, seed=1)
    order = np.random.default_rng(0).permutation(len(labels))
    features, labels = features[order], labels[order]

    def batches():
        return [(features[i : i + 17], labels[i : i + 17]) for i in range(0, len(labels), 17)]

    whole = class_distance_variance((features, labels), classes=[5, 7])
    streamed = class_distance_variance(batches, classes=[5, 7])
    keep = np.isin(labels, [5, 7])
    direct = class_distance_variance((features[keep], labels[keep]))
    assert streamed.value == pytest.approx(whole.value, rel=1e-12)
    assert whole.value == pytest.approx(direct.value, rel=1e-12)


def test_cdnv_is_invariant_to_scale_and_translation():
    features, labels = _clusters(0.5)
    a = class_distance_variance((features, labels)).value
    b = class_distance_variance((3.7 * features + 11.0, labels)).value
    assert a == pytest.approx(b, rel=1e-10)


def test_collapsed_classes_have_zero_few_shot_error():
    features, labels = _clusters(0.0)
    result = few_shot_error(features, labels, shots=1, episodes=20)
    assert result.mean == 0.0 and result.stderr == 0.0


def test_few_shot_error_against_a_direct_episode_loop():
    """The same random draws, classified by an independent NumPy nearest-centre rule."""
    features, labels = _clusters(2.5, seed=2)
    result = few_shot_error(features, labels, shots=3, episodes=15, seed=4)
    generator = torch.Generator().manual_seed(4)
    y = labels - 5
    members = [np.flatnonzero(y == c) for c in range(4)]
    errors = []
    for _ in range(15):
        chosen = torch.randperm(4, generator=generator)[:4].tolist()
        centres, queries, truth = [], [], []
        for position, c in enumerate(chosen):
            order = members[c][torch.randperm(len(members[c]), generator=generator).numpy()]
            centres.append(features[order[:3]].mean(0))
            queries.append(features[order[3:]])
            truth += [position] * (len(order) - 3)
        centres, queries = np.stack(centres), np.concatenate(queries)
        distances = ((queries[:, None, :] - centres[None]) ** 2).sum(-1)
        errors.append(np.mean(distances.argmin(1) != np.array(truth)))
    assert result.mean == pytest.approx(np.mean(errors), abs=1e-12)
    assert result.stderr == pytest.approx(np.std(errors, ddof=1) / np.sqrt(15), abs=1e-12)


@pytest.mark.parametrize("spread", [0.2, 0.4])
@pytest.mark.parametrize("shots", [1, 5])
def test_bound_holds_on_gaussian_clusters(spread, shots):
    features, labels = _clusters(spread, seed=3, n=60)
    cdnv = class_distance_variance((features, labels)).value
    error = few_shot_error(features, labels, shots=shots, episodes=200)
    bound = few_shot_bound(cdnv, 4, shots)
    assert bound < 1.0  # not vacuous in these settings
    assert error.mean <= bound


def test_bound_formula_and_monotonicity():
    assert few_shot_bound(0.01, 5, 1) == pytest.approx(4 * 18 * 0.01)
    assert few_shot_bound(0.01, 5, 5) < few_shot_bound(0.01, 5, 1)
    assert few_shot_bound(1.0, 5, 1) == 1.0


def test_bad_input_names_the_problem():
    features, labels = _clusters(0.5, n=4)
    with pytest.raises(ValueError, match="shots <= 3"):
        few_shot_error(features, labels, shots=4)
    with pytest.raises(ValueError, match=r"ways \(k\) must be an integer in \[2, 4\]"):
        few_shot_error(features, labels, ways=9)
    with pytest.raises(ValueError, match="have no samples"):
        class_distance_variance((features, labels), classes=[5, 42])
    with pytest.raises(ValueError, match="at least 2"):
        class_distance_variance((features, labels), classes=[5])
    with pytest.raises(TypeError, match="batches"):
        class_distance_variance(features)


def _exact_expected_error(features, labels, shots, ways):
    """Every episode enumerated: each k-subset of classes, each choice of supports; the
    class-averaged error of the rest as queries, averaged over all of them."""
    from itertools import combinations, product

    classes = sorted(set(labels.tolist()))
    members = {c: np.flatnonzero(labels == c) for c in classes}
    totals = []
    for subset in combinations(classes, ways):
        choices = [list(combinations(members[c], shots)) for c in subset]
        for supports in product(*choices):
            centres = np.stack([features[list(s)].mean(0) for s in supports])
            per_class = []
            for position, (c, support) in enumerate(zip(subset, supports, strict=True)):
                queries = [i for i in members[c] if i not in support]
                distances = ((features[queries][:, None] - centres[None]) ** 2).sum(-1)
                per_class.append(np.mean(distances.argmin(1) != position))
            totals.append(np.mean(per_class))
    return float(np.mean(totals))


@pytest.mark.parametrize("seed", range(12))
def test_the_bound_holds_exactly_on_every_episode_of_adversarial_sets(seed):
    """Small sets chosen to stress the proof (heavy tails, outliers, unequal classes, near
    classes): the exact expected error over all episodes never exceeds the bound computed
    from the same samples' CDNV, for any shots and any number of ways."""
    rng = np.random.default_rng(seed)
    k, d = 3, 2
    sizes = rng.integers(3, 6, size=k)  # unequal classes
    labels = np.repeat(np.arange(k), sizes)
    centres = rng.standard_normal((k, d)) * rng.choice([0.5, 2.0, 6.0])
    noise = rng.standard_t(df=1.5, size=(len(labels), d))  # heavy-tailed
    features = centres[labels] + noise * rng.choice([0.3, 1.0, 3.0])
    cdnv = class_distance_variance((features, labels)).value
    for shots in (1, 2):
        for ways in (2, 3):
            exact = _exact_expected_error(features, labels, shots, ways)
            assert exact <= few_shot_bound(cdnv, ways, shots) + 1e-12


def test_monte_carlo_error_converges_to_the_enumeration():
    rng = np.random.default_rng(3)
    labels = np.repeat(np.arange(3), [4, 5, 4])
    features = rng.standard_normal((len(labels), 2)) + 1.5 * labels[:, None]
    exact = _exact_expected_error(features, labels, 1, 3)
    sampled = few_shot_error(features, labels, shots=1, episodes=4000, seed=0)
    assert abs(sampled.mean - exact) < 4 * sampled.stderr + 1e-12
