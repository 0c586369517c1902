"""OOD scores against direct NumPy / scikit-learn computations, and the evaluation numbers."""

import numpy as np
import pytest
import scipy.special
import scipy.stats
import torch
from sklearn.decomposition import PCA
from sklearn.preprocessing import StandardScaler

from neuralcollapse.measures import SCORES, OODScorer, evaluate_ood, feature_statistics


@pytest.fixture(scope="module")
def setting():
    rng = np.random.default_rng(0)
    k, d, n = 4, 9, 40
    labels = np.repeat(np.arange(k), n)
    labels = np.concatenate([labels, np.zeros(17, dtype=int)])  # imbalanced on purpose
    means = rng.normal(size=(k, d)) * 3
    scales = rng.uniform(0.5, 2.0, size=d)  # unequal coordinates: standardisation matters
    train = (means[labels] + rng.normal(size=(labels.size, d))) * scales + 1.5
    weights, bias = rng.normal(size=(k, d)), rng.normal(size=k)
    test = (means[rng.integers(0, k, 50)] + rng.normal(size=(50, d))) * scales + 1.5
    ood = rng.normal(size=(60, d)) * 4
    scorer = OODScorer.fit(train, labels, weights, bias)
    return dict(
        train=train,
        labels=labels,
        weights=weights,
        bias=bias,
        test=test,
        ood=ood,
        scorer=scorer,
        k=k,
        d=d,
    )


@pytest.mark.parametrize("count", [1, 3, 9])
def test_neco_matches_scikit_learn_standard_scaler_and_pca(setting, count):
    scaler = StandardScaler().fit(setting["train"])
    pca = PCA(n_components=setting["d"]).fit(scaler.transform(setting["train"]))
    z = scaler.transform(setting["test"])
    expected = np.linalg.norm(pca.transform(z)[:, :count], axis=1) / np.linalg.norm(z, axis=1)
    got = setting["scorer"].score(setting["test"], "neco", num_directions=count)
    assert np.allclose(got, expected, rtol=1e-9, atol=1e-12)


def test_neco_raw_and_max_logit_variant_match_numpy(setting):
    train, test = setting["train"], setting["test"]
    covariance = np.cov(train, rowvar=False, bias=True)
    axes = np.linalg.eigh(covariance)[1][:, ::-1][:, :3]
    raw = np.linalg.norm(test @ axes, axis=1) / np.linalg.norm(test, axis=1)
    scorer = setting["scorer"]
    assert np.allclose(
        scorer.score(test, "neco", num_directions=3, standardize=False), raw, rtol=1e-9
    )
    logits = test @ setting["weights"].T + setting["bias"]
    neco = scorer.score(test, "neco", num_directions=3)
    assert np.allclose(
        scorer.score(test, "neco_max_logit", num_directions=3), neco * logits.max(1), rtol=1e-12
    )
    assert np.all((neco >= 0) & (neco <= 1 + 1e-12))
    full = scorer.score(test, "neco", num_directions=setting["d"])
    assert np.allclose(full, 1.0, atol=1e-12)  # all axes: the projection keeps the whole norm


def test_logit_scores_match_scipy(setting):
    scorer, test = setting["scorer"], setting["test"]
    logits = test @ setting["weights"].T + setting["bias"]
    assert np.allclose(scorer.score(test, "max_logit"), logits.max(1), rtol=1e-12)
    assert np.allclose(
        scorer.score(test, "msp"), scipy.special.softmax(logits, 1).max(1), rtol=1e-12
    )
    assert np.allclose(
        scorer.score(test, "energy", temperature=2.0),
        2.0 * scipy.special.logsumexp(logits / 2.0, axis=1),
        rtol=1e-12,
    )


def test_mahalanobis_matches_a_direct_computation(setting):
    train, labels, test = setting["train"], setting["labels"], setting["test"]
    means = np.array([train[labels == c].mean(0) for c in range(setting["k"])])
    residual = train - means[labels]
    precision = np.linalg.inv(residual.T @ residual / len(labels))
    distances = np.array([[(h - m) @ precision @ (h - m) for m in means] for h in test])
    got = setting["scorer"].score(test, "mahalanobis")
    assert np.allclose(got, -distances.min(1), rtol=1e-9)


def test_nci_and_mean_alignment_match_direct_computations(setting):
    train, labels, test = setting["train"], setting["labels"], setting["test"]
    weights, bias = setting["weights"], setting["bias"]
    centre = train.mean(0)
    predicted = (test @ weights.T + bias).argmax(1)
    u = test - centre
    p_score = np.einsum("ij,ij->i", weights[predicted], u) / np.linalg.norm(u, axis=1)
    scorer = setting["scorer"]
    assert np.allclose(scorer.score(test, "nci"), p_score, rtol=1e-10)
    with_norm = p_score + 0.01 * np.abs(test).sum(1)
    assert np.allclose(scorer.score(test, "nci", alpha=0.01), with_norm, rtol=1e-10)

    means = np.array([train[labels == c].mean(0) for c in range(setting["k"])])
    mu_g = means.mean(0)
    centred = means - mu_g
    v = test - mu_g
    cosines = (v @ centred.T) / np.linalg.norm(v, axis=1)[:, None] / np.linalg.norm(centred, axis=1)
    assert np.allclose(scorer.score(test, "mean_alignment"), cosines.max(1), rtol=1e-10)


