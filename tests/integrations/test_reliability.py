"""Issue 23: every submodule's mode survives, ambiguous shapes are named, plausible nonsense
is flagged, and the one engine gives the numbers of the concatenated features."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from neuralcollapse import measure, measure_model
from neuralcollapse.integrations import CollapseTracker
from neuralcollapse.metrics.capture import eval_mode
from neuralcollapse.robustness import deepfool


def _bn_model():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))
    data = [(torch.randn(16, 4), torch.arange(16) % 2) for _ in range(2)]
    return model, data


def _modes(model):
    return {name: module.training for name, module in model.named_modules()}


@pytest.mark.parametrize("top", [True, False])
def test_every_submodule_mode_survives_measure_model(top):
    model, data = _bn_model()
    model.train(top)
    model[1].train(not top)  # a frozen BatchNorm in a training net, or the reverse
    before = _modes(model)
    running = model[1].running_mean.clone()
    measure_model(model, data, classifier="3", chance_warning=False)
    assert _modes(model) == before
    # the example: the frozen BatchNorm's statistics do not move on the next forward
    if top:
        model(torch.randn(16, 4))
        assert torch.equal(model[1].running_mean, running)


def test_modes_and_hooks_come_back_when_a_pass_raises():
    model, data = _bn_model()
    model.train()
    model[1].eval()
    before = _modes(model)
    bad = [(torch.randn(16, 4), torch.full((16,), 7))]  # label outside [0, 2)
    with pytest.raises(ValueError, match="label 7"):
        measure_model(model, bad, classifier="3")
    assert _modes(model) == before
    assert all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_every_submodule_mode_survives_the_tracker_and_deepfool(tmp_path):
    model, data = _bn_model()
    model.train()
    model[1].eval()
    before = _modes(model)
    CollapseTracker(None, model, data, classifier="3")(1)
    assert _modes(model) == before
    deepfool(model, torch.randn(4, 4))
    assert _modes(model) == before
    with eval_mode(model):
        assert not any(_modes(model).values())
    assert _modes(model) == before


def test_lightning_callback_keeps_a_backbone_frozen_in_on_train_start(tmp_path):
    L = pytest.importorskip("lightning")
    from neuralcollapse.integrations.lightning import NeuralCollapseCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Linear(8, 2))

        def forward(self, x):
            return self.net(x)

        def on_train_start(self):
            self.net[1].eval()  # a frozen backbone part

        def training_step(self, batch, index):
            assert not self.net[1].training, "the frozen BatchNorm came back in train mode"
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.01)

    torch.manual_seed(0)
    loader = DataLoader(TensorDataset(torch.randn(64, 4), torch.arange(64) % 2), batch_size=16)
    module = Module()
    trainer = L.Trainer(
        max_epochs=3,
        callbacks=[NeuralCollapseCallback(loader, classifier="net.3")],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        limit_val_batches=0,
    )
    trainer.fit(module, loader)
    assert not module.net[1].training


def test_a_module_run_twice_in_one_forward_is_refused():
    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc1, self.fc2, self.act = nn.Linear(4, 6), nn.Linear(6, 2), nn.ReLU()

        def forward(self, x):
            return self.fc2(self.act(self.act(self.fc1(x))))  # one ReLU, applied twice

    data = [(torch.randn(8, 4), torch.arange(8) % 2)]
    with pytest.raises(ValueError, match="'act' ran more than once in one forward pass"):
        measure_model(Twice(), data, layers=["act"], num_classes=2)


def _conv1d_data():
    torch.manual_seed(1)
    labels = torch.arange(48) % 3
    signal = torch.randn(48, 2, 20) + labels.view(-1, 1, 1).float()
    return nn.Sequential(nn.Conv1d(2, 5, 3), nn.ReLU()), [(signal, labels)]


def test_an_ambiguous_three_dimensional_output_warns_and_pool_channels_reads_channels():
    model, data = _conv1d_data()
    with pytest.warns(UserWarning, match=r"pool='channels'"):
        auto = measure_model(model, data, layers=["0"], num_classes=3)
    with torch.no_grad():
        maps = model[0](data[0][0])  # (48, 5, 18): channels x length
    labels = data[0][1]
    # "auto" read (B, C, L) as a sequence: d = L, pooled over the 5 channels
    assert auto["0"].dim == 18
    assert auto["0"].nc1 == pytest.approx(measure(maps.mean(dim=1), labels).nc1, rel=1e-12)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        channels = measure_model(model, data, layers=["0"], num_classes=3, pool="channels")
        sequence = measure_model(model, data, layers=["0"], num_classes=3, pool="sequence")
    assert channels["0"].dim == 5
    assert channels["0"].nc1 == pytest.approx(measure(maps.mean(dim=2), labels).nc1, rel=1e-12)
    assert sequence["0"].nc1 == pytest.approx(auto["0"].nc1, rel=1e-12)
    with pytest.raises(ValueError, match="pool must be one of auto, sequence"):
        measure_model(model, data, layers=["0"], num_classes=3, pool="mean")


def test_a_b_by_1_label_tensor_is_one_label_per_sample():
    model, data = _bn_model()
    flat = measure_model(model, data, classifier="3", chance_warning=False)
    column = [(x, y.view(-1, 1)) for x, y in data]
    assert measure_model(model, column, classifier="3", chance_warning=False)[
        "penultimate"
    ].nc1 == pytest.approx(flat["penultimate"].nc1, rel=1e-12)


@pytest.mark.parametrize(
    ("labels", "message"),
    [
        (torch.eye(2)[torch.arange(16) % 2], "floating point.*labels.argmax"),
        ((torch.rand(16, 2) > 0.5).long(), "Multi-label .*one class index per sample"),
    ],
)
def test_soft_and_multi_hot_labels_say_what_the_engine_takes(labels, message):
    model, _ = _bn_model()
    with pytest.raises(ValueError, match=message):
        measure_model(model, [(torch.randn(16, 4), labels)], classifier="3")


def test_a_network_near_chance_on_the_data_is_flagged():
    torch.manual_seed(0)
    labels = torch.arange(200) % 4
    inputs = torch.randn(200, 6) + 3 * nn.functional.one_hot(labels, 6)[:, :6].float()
    model = nn.Sequential(nn.Linear(6, 4))
    with torch.no_grad():  # a perfect classifier of these inputs...
        model[0].weight.copy_(torch.eye(4, 6))
        model[0].bias.zero_()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        good = measure_model(model, [(inputs, labels)], layers=["0"], classifier="0")
    assert good["penultimate"].accuracy > 0.9
    shifted = (labels + 1) % 4  # ...measured with labels one class off
    with pytest.warns(UserWarning, match=r"near chance \(1/K = 0.25\).*shift_labels=True"):
        measure_model(model, [(inputs, shifted)], layers=["0"], classifier="0")


def test_a_stream_of_any_batch_size_gives_the_concatenated_numbers_bitwise():
    torch.manual_seed(2)
    labels = torch.arange(3000) % 7
    features = torch.randn(3000, 24) + labels.view(-1, 1).float()
    weights = torch.randn(7, 24)
    whole = measure(features, labels, weights).to_dict()
    for size in (1, 13, 512, 2999):
        batches = [(features[i : i + size], labels[i : i + size]) for i in range(0, 3000, size)]
        model = nn.Linear(24, 7)
        with torch.no_grad():
            model.weight.copy_(weights)
            model.bias.zero_()
        streamed = measure_model(
            nn.Sequential(nn.Identity(), model),
            batches,
            layers=["0"],
            classifier="1",
            chance_warning=False,
        )
        assert streamed["0"].to_dict() == measure(features, labels).to_dict()
        penultimate = streamed["penultimate"].to_dict()
        assert penultimate == measure(features, labels, weights, torch.zeros(7)).to_dict()
    assert whole["nc1"] == measure(features, labels).nc1


def test_classes_the_classifier_never_saw_get_the_feature_metrics_only():
    """Transfer / few-shot (Galanti et al. 2022): a network of 3 classes measured on 2 new
    classes; the classifier marks the penultimate input, its metrics are left out."""
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(6, 10), nn.ReLU(), nn.Linear(10, 3))
    new_labels = torch.arange(40) % 2
    inputs = torch.randn(40, 6) + 2 * new_labels[:, None].float()
    data = [(inputs, new_labels)]
    with pytest.raises(ValueError, match="pass new_classes=True"):
        measure_model(model, data, classifier="2", num_classes=2)
    with pytest.raises(ValueError, match="with new_classes=True it is the data's"):
        measure_model(model, data, classifier="2", new_classes=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no near-chance warning: there is no accuracy
        result = measure_model(model, data, classifier="2", num_classes=2, new_classes=True)
    with torch.no_grad():
        features = model[1](model[0](inputs))
    expected = measure(features, new_labels).to_dict()
    assert result["penultimate"].to_dict() == expected
    assert result["penultimate"].etf_gap_weights is None and result["penultimate"].accuracy is None
