"""measure_model on any nn.Module equals measure on features extracted by hand."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neuralcollapse import measure
from neuralcollapse.integrations import ModelBatch, measure_model
from neuralcollapse.metrics.stats import RoundingLevelWarning
from neuralcollapse.train.nets import build_net
from neuralcollapse.train.probe import FeatureProbe

NUM_CLASSES = 4


def _data(shape=(1, 8, 8), n=96, seed=0):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % NUM_CLASSES
    # class-dependent inputs so that every layer separates the classes a little
    images = torch.randn(n, *shape, generator=generator, dtype=torch.float64)
    images += 0.5 * labels.view(-1, *([1] * len(shape))).to(torch.float64)
    return images, labels


def _loader(images, labels, batch_size=25):
    return DataLoader(TensorDataset(images, labels), batch_size=batch_size)


def _assert_same(result, expected, tolerance=1e-10):
    got, want = result.to_dict(), expected.to_dict()
    assert got.keys() == want.keys()
    for key, value in want.items():
        if value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=tolerance, abs=tolerance), key


@pytest.mark.parametrize("arch", ["mlp", "cnn", "vgg11", "resnet18"])
def test_project_nets_equal_hand_extracted_features_at_every_layer(arch):
    torch.manual_seed(1)
    net = build_net(arch, (1, 8, 8), NUM_CLASSES, width=16, depth=2, base_channels=8)
    net = net.double().eval()
    images, labels = _data()
    layers = list(net.probe_layers)
    result = measure_model(
        net, _loader(images, labels), layers=[*layers, "penultimate"], classifier="classifier"
    )
    assert list(result) == [*layers, "penultimate"]  # model order, classifier input last
    with torch.no_grad(), FeatureProbe(net, layers) as probe:
        by_hand = probe.features(images)
    for layer in layers:
        _assert_same(result[layer], measure(by_hand[layer], labels))
    weights, bias = net.classifier.weight.detach(), net.classifier.bias.detach()
    _assert_same(result["penultimate"], measure(by_hand["penultimate_post"], labels, weights, bias))


def test_a_plain_sequential_equals_hand_extracted_features():
    torch.manual_seed(2)
    model = nn.Sequential(
        nn.Conv2d(1, 6, 3, padding=1),
        nn.ReLU(),
        nn.Flatten(),
        nn.Linear(6 * 64, 12),
        nn.ReLU(),
        nn.Linear(12, NUM_CLASSES),
    ).double()
    images, labels = _data()
    result = measure_model(
        model, _loader(images, labels), layers="0, 3, penultimate", classifier=model[5]
    )
    with torch.no_grad():
        conv = model[0](images)
        hidden = model[3](model[2](model[1](conv)))
        penultimate = model[4](hidden)
    _assert_same(result["0"], measure(conv.mean(dim=(2, 3)), labels))  # spatial mean
    _assert_same(result["3"], measure(hidden, labels))
    _assert_same(
        result["penultimate"],
        measure(penultimate, labels, model[5].weight.detach(), model[5].bias.detach()),
    )


def test_float32_model_on_any_batching_matches_float64_statistics_of_its_features():
    torch.manual_seed(3)
    model = nn.Sequential(nn.Linear(10, 8), nn.Tanh(), nn.Linear(8, NUM_CLASSES))
    inputs, labels = _data(shape=(10,))
    result = measure_model(model, _loader(inputs, labels, 7), layers=["1"], num_classes=4)
    with torch.no_grad():
        features = model[1](model[0](inputs.float()))  # inputs follow the model's dtype
    _assert_same(result["1"], measure(features, labels), tolerance=1e-6)


def test_mode_is_restored_hooks_removed_and_no_graph_kept_also_after_an_error():
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.Linear(8, NUM_CLASSES)).double()
    model.train()
    inputs, labels = _data(shape=(10,))
    result = measure_model(model, _loader(inputs, labels), layers=["1"], classifier="2")
    assert model.training and all(m.training for m in model.modules())
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())
    assert all(p.grad is None for p in model.parameters())
    assert result["1"].num_samples == len(labels)

    def broken():
        yield inputs[:10], labels[:10]
        raise RuntimeError("the loader broke")

    model.eval()
    with pytest.raises(RuntimeError, match="loader broke"):
        measure_model(model, broken, layers=["1"], classifier="2")
    assert not model.training
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_batch_norm_running_statistics_are_not_changed_by_measuring():
    model = nn.Sequential(nn.Linear(10, 8), nn.BatchNorm1d(8), nn.Linear(8, NUM_CLASSES)).double()
    before = model[1].running_mean.clone()
    inputs, labels = _data(shape=(10,))
    measure_model(model.train(), _loader(inputs, labels), layers=["1"], classifier="2")
    assert torch.equal(model[1].running_mean, before)  # eval mode during the passes


def test_a_function_returning_batches_and_a_batch_fn_are_accepted():
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, NUM_CLASSES)).double()
    inputs, labels = _data(shape=(10,))
    triples = [(inputs[i : i + 32], labels[i : i + 32], "meta") for i in range(0, 96, 32)]
    result = measure_model(
        model,
        lambda: iter(triples),
        classifier="2",
        batch_fn=lambda b: ModelBatch(args=(b[0],), kwargs={}, labels=b[1]),
    )
    with torch.no_grad():
        features = model[1](model[0](inputs))
    _assert_same(
        result["penultimate"],
        measure(features, labels, model[2].weight.detach(), model[2].bias.detach()),
    )


def test_held_out_ncc_uses_the_reference_means():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, NUM_CLASSES)).double()
    train_inputs, train_labels = _data(shape=(10,), seed=5)
    test_inputs, test_labels = _data(shape=(10,), seed=6)
    train = measure_model(
        model, _loader(train_inputs, train_labels), classifier="2", keep_class_stats=True
    )
    test = measure_model(
        model, _loader(test_inputs, test_labels), classifier="2", reference=train.class_stats
    )
    with torch.no_grad():
        train_features = model[1](model[0](train_inputs))
        test_features = model[1](model[0](test_inputs))
    means = torch.stack([train_features[train_labels == k].mean(0) for k in range(NUM_CLASSES)])
    nearest = torch.cdist(test_features, means).argmin(dim=1)
    assert test["penultimate"].ncc_accuracy == pytest.approx(
        float((nearest == test_labels).double().mean())
    )


def test_a_layer_whose_means_coincide_is_recorded_with_its_reason():
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, NUM_CLASSES)).double()
    with torch.no_grad():
        model[0].bias.fill_(-1e3)  # every ReLU output 0: all class means coincide
    inputs, labels = _data(shape=(10,))
    result = measure_model(
        model, _loader(inputs, labels), layers=["1", "0"], num_classes=4, errors="record"
    )
    assert result["1"] is None and "coincide" in result.reasons["1"]
    assert result["0"] is not None
    with pytest.raises(ValueError, match="layer '1'.*coincide"):
        measure_model(model, _loader(inputs, labels), layers=["1"], num_classes=4)


# ----------------------------------------------------------------------------- bad input


def _small():
    model = nn.Sequential(nn.Linear(10, 8), nn.ReLU(), nn.Linear(8, NUM_CLASSES)).double()
    inputs, labels = _data(shape=(10,))
    return model, inputs, labels


def test_an_unknown_layer_lists_the_closest_names():
    model, inputs, labels = _small()
    with pytest.raises(ValueError, match="'3' is not a module.*closest names|modules include"):
        measure_model(model, _loader(inputs, labels), layers=["3"], num_classes=4)
    named = nn.ModuleDict({"encoder": nn.Linear(3, 3), "decoder": nn.Linear(3, 3)})
    with pytest.raises(ValueError, match="closest names: encoder"):
        measure_model(named, [], layers=["encodr"], num_classes=4)


def test_a_classifier_that_is_not_linear_is_refused():
    model, inputs, labels = _small()
    with pytest.raises(ValueError, match="is a ReLU, not an nn.Linear"):
        measure_model(model, _loader(inputs, labels), classifier="1")


def test_penultimate_without_a_classifier_says_what_to_pass():
    model, inputs, labels = _small()
    with pytest.raises(ValueError, match="pass classifier="):
        measure_model(model, _loader(inputs, labels), layers=["penultimate"], num_classes=4)


def test_a_layer_off_the_forward_path_is_named():
    class WithUnusedHead(nn.Module):
        def __init__(self):
            super().__init__()
            self.body = nn.Linear(10, 8)
            self.unused = nn.Linear(8, 8)
            self.head = nn.Linear(8, NUM_CLASSES)

        def forward(self, x):
            return self.head(self.body(x))

    _, inputs, labels = _small()
    with pytest.raises(ValueError, match="'unused' produced no output.*not on the path"):
        measure_model(
            WithUnusedHead().double(), _loader(inputs, labels), layers=["unused"], classifier="head"
        )


def test_labels_out_of_range_name_the_ignore_index():
    model, inputs, labels = _small()
    labels = labels.clone()
    labels[3] = 7
    with pytest.raises(ValueError, match="label 7, outside \\[0, 4\\) and not the ignore index"):
        measure_model(model, _loader(inputs, labels), classifier="2")


def test_a_batch_that_is_neither_tuple_nor_dict_says_which_batch_fn_to_pass():
    model, inputs, _ = _small()
    with pytest.raises(ValueError, match="pass batch_fn=.*ModelBatch"):
        measure_model(model, [inputs], classifier="2")


def test_features_whose_dimension_changes_between_batches_are_refused():
    model = nn.Sequential(nn.Flatten())
    batches = [(torch.randn(4, 3), torch.arange(4) % 2), (torch.randn(4, 5), torch.arange(4) % 2)]
    with pytest.raises(ValueError, match="dimension 5 in batch 1 but 3 before"):
        measure_model(model, batches, layers=["0"], num_classes=2)


def test_a_one_shot_iterator_is_refused_with_what_to_pass_instead():
    model, inputs, labels = _small()
    one_shot = iter(_loader(inputs, labels))
    with pytest.raises(ValueError, match="one-shot iterator.*lambda: iter\\(loader\\)"):
        measure_model(model, one_shot, classifier="2")


def test_a_loader_that_changes_its_samples_between_passes_is_caught():
    model, inputs, labels = _small()
    calls = []

    def drifting():
        calls.append(1)
        stop = 96 if len(calls) == 1 else 64
        return [(inputs[i : i + 32], labels[i : i + 32]) for i in range(0, stop, 32)]

    with pytest.raises(ValueError, match="two passes over the data saw different samples"):
        measure_model(model, drifting, classifier="2")


def test_a_float16_model_measures_its_float16_values_and_cuts_on_request():
    # rank-2 centred means in d = 20 for K = 6, noise inside their span: float16 rounding adds
    # the other directions. The metric is that of the rounded numbers (issue 21), a warning
    # says so, and rtol at float16's level cuts them as the user asks
    torch.manual_seed(7)
    basis = torch.linalg.qr(torch.randn(20, 2, dtype=torch.float64))[0].T
    means = torch.randn(6, 2, dtype=torch.float64)
    labels = torch.arange(6).repeat(20)
    inputs = (means[labels] + 0.05 * torch.randn(120, 2, dtype=torch.float64)) @ basis + 3.0
    model = nn.Sequential(nn.Identity(), nn.Linear(20, 6)).half()
    exact = measure(inputs, labels).nc1
    with pytest.warns(RoundingLevelWarning):
        half = measure_model(model, [(inputs, labels)], layers=["0"], num_classes=6)["0"]
    # the same as the engine's own route on the float64 cast of the float16 values
    assert half.nc1 == pytest.approx(measure(inputs.half().double(), labels).nc1, rel=1e-9)
    cut = measure_model(model, [(inputs, labels)], layers=["0"], num_classes=6, rtol=0.01)
    assert cut["0"].nc1 == pytest.approx(exact, rel=0.05)


# ----------------------------------------------------------------------------- wrapped models


def _plain_and_data():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 12), nn.ReLU(), nn.Linear(12, 3))
    labels = torch.arange(60) % 3
    inputs = torch.randn(60, 6) + labels.view(-1, 1).float()
    return model, [(inputs[:30], labels[:30]), (inputs[30:], labels[30:])]


@pytest.mark.parametrize("wrap", ["compile", "data_parallel", "both"])
def test_the_users_own_names_work_on_a_wrapped_model(wrap):
    model, data = _plain_and_data()
    expected = measure_model(model, data, layers=["0"], classifier="2")
    wrapped = model
    if wrap in ("compile", "both"):
        wrapped = torch.compile(wrapped, backend="eager")
    if wrap in ("data_parallel", "both"):
        wrapped = nn.DataParallel(wrapped)  # the "module." prefix of DDP / FSDP too
    prefix = {"compile": "_orig_mod.", "data_parallel": "module.", "both": "module._orig_mod."}
    names = dict(wrapped.named_modules())
    assert prefix[wrap] + "0" in names and "0" not in names
    for layer, classifier in (("0", "2"), (prefix[wrap] + "0", prefix[wrap] + "2")):
        result = measure_model(wrapped, data, layers=[layer], classifier=classifier)
        assert list(result) == [layer, "penultimate"]  # named as the user named them
        assert result[layer].nc1 == pytest.approx(expected["0"].nc1, rel=1e-12)
        assert result["penultimate"].nc1 == pytest.approx(expected["penultimate"].nc1, rel=1e-12)


def test_prefixed_names_work_on_the_unwrapped_model():
    model, data = _plain_and_data()
    expected = measure_model(model, data, layers=["0"], classifier="2")
    result = measure_model(model, data, layers=["module.0"], classifier="_orig_mod.2")
    assert result["module.0"].nc1 == pytest.approx(expected["0"].nc1, rel=1e-12)