def test_streamed_fit_and_chunked_scoring_give_the_same_scores(setting):
    train, labels = torch.as_tensor(setting["train"], dtype=torch.float32), setting["labels"]
    batches = lambda: [(train[i : i + 16], labels[i : i + 16]) for i in range(0, len(labels), 16)]  # noqa: E731
    streamed = OODScorer.fit_batches(
        batches, num_classes=setting["k"], weights=setting["weights"], bias=setting["bias"]
    )
    whole = OODScorer.fit(train, labels, setting["weights"], setting["bias"])
    for method in SCORES:
        a = streamed.score(setting["ood"], method, batch_size=7)
        b = whole.score(setting["ood"], method)
        assert np.allclose(a, b, rtol=1e-9, atol=1e-12), method


def test_scores_without_classifier_are_the_classifier_free_ones(setting):
    stats = feature_statistics(setting["train"], setting["labels"])
    scores = OODScorer(stats).scores(setting["test"])
    assert set(scores) == {"mahalanobis", "neco", "mean_alignment"}
    with pytest.raises(ValueError, match="needs the classifier"):
        OODScorer(stats).score(setting["test"], "msp")


def test_separated_scores_detect_perfectly_and_reversed_ones_never():
    inside, outside = np.arange(10.0, 20.0), np.arange(0.0, 10.0)
    good = evaluate_ood(inside, outside)
    assert good.auroc == 1.0 and good.fpr_at_95_tpr == 0.0
    assert good.aupr_in == pytest.approx(1.0) and good.aupr_out == pytest.approx(1.0)
    bad = evaluate_ood(outside, inside)
    assert bad.auroc == 0.0 and bad.fpr_at_95_tpr == 1.0


def test_auroc_and_fpr95_against_a_case_with_a_known_answer():
    # ID scores 0..99; keeping 95 % of them puts the threshold at 5. OOD: 30 scores at 50.5
    # (accepted at that threshold), 70 at -10 (rejected): FPR at 95 % TPR is exactly 0.3
    inside = np.arange(100.0)
    outside = np.concatenate([np.full(30, 50.5), np.full(70, -10.0)])
    result = evaluate_ood(inside, outside)
    assert result.fpr_at_95_tpr == pytest.approx(0.3)
    # AUROC = P(ID > OOD): every ID beats the 70 low ones, 49 of 100 beat 50.5
    assert result.auroc == pytest.approx((70 * 100 + 30 * 49) / (100 * 100))
    u = scipy.stats.mannwhitneyu(inside, outside).statistic
    assert result.auroc == pytest.approx(u / (100 * 100))
    tiny = evaluate_ood([1.0, 3.0], [0.0, 2.0])
    assert tiny.auroc == pytest.approx(0.75)
    assert result.to_dict()["num_ood"] == 100


def test_error_messages(setting):
    scorer = setting["scorer"]
    with pytest.raises(ValueError, match="at least 2 .*out-of-distribution"):
        evaluate_ood([1.0, 2.0, 3.0], [0.5])
    with pytest.raises(ValueError, match="ood_scores contains NaN"):
        evaluate_ood([1.0, 2.0], [0.5, float("nan")])
    bad = setting["ood"].copy()
    bad[5, 2] = np.nan
    with pytest.raises(ValueError, match="ood_features contains NaN.*index 5"):
        scorer.score(bad, "neco", name="ood_features")
    for count in (0, setting["d"] + 1):
        with pytest.raises(
            ValueError, match=r"num_directions must be an integer in \[1, 9\].*principal"
        ):
            scorer.score(setting["test"], "neco", num_directions=count)
    with pytest.raises(ValueError, match="unknown OOD score"):
        scorer.score(setting["test"], "odin")
    with pytest.raises(ValueError, match="dimension 3 but the training features had 9"):
        scorer.score(np.ones((4, 3)), "msp")
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        scorer.score(setting["test"], "energy", temperature=0)
    with pytest.raises(ValueError, match="alpha must be a finite number >= 0"):
        scorer.score(setting["test"], "nci", alpha=-1)
    with pytest.raises(ValueError, match="1-D array of scores"):
        evaluate_ood(np.ones((2, 2)), [1.0, 2.0])


def test_all_scores_in_one_pass_equal_each_score_alone_and_scan_each_chunk_once(
    setting, monkeypatch
):
    import neuralcollapse.measures.ood_scores as ood_scores

    scorer = setting["scorer"]
    alone = {m: scorer.score(setting["ood"], m, batch_size=7, alpha=0.01) for m in SCORES}
    scanned = []
    original = ood_scores.check_finite_chunk

    def counting(chunk, name, offset=0):
        scanned.append(offset)
        original(chunk, name, offset)

    monkeypatch.setattr(ood_scores, "check_finite_chunk", counting)
    together = scorer.scores(setting["ood"], SCORES, batch_size=7, alpha=0.01)
    assert list(together) == list(SCORES)
    for method in SCORES:  # each kernel gets its own copy of the chunk: bitwise the same
        assert np.array_equal(together[method], alone[method]), method
    assert scanned == list(range(0, len(setting["ood"]), 7))  # once per chunk, not per method
    bad = setting["ood"].copy()
    bad[9, 2] = np.nan
    with pytest.raises(ValueError, match=r"^ood contains NaN or inf .*first at index 9"):
        scorer.scores(bad, SCORES, name="ood")
