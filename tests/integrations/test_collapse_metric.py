"""CollapseMetric (torchmetrics) equals the two-pass engine, across shards and in Lightning."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

torchmetrics = pytest.importorskip("torchmetrics")

from neuralcollapse import measure  # noqa: E402
from neuralcollapse.integrations import CollapseMetric  # noqa: E402
from neuralcollapse.integrations.collapse_metric import (  # noqa: E402
    NOT_AVAILABLE,
    OnePassPrecisionWarning,
)

K, D, N = 5, 12, 400


def _data(seed=0, n=N, dtype=torch.float64):
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % K
    centres = 3 * torch.randn(K, D, generator=generator, dtype=torch.float64)
    features = torch.randn(n, D, generator=generator, dtype=torch.float64) + centres[labels]
    return features.to(dtype), labels[torch.randperm(n, generator=generator)]


def _classifier(seed=1):
    torch.manual_seed(seed)
    return nn.Linear(D, K)


def _assert_equal_to_measure(result, expected, tolerance=1e-10):
    got = result.to_dict()
    for key, value in expected.to_dict().items():
        if key in NOT_AVAILABLE:
            assert got[key] is None, key
        elif value is None:
            assert got[key] is None, key
        else:
            assert got[key] == pytest.approx(value, rel=tolerance, abs=tolerance), key
    for column in ("count", "within_variance", "mean_norm", "weight_norm", "duality", "cdnv"):
        mine = getattr(result.per_class, column)
        theirs = getattr(expected.per_class, column)
        assert (mine is None) == (theirs is None), column
        if theirs is not None:
            torch.testing.assert_close(
                torch.as_tensor(mine, dtype=torch.float64),
                torch.as_tensor(theirs, dtype=torch.float64),
                rtol=tolerance,
                atol=tolerance,
            )


def _fed(metric, features, labels, batch=64):
    for start in range(0, len(labels), batch):
        metric.update(features[start : start + batch], labels[start : start + batch])
    return metric


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_compute_equals_measure_with_a_classifier_module(dtype):
    features, labels = _data(dtype=dtype)
    head = _classifier()
    metric = _fed(CollapseMetric(num_classes=K, dim=D, classifier=head), features, labels)
    expected = measure(features.double(), labels, head.weight.detach(), head.bias.detach())
    _assert_equal_to_measure(metric.compute(), expected)


def test_compute_equals_measure_with_weight_tensors_and_without_a_classifier():
    features, labels = _data(seed=3)
    weights = torch.randn(K, D, dtype=torch.float64)
    with_weights = _fed(CollapseMetric(num_classes=K, dim=D, weights=weights), features, labels)
    _assert_equal_to_measure(with_weights.compute(), measure(features, labels, weights))
    plain = _fed(CollapseMetric(num_classes=K, dim=D), features, labels)
    result = plain.compute()
    _assert_equal_to_measure(result, measure(features, labels))
    assert result.self_duality is None and result.etf_gap_weights is None


def test_the_classifier_is_read_at_compute_and_is_not_part_of_the_state():
    features, labels = _data()
    head = _classifier()
    metric = _fed(CollapseMetric(num_classes=K, dim=D, classifier=head), features, labels)
    with torch.no_grad():
        head.weight.mul_(-2.0)  # training moved on after the batches were seen
    expected = measure(features, labels, head.weight.detach(), head.bias.detach())
    _assert_equal_to_measure(metric.compute(), expected)
    assert not any("weight" in key for key in metric.state_dict())
    assert list(metric.children()) == []


def test_what_one_pass_cannot_give_is_none_with_a_reason():
    features, labels = _data()
    result = _fed(CollapseMetric(num_classes=K, dim=D, classifier=_classifier()), features, labels)
    computed = result.compute()
    assert set(NOT_AVAILABLE) == {"ncc_mismatch", "ncc_accuracy", "accuracy"}
    for key, reason in NOT_AVAILABLE.items():
        assert getattr(computed, key) is None
        assert "second pass" in reason


def test_reset_starts_over():
    metric = CollapseMetric(num_classes=K, dim=D)
    _fed(metric, *_data(seed=5))
    metric.reset()
    assert int(metric.counts.sum()) == 0 and float(metric.second_moment.abs().sum()) == 0.0
    features, labels = _data(seed=6)
    _assert_equal_to_measure(_fed(metric, features, labels).compute(), measure(features, labels))


def test_states_sum_across_shards_merge_state_and_a_simulated_two_process_sync():
    features, labels = _data(seed=7)
    head = _classifier()
    expected = measure(features, labels, head.weight.detach(), head.bias.detach())
    halves = [(features[: N // 3], labels[: N // 3]), (features[N // 3 :], labels[N // 3 :])]
    other: dict[str, torch.Tensor] = {}
    order: list[str] = []

    def gather(tensor, group=None):  # what all_gather returns on "process 0" of two
        return [tensor, other[order.pop(0)]]

    # process 0 syncs in compute() through torchmetrics' own path, with that gather
    sync = dict(dist_sync_fn=gather, distributed_available_fn=lambda: True)
    ranks = [
        _fed(CollapseMetric(num_classes=K, dim=D, classifier=head, **options), *half)
        for options, half in zip([sync, {}], halves, strict=True)
    ]
    # every state is declared with the cross-process reduction that makes shards add up
    assert {name: fn.__name__ for name, fn in ranks[0]._reductions.items()} == {
        "counts": "dim_zero_sum",
        "sums": "dim_zero_sum",
        "square_norms": "dim_zero_sum",
        "second_moment": "dim_zero_sum",
        "input_eps": "dim_zero_max",
    }
    merged = CollapseMetric(num_classes=K, dim=D, classifier=head)
    merged.update(features[:0], labels[:0])  # an empty batch: nothing added
    for rank in ranks:
        merged.merge_state(rank)
    _assert_equal_to_measure(merged.compute(), expected)

    other.update({name: getattr(ranks[1], name) for name in ranks[1]._reductions})
    order.extend(ranks[0]._reductions)
    _assert_equal_to_measure(ranks[0].compute(), expected)
    assert not order  # every state went through the gather
    assert int(ranks[0].counts.sum()) == N // 3  # unsynced: back to its own shard


def test_in_a_metric_collection_with_compute_groups():
    features, labels = _data(seed=8)
    head = _classifier()
    collection = torchmetrics.MetricCollection(
        {
            "penultimate": CollapseMetric(num_classes=K, dim=D, classifier=head),
            "means_only": CollapseMetric(num_classes=K, dim=D),
        }
    )
    _fed(collection, features, labels)
    results = collection.compute()
    _assert_equal_to_measure(
        results["penultimate"], measure(features, labels, head.weight.detach(), head.bias.detach())
    )
    _assert_equal_to_measure(results["means_only"], measure(features, labels))
    collection.reset()
    assert int(collection["penultimate"].counts.sum()) == 0


def test_forward_accumulates_and_returns_nothing():
    features, labels = _data()
    metric = CollapseMetric(num_classes=K, dim=D)
    for start in range(0, N, 100):
        assert metric(features[start : start + 100], labels[start : start + 100]) is None
    _assert_equal_to_measure(metric.compute(), measure(features, labels))


@pytest.mark.filterwarnings("ignore:The ``compute`` method")
def test_bad_inputs_and_empty_classes_are_refused():
    metric = CollapseMetric(num_classes=K, dim=D)
    with pytest.raises(ValueError, match=r"shape \(batch, 12\)"):
        metric.update(torch.randn(4, D + 1), torch.zeros(4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"lie in \[0, 5\)"):
        metric.update(torch.randn(4, D), torch.tensor([0, 1, 2, 5]))
    with pytest.raises(ValueError, match="integer class indices"):
        metric.update(torch.randn(4, D), torch.zeros(4))
    with pytest.raises(ValueError, match="no samples"):
        CollapseMetric(num_classes=K, dim=D).compute()
    features, labels = _data()
    keep = labels != 3
    metric.update(features[keep], labels[keep])
    with pytest.raises(ValueError, match="class 3"):
        metric.compute()


def test_the_one_pass_precision_limit_is_reported():
    features, labels = _data(seed=9)
    far = 1e5 + features * 1e-2  # spread 1e-2 around points 1e5 away: ~1e-14 of ||h||^2
    metric = _fed(CollapseMetric(num_classes=K, dim=D), far, labels)
    with pytest.warns(OnePassPrecisionWarning, match="one-pass statistics keep about"):
        metric.compute()
    calm = _fed(CollapseMetric(num_classes=K, dim=D), features, labels)
    with warnings.catch_warnings():
        warnings.simplefilter("error", OnePassPrecisionWarning)
        calm.compute()


def test_scalars_use_the_callbacks_names():
    features, labels = _data()
    metric = _fed(CollapseMetric(num_classes=K, dim=D, classifier=_classifier()), features, labels)
    result = metric.compute()
    logs = metric.scalars(result, split="val")
    assert set(logs) == {
        f"nc/val/penultimate/{key}"
        for key in ("nc1", "etf_gap_means", "etf_gap_weights", "self_duality")
    }  # ncc_mismatch, the fifth default, needs a second pass
    assert logs["nc/val/penultimate/nc1"] == result.nc1
    assert set(metric.scalars(result, metrics="NC3", layer="fc_in")) == {
        "nc/fc_in/self_duality",
        "nc/fc_in/self_duality_uncentred",
    }


def test_self_log_dict_in_a_lightning_module_logs_what_measure_gives():
    L = pytest.importorskip("lightning")
    features, labels = _data(seed=10, dtype=torch.float32)
    data = torch.utils.data.TensorDataset(features, labels)

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.backbone = nn.Sequential(nn.Linear(D, 16), nn.ReLU())
            self.head = nn.Linear(16, K)
            self.collapse = CollapseMetric(num_classes=K, dim=16, classifier=self.head)

        def training_step(self, batch, index):
            x, y = batch
            return nn.functional.cross_entropy(self.head(self.backbone(x)), y)

        def validation_step(self, batch, index):
            x, y = batch
            self.collapse.update(self.backbone(x), y)

        def on_validation_epoch_end(self):
            self.log_dict(self.collapse.scalars(split="val", metrics="all"))
            self.collapse.reset()

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    module = Module()
    loader = torch.utils.data.DataLoader(data, batch_size=100)
    trainer = L.Trainer(
        max_epochs=2,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, loader, loader)
    with torch.no_grad():
        expected = measure(
            module.backbone(features), labels, module.head.weight, module.head.bias
        ).to_dict()
    logged = trainer.callback_metrics
    for key, value in expected.items():
        name = f"nc/val/penultimate/{key}"
        if key in NOT_AVAILABLE or value is None or key in ("num_classes", "num_samples", "dim"):
            assert name not in logged, key
        else:
            # Lightning keeps logged values as float32 tensors
            assert float(logged[name]) == pytest.approx(value, rel=1e-6, abs=1e-7), key
