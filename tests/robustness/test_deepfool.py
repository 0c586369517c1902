"""DeepFool against its closed form on affine classifiers, against ART on a small net, and its
contract (model modes, no parameter gradients, bad input, an attack that never succeeds)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from torch import nn

from neuralcollapse.robustness import (
    deepfool,
    describe_cost,
    empty_row,
    robustness,
    seconds_per_image,
    subset_indices,
)
from neuralcollapse.robustness.deepfool_attack import ROW_KEYS, _class_gradients
from neuralcollapse.train.nets import build_net


@pytest.fixture(autouse=True)
def one_torch_thread():
    # tiny models: extra intra-op threads only add synchronisation on a busy machine
    previous = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(previous)


def _hyperplane_distance(weight, bias, images):
    """Distance from each x to the complement of its decision cell of an affine classifier:
    min_{j != c} |f_j - f_c| / ||w_j - w_c|| (the cell is an intersection of half-spaces),
    and the class j that attains it."""
    logits = images @ weight.T + bias
    decision = logits.argmax(dim=1)
    rows = torch.arange(len(images))
    gaps = (logits - logits[rows, decision].unsqueeze(1)).abs()
    normals = (weight.unsqueeze(0) - weight[decision].unsqueeze(1)).norm(dim=2)
    distance = gaps / normals
    distance[rows, decision] = float("inf")
    best = distance.min(dim=1)
    return best.values, best.indices, decision


@pytest.mark.parametrize("overshoot", [0.02, 1e-3])
def test_linear_classifier_matches_distance_to_nearest_hyperplane(overshoot):
    torch.manual_seed(0)
    model = nn.Linear(12, 5).double()
    images = 3 * torch.randn(60, 12, dtype=torch.float64)
    result = deepfool(model, images, overshoot=overshoot)
    with torch.no_grad():
        distance, nearest, decision = _hyperplane_distance(model.weight, model.bias, images)
    assert bool(result.success.all())
    assert result.steps.tolist() == [1] * 60  # affine: the first linearisation is exact
    torch.testing.assert_close(result.norms / (1 + overshoot), distance, rtol=1e-6, atol=0)
    # the direction is the normal of the nearest hyperplane, towards it
    normal = model.weight[nearest] - model.weight[decision]
    cosine = torch.nn.functional.cosine_similarity(result.perturbations, normal.detach(), dim=1)
    torch.testing.assert_close(cosine, torch.ones(60, dtype=torch.float64), rtol=0, atol=1e-9)
    with torch.no_grad():
        assert bool((model(images + result.perturbations).argmax(1) != decision).all())
        # minimal: just short of the distance the decision has not changed yet
        inside = images + 0.999 * result.perturbations / (1 + overshoot)
        assert bool((model(inside).argmax(1) == decision).all())
    assert result.original.tolist() == decision.tolist()
    torch.testing.assert_close(result.input_norms, images.norm(dim=1))


def test_linear_classifier_on_image_shaped_input():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Flatten(), nn.Linear(2 * 3 * 4, 4)).double()
    images = torch.randn(10, 2, 3, 4, dtype=torch.float64)
    result = deepfool(model, images, overshoot=0.02, batch_size=3)  # several batches
    distance, _, _ = _hyperplane_distance(
        model[1].weight.detach(), model[1].bias.detach(), images.reshape(10, -1)
    )
    assert result.perturbations.shape == images.shape
    torch.testing.assert_close(result.norms / 1.02, distance, rtol=1e-6, atol=0)


def test_class_gradients_equal_the_jacobian():
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    points = torch.randn(4, 6, dtype=torch.float64)
    logits, grads = _class_gradients(net, points)
    for b in range(4):
        jacobian = torch.autograd.functional.jacobian(net, points[b : b + 1])[0, :, 0, :]
        torch.testing.assert_close(grads[b], jacobian)
    torch.testing.assert_close(logits, net(points).detach())


def test_class_gradients_without_batched_backward(monkeypatch):
    """The per-class loop (for operators without a batched backward rule) gives the same."""
    torch.manual_seed(2)
    net = nn.Sequential(nn.Linear(6, 8), nn.Tanh(), nn.Linear(8, 3)).double()
    points = torch.randn(4, 6, dtype=torch.float64)
    _, batched = _class_gradients(net, points)
    original = torch.autograd.grad

    def no_batching(*args, is_grads_batched=False, **kwargs):
        if is_grads_batched:
            raise RuntimeError("no batching rule")
        return original(*args, **kwargs)

    monkeypatch.setattr(torch.autograd, "grad", no_batching)
    _, looped = _class_gradients(net, points)
    torch.testing.assert_close(looped, batched)


def _tanh_net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(
        nn.Linear(20, 32), nn.Tanh(), nn.Linear(32, 32), nn.Tanh(), nn.Linear(32, 5)
    )


def _art_perturbations(net, images, overshoot, max_steps):
    pytest.importorskip("art")
    from art.attacks.evasion import DeepFool
    from art.estimators.classification import PyTorchClassifier

    logging.getLogger("art").setLevel(logging.ERROR)  # the clip_values=None notice
    classifier = PyTorchClassifier(
        net, loss=nn.CrossEntropyLoss(), input_shape=tuple(images.shape[1:]), nb_classes=5
    )
    attack = DeepFool(
        classifier,
        max_iter=max_steps,
        epsilon=overshoot,
        nb_grads=5,
        batch_size=len(images),
        verbose=False,
    )
    return torch.from_numpy(attack.generate(images.numpy())) - images


def test_agrees_with_art_deepfool_without_overshoot_in_the_stopping_test():
    """ART iterates x_{i+1} = x_i + r_i, stops when x_i is fooled, and returns
    (1 + eps) sum r_i; ours with overshoot 0 is that iteration, so ours x (1 + eps) must equal
    ART's perturbation on every image both fool. Tolerance 1e-4 relative: both run in float32
    (eps 6e-8) through up to ~5 steps whose last ones start near the boundary, where a float32
    logit difference is amplified; ART also adds 1e-7 to the norms it divides by.

    With overshoot 0 an iterate can end on the boundary itself; whether float32 rounding then
    puts it one side or the other depends on the CPU's kernels (issue 21), so the comparison
    is over the images both fool, and each must fool nearly all of them."""
    net = _tanh_net()
    torch.manual_seed(3)
    images = torch.randn(40, 20)
    eps = 0.02
    art = _art_perturbations(net, images, eps, 50)
    ours = deepfool(net, images, overshoot=0.0, max_steps=50)
    with torch.no_grad():
        art_fooled = net(images + art).argmax(1) != net(images).argmax(1)
    assert int(ours.success.sum()) >= 38
    assert int(art_fooled.sum()) >= 38
    both = ours.success & art_fooled
    assert int(both.sum()) >= 36
    assert int(ours.steps[both].max()) >= 3  # a nonlinear case, not just one exact step
    difference = (ours.perturbations * (1 + eps) - art).norm(dim=1) / art.norm(dim=1)
    assert float(difference[both].max()) < 1e-4


def test_an_input_on_a_decision_boundary_is_fooled_at_distance_zero():
    # tied top logits: the point is on the boundary of its own decision cell
    model = nn.Linear(3, 4, bias=False).double()
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, 0, 0], [0, 1, 0], [0, 0, 1], [-1, -1, -1]]))
    images = torch.tensor([[1.0, 1.0, 0.0], [1.0, 3.0, 0.0], [2.0, 0.1, 0.2]]).double()
    result = deepfool(model, images, overshoot=0.02)
    # image 0: logits (1, 1, 0, -2) tie classes 0 and 1; argmax says 0, the rival is 1
    assert result.success.tolist() == [True, True, True]
    assert result.steps[0] == 0 and float(result.norms[0]) == 0.0
    assert result.original[0] == 0 and result.perturbed[0] == 1
    # the tie broken the other way round (rival listed first) is the same point
    flipped = deepfool(_swap_rows(model), images[:1], overshoot=0.02)
    assert flipped.steps[0] == 0 and float(flipped.norms[0]) == 0.0
    # images off the boundary still take a real step, and the mean ratio counts image 0
    assert bool((result.steps[1:] >= 1).all()) and bool((result.norms[1:] > 0).all())
    rows = robustness(model, images, torch.tensor([0, 1, 0]))
    assert rows.succeeded == 3
    assert rows.mean_ratio == pytest.approx(float(result.ratios.mean()), rel=1e-12)


def _swap_rows(model: nn.Linear) -> nn.Linear:
    swapped = nn.Linear(model.in_features, model.out_features, bias=False).double()
    with torch.no_grad():
        swapped.weight.copy_(model.weight[[1, 0, 2, 3]])
    return swapped


def test_paper_overshoot_stops_no_later_than_art():
    """With overshoot in the stopping test (ours), an image stops at the first step whose
    returned point x + (1 + eps) sum r_i is fooled; ART tests x + sum r_i, which is fooled no
    earlier. Where both stop at the same step (ours with overshoot 0.02 takes as many steps
    as with 0, which is ART's iteration) the perturbations are ART's to float32 precision;
    where ours stops earlier it is shorter; and the mean ratio differs by under 1% here."""
    net = _tanh_net()
    torch.manual_seed(3)
    images = torch.randn(40, 20)
    art = _art_perturbations(net, images, 0.02, 50).double().norm(dim=1)
    ours = deepfool(net, images, overshoot=0.02, max_steps=50)
    art_steps = deepfool(net, images, overshoot=0.0, max_steps=50).steps
    assert bool((ours.steps <= art_steps).all())
    same = ours.steps == art_steps
    earlier = ~same
    assert 0 < int(earlier.sum()) < 40  # both cases occur
    relative = (ours.norms - art) / art
    assert float(relative[same].abs().max()) < 1e-4
    assert bool((relative[earlier] < 0).all())
    mean_ours = float((ours.norms / ours.input_norms).mean())
    mean_art = float((art / ours.input_norms).mean())
    assert abs(mean_ours - mean_art) / mean_art < 0.01


def test_robustness_mean_over_a_seeded_subset():
    net = _tanh_net(1)
    torch.manual_seed(4)
    images = torch.randn(50, 20)
    labels = torch.randint(0, 5, (50,))
    result = robustness(net, images, labels, subset=20, seed=7)
    indices = subset_indices(50, 20, 7)
    assert result.indices == indices.tolist()
    assert len(set(result.indices)) == 20
    direct = deepfool(net, images[indices])
    ratios = direct.norms / direct.input_norms
    assert result.count == 20 and result.succeeded == int(direct.success.sum())
    assert result.mean_ratio == pytest.approx(float(ratios[direct.success].mean()), rel=1e-12)
    correct = direct.original == labels[indices]
    assert result.accuracy == pytest.approx(float(correct.double().mean()))
    if bool((correct & direct.success).any()):
        expected = float(ratios[correct & direct.success].mean())
        assert result.mean_ratio_correct == pytest.approx(expected, rel=1e-12)
    row = result.to_row()
    assert set(ROW_KEYS) <= set(row) and row["deepfool_ratio"] == result.mean_ratio
    assert set(empty_row()) == set(ROW_KEYS) and not any(empty_row().values())
    json.dumps(result.to_dict(), allow_nan=False)
    json.dumps(row, allow_nan=False)
    # same seed, same images; another seed, others
    assert subset_indices(50, 20, 7).tolist() == result.indices
    assert subset_indices(50, 20, 8).tolist() != result.indices
    assert subset_indices(50, None).tolist() == list(range(50))


def test_model_modes_restored_and_no_parameter_gradients():
    torch.manual_seed(5)
    net = nn.Sequential(
        nn.Linear(20, 16), nn.BatchNorm1d(16), nn.ReLU(), nn.Dropout(0.5), nn.Linear(16, 4)
    )
    net.train()
    net[1].eval()  # a frozen BN inside a training model: mixed modes must survive
    before = [m.training for m in net.modules()]
    running = net[1].running_mean.clone()
    images = torch.randn(12, 20)
    first = robustness(net, images, subset=12)
    assert [m.training for m in net.modules()] == before
    assert all(p.grad is None for p in net.parameters())
    torch.testing.assert_close(net[1].running_mean, running)  # eval: BN statistics untouched
    # eval mode during the attack: dropout off, so the measurement is reproducible
    second = robustness(net, images, subset=12)
    assert first.mean_ratio == second.mean_ratio


def test_project_cnn_is_fooled_and_restored():
    torch.manual_seed(6)
    net = build_net("cnn", (1, 12, 12), 10, base_channels=4)
    net.train()
    images = torch.randn(6, 1, 12, 12)
    result = deepfool(net, images, max_steps=50)
    assert net.training
    assert bool(result.success.all())
    with torch.no_grad():
        net.eval()
        assert bool((net(images + result.perturbations).argmax(1) != result.original).all())


def test_attack_that_never_succeeds_is_reported_without_division():
    class Constant(nn.Module):
        """Logits that do not depend on the input: no direction changes the decision."""

        def forward(self, x):
            return 0.0 * x.reshape(len(x), -1).sum(1, keepdim=True) + torch.tensor([1.0, 0, 0])

    images = torch.randn(8, 5)
    result = robustness(Constant(), images, torch.zeros(8, dtype=torch.long), max_steps=3)
    assert result.succeeded == 0 and result.failed_fraction == 1.0
    assert result.mean_ratio is None and result.mean_steps is None
    assert "none of the 8 images" in result.not_computed["mean_ratio"]
    assert result.accuracy == 1.0 and result.mean_ratio_correct is None
    text = json.dumps(result.to_dict(), allow_nan=False)
    assert "not_computed" in text


def test_step_limit_counts_as_failure():
    net = _tanh_net(2)
    torch.manual_seed(7)
    images = torch.randn(30, 20)
    full = deepfool(net, images, overshoot=0.0, max_steps=50)
    assert int(full.steps.max()) >= 2
    limited = robustness(net, images, overshoot=0.0, max_steps=1)
    expected = float((full.steps > 1).double().mean())
    assert limited.failed_fraction == pytest.approx(expected)


@pytest.mark.parametrize("subset", [51, -1, 0])
def test_bad_subset(subset):
    net = _tanh_net()
    with pytest.raises(ValueError, match="subset"):
        robustness(net, torch.randn(50, 20), subset=subset)


def test_subset_error_names_the_split_size():
    with pytest.raises(ValueError, match="has 50 images; choose at most 50"):
        subset_indices(50, 51)


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_non_finite_images(bad):
    images = torch.randn(5, 20)
    images[3, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite.*index \\[3\\]"):
        robustness(_tanh_net(), images)
    with pytest.raises(ValueError, match="NaN or infinite"):
        deepfool(_tanh_net(), images)


def test_other_bad_input():
    net = _tanh_net()
    images = torch.randn(5, 20)
    with pytest.raises(ValueError, match="floating point"):
        deepfool(net, torch.ones(5, 20, dtype=torch.long))
    with pytest.raises(ValueError, match="overshoot"):
        deepfool(net, images, overshoot=-0.1)
    with pytest.raises(ValueError, match="max_steps"):
        deepfool(net, images, max_steps=0)
    with pytest.raises(ValueError, match="shape \\(N,\\)"):
        robustness(net, images, torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match="\\[0, 5\\)"):
        robustness(net, images, torch.tensor([0, 1, 2, 3, 5]))
    zero = images.clone()
    zero[1] = 0
    with pytest.raises(ValueError, match="norm 0"):
        robustness(net, zero)
    with pytest.raises(ValueError, match="logits of shape"):
        deepfool(lambda x: x.sum(1), images)


def test_cost_estimate_and_message():
    net = _tanh_net()
    each = seconds_per_image(net, torch.randn(30, 20), probe=8)
    assert each > 0
    assert describe_cost(0.01, 100, 32) == (
        "DeepFool on 100 images: ~1 s per measurement, ~32 s for 32 measurements (estimate)"
    )


class _NoGradForward(nn.Module):
    def __init__(self):
        super().__init__()
        self.net = nn.Linear(4, 3)

    def forward(self, x):
        with torch.no_grad():
            return self.net(x)


def test_a_forward_under_no_grad_is_named_not_a_traceback():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match=r"logits carry no gradient.*torch.no_grad\(\)"):
        deepfool(_NoGradForward(), torch.randn(5, 4))


def test_the_attack_works_when_the_caller_is_under_no_grad():
    torch.manual_seed(0)
    model = nn.Linear(4, 3).double()
    images = torch.randn(6, 4, dtype=torch.float64)
    expected = deepfool(model, images)
    with torch.no_grad():
        inside = deepfool(model, images)
    torch.testing.assert_close(inside.perturbations, expected.perturbations)
