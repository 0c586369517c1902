"""UFMProblem: the objective against an independent NumPy computation, and input validation."""

import math

import numpy as np
import pytest
import torch

from neuralcollapse.ufm import UFMProblem, from_normalized_penalties, theory


def _numpy_objective(problem, weights, features, bias):
    z = features
    for index, w in enumerate(weights):
        z = w @ z
        if index < len(weights) - 1 and problem.activation == "relu":
            z = np.maximum(z, 0)
    logits = z + (0 if bias is None else bias[:, None])
    labels = np.repeat(np.arange(problem.num_classes), problem.class_counts)
    n_total = len(labels)
    if problem.loss == "mse":
        targets = np.eye(problem.num_classes)[:, labels]
        fit = ((logits - targets) ** 2).sum() / (2 * n_total)
    else:
        shifted = logits - logits.max(axis=0)
        log_probs = shifted - np.log(np.exp(shifted).sum(axis=0))
        fit = -log_probs[labels, np.arange(n_total)].sum() / n_total
    pairs = zip(problem.layer_lams, weights, strict=True)
    penalty = sum(lam / 2 * (w**2).sum() for lam, w in pairs)
    penalty += problem.lam_h / 2 * (features**2).sum()
    if problem.bias == "regularized":
        penalty += problem.lam_b / 2 * (bias**2).sum()
    return fit + penalty


@pytest.mark.parametrize(
    "fields",
    [
        dict(),
        dict(loss="ce", bias="free"),
        dict(bias=0.7),
        dict(depth=3, activation="relu", hidden_dims=(4, 6), lam_w=(0.1, 0.2, 0.3)),
        dict(per_class=(2, 3, 1), loss="ce"),
    ],
)
def test_objective_equals_independent_numpy_formula(fields):
    fields = {"per_class": 2, **fields}
    problem = UFMProblem(3, dim=5, lam_h=0.05, **fields)
    rng = np.random.default_rng(0)
    weights = [rng.normal(size=shape) for shape in problem.layer_shapes]
    features = rng.normal(size=(5, problem.num_samples))
    bias = rng.normal(size=3) if problem.has_bias else None
    value = problem.objective(
        [torch.from_numpy(w) for w in weights],
        torch.from_numpy(features),
        None if bias is None else torch.from_numpy(bias),
    )
    assert float(value) == pytest.approx(
        _numpy_objective(problem, weights, features, bias), rel=1e-12
    )


def test_normalized_penalties_map_threshold_to_k_mu_equal_one():
    # Tirer & Bruna: sqrt(lam'_W lam'_H) = 1 is the collapse-to-zero threshold
    problem = from_normalized_penalties(4, 5, 20, 0.5, 2.0)
    assert problem.lam_w == pytest.approx(0.5 / 4)
    assert problem.lam_h == pytest.approx(2.0 / 20)
    assert theory(problem).control == pytest.approx(1.0)


def test_balanced_counts_given_as_a_list_are_balanced():
    assert UFMProblem(3, [4, 4, 4], 5).balanced
    assert UFMProblem(3, [4, 4, 4], 5).per_class == 4


@pytest.mark.parametrize(
    "fields,message",
    [
        (
            dict(num_classes=1),
            "num_classes must be an integer >= 2 (collapse needs at least two classes)",
        ),
        (dict(per_class=0), "per_class (n) must be an integer >= 1"),
        (dict(per_class=[2, 0, 1]), r"per_class\[1\] must be an integer >= 1"),
        (dict(per_class=[2, 2]), "one per class"),
        (dict(loss="hinge"), "unknown loss 'hinge'"),
        (dict(activation="tanh"), "unknown activation 'tanh'"),
        (dict(lam_w=0.0), "lam_w (layer 1) must be a finite number > 0"),
        (dict(lam_h=-1e-3), "lam_h must be a finite number > 0"),
        (dict(lam_h=math.nan), "lam_h must be a finite number > 0"),
        (dict(bias=-0.5), "regularised bias needs lam_b > 0"),
        (dict(bias="shifted"), "unknown bias 'shifted'"),
        (dict(lam_b=0.3), "only used with a regularised bias"),
        (dict(depth=0), "depth (number of weight layers L) must be an integer >= 1"),
        (dict(depth=2, lam_w=(0.1, 0.2, 0.3)), "one value per weight layer"),
        (dict(depth=2, hidden_dims=(4, 4)), "hidden_dims needs depth-1 = 1 widths"),
    ],
)
def test_invalid_problem_is_rejected_with_a_clear_message(fields, message):
    arguments = {"num_classes": 3, "per_class": 2, "dim": 5, **fields}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        UFMProblem(**arguments)


def test_objective_rejects_wrong_shapes():
    problem = UFMProblem(3, 2, 5)
    with pytest.raises(ValueError, match=r"H must have shape \(d, N\) = \(5, 6\)"):
        problem.objective([torch.zeros(3, 5)], torch.zeros(5, 7))
    with pytest.raises(ValueError, match=r"W_1 must have shape \(3, 5\)"):
        problem.objective([torch.zeros(3, 4)], torch.zeros(5, 6))
    with pytest.raises(ValueError, match="no bias"):
        problem.objective([torch.zeros(3, 5)], torch.zeros(5, 6), torch.zeros(3))


def test_counts_and_widths_are_checked_one_by_one():
    problem = UFMProblem(num_classes=3, per_class=(np.int64(4), 4, 2), dim=5)
    assert problem.per_class == (4, 4, 2) and all(type(c) is int for c in problem.per_class)
    assert UFMProblem(num_classes=3, per_class=[3, 3, 3], dim=5).per_class == 3
    with pytest.raises(ValueError, match=r"^per_class\[0\] must be an integer >= 1"):
        UFMProblem(num_classes=3, per_class=(True, 2, 2), dim=5)
    with pytest.raises(ValueError, match=r"^hidden_dims\[1\] must be an integer >= 1"):
        UFMProblem(num_classes=3, per_class=2, dim=5, depth=3, hidden_dims=(4, 0))
    deep = UFMProblem(num_classes=3, per_class=2, dim=5, depth=3, hidden_dims=(np.int32(4), 6))
    assert deep.hidden_dims == (4, 6)
