"""Issue 21: a metric of low-precision features is the metric of those numbers.

Every metric of float16 / bfloat16 / float32 features equals the metric of the same values
cast to float64 (the rank cut-off no longer depends on the dtype); where the numbers put some
between-class direction at the dtype's rounding level a warning says so, and ``rtol=`` cuts
it on request.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from torch import nn

from neuralcollapse import measure, measure_batches
from neuralcollapse.metrics.stats import RoundingLevelWarning


def _clusters(num_classes: int, dim: int, per_class: int = 30, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    means = 2 * torch.randn(num_classes, dim, generator=generator)
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    return means[labels] + torch.randn(len(labels), dim, generator=generator), labels


def _assert_same(low: dict, high: dict, rel: float = 1e-9) -> None:
    assert set(low) == set(high)
    for key, value in high.items():
        if isinstance(value, float) and math.isfinite(value):
            assert low[key] == pytest.approx(value, rel=rel, abs=1e-300), key
        else:
            assert low[key] == value, key


@pytest.mark.parametrize(
    ("dtype", "dim"),
    [(torch.bfloat16, 256), (torch.bfloat16, 768), (torch.float16, 2048)],
)
def test_gaussian_clusters_in_low_precision_equal_their_float64_cast(dtype, dim):
    # these shapes were refused ("all class means coincide") by the input-eps cut-off
    features, labels = _clusters(10, dim)
    low = features.to(dtype)
    weights = torch.randn(10, dim, generator=torch.Generator().manual_seed(1)).to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoundingLevelWarning)  # well-conditioned: no warning
        result = measure(low, labels, weights).to_dict()
    _assert_same(result, measure(low.double(), labels, weights.double()).to_dict())
    assert result["nc1"] > 0


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32])
@pytest.mark.parametrize(("num_classes", "dim"), [(3, 1), (5, 40), (12, 6), (4, 300)])
def test_every_metric_of_every_dtype_is_the_metric_of_its_values(dtype, num_classes, dim):
    features, labels = _clusters(num_classes, dim, per_class=7, seed=num_classes * dim)
    low = features.to(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RoundingLevelWarning)
        low_result = measure(low, labels).to_dict()
        streamed = measure_batches(
            lambda: [(low[i : i + 11], labels[i : i + 11]) for i in range(0, len(low), 11)],
            num_classes=num_classes,
        ).to_dict()
    exact = measure(low.double(), labels).to_dict()
    _assert_same(low_result, exact)
    _assert_same(streamed, exact, rel=1e-9)


def _rank_two_float16():
    """Exactly rank-2 centred class means (K = 10, d = 32) with within-class noise whose
    class means are exactly zero, then rounded to float16: rounding adds 7 directions."""
    generator = torch.Generator().manual_seed(1)
    means = torch.randn(10, 2, generator=generator, dtype=torch.float64) @ torch.randn(
        2, 32, generator=generator, dtype=torch.float64
    )
    labels = torch.arange(10).repeat_interleave(20)
    noise = 0.3 * torch.randn(10, 10, 32, generator=generator, dtype=torch.float64)
    noise = torch.cat([noise, -noise], dim=1).reshape(200, 32)
    return means[labels] + noise, labels


def test_rank_two_float16_means_follow_the_numbers_and_warn():
    exact_features, labels = _rank_two_float16()
    half = exact_features.half()
    with pytest.warns(RoundingLevelWarning) as caught:
        result = measure(half, labels)
    message = str(caught[0].message)
    assert "7 of the 9 between-class directions" in message
    assert "float16" in message
    for alternative in ("nc1_trace_ratio", "CDNV", "rtol="):
        assert alternative in message
    # the result is the metric of these numbers: the float64 cast gives it too (no warning:
    # float64 features carry no rounding of their own)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoundingLevelWarning)
        cast = measure(half.double(), labels)
    assert result.nc1 == pytest.approx(cast.nc1, rel=1e-9)
    # ... and it is dominated by the rounding directions, far from the unrounded data's
    exact = measure(exact_features, labels).nc1
    assert result.nc1 > 1e3 * exact
    # rtol at float16's level, as the warning suggests, gives back the float64 answer
    suggested = float(message.split("rtol=")[1].split()[0])
    assert 1e-4 < suggested < 0.1
    with warnings.catch_warnings():
        warnings.simplefilter("error", RoundingLevelWarning)  # nothing left at rounding level
        cut = measure(half, labels, rtol=suggested)
    assert cut.nc1 == pytest.approx(exact, rel=0.10)
    # the stable alternatives the warning names do not depend on those directions
    assert result.nc1_trace_ratio == pytest.approx(
        measure(exact_features, labels).nc1_trace_ratio, rel=0.01
    )


def _dense_nc1(features: np.ndarray, labels: np.ndarray, pinv_rtol: float | None) -> float:
    """NC1 = Tr(Sigma_W Sigma_B^+) / K by NumPy, with pinv's own cut-off on Sigma_B."""
    classes = np.unique(labels)
    means = np.stack([features[labels == k].mean(0) for k in classes])
    centred = means - means.mean(0)
    between = centred.T @ centred / len(classes)
    residual = features - means[np.searchsorted(classes, labels)]
    within = residual.T @ residual / len(features)
    inverse = np.linalg.pinv(between) if pinv_rtol is None else np.linalg.pinv(
        between, rcond=pinv_rtol
    )
    return float(np.trace(within @ inverse) / len(classes))


@pytest.mark.parametrize("rtol", [None, 1e-3, 0.3])
def test_rtol_is_pinv_of_the_centred_means(rtol):
    # singular values of the centred means spread over 1 .. 1e-4: each rtol cuts some
    generator = torch.Generator().manual_seed(5)
    left = torch.linalg.qr(torch.randn(8, 7, generator=generator, dtype=torch.float64))[0]
    right = torch.linalg.qr(torch.randn(12, 7, generator=generator, dtype=torch.float64))[0]
    spectrum = torch.logspace(0, -4, 7, dtype=torch.float64)
    means = 5 * (left * spectrum) @ right.T
    labels = torch.arange(8).repeat(6)
    features = means[labels] + 0.01 * torch.randn(48, 12, generator=generator, dtype=torch.float64)
    result = measure(features, labels, rtol=rtol).nc1
    # rtol on the means' singular values is rtol^2 on Sigma_B's eigenvalues (NumPy's rcond
    # default there is 1e-15, pinned here to torch's max(K, d) eps for the default case)
    pinv_rtol = 12 * np.finfo(np.float64).eps if rtol is None else rtol**2
    expected = _dense_nc1(features.numpy(), labels.numpy(), pinv_rtol)
    assert result == pytest.approx(expected, rel=1e-8)


@pytest.mark.parametrize("bad", [-0.1, 1.0, float("nan"), "0.1", True])
def test_rtol_out_of_range_is_refused_with_its_meaning(bad):
    features, labels = _clusters(3, 4)
    with pytest.raises(ValueError, match=r"rtol must be a finite number in \[0, 1\)"):
        measure(features, labels, rtol=bad)


class _SmallResNet(nn.Module):
    """A ResNet-style block stack (conv, BatchNorm, residual, global pooling, linear)."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 16, 3, padding=1)
        self.block = nn.Sequential(
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
            nn.Conv2d(16, 16, 3, padding=1), nn.BatchNorm2d(16),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 4)

    def forward(self, x):
        h = torch.relu(self.stem(x))
        h = torch.relu(h + self.block(h))
        return self.fc(self.pool(h).flatten(1))


def test_a_bfloat16_model_measures_its_own_feature_values():
    from neuralcollapse import measure_model

    torch.manual_seed(0)
    model = _SmallResNet().eval().to(torch.bfloat16)
    images = torch.randn(64, 1, 8, 8)
    labels = torch.arange(4).repeat(16)
    data = [(images[i : i + 16], labels[i : i + 16]) for i in range(0, 64, 16)]
    result = measure_model(model, data, layers=["block"], classifier="fc")
    # hand extraction: the same bfloat16 values, cast to float64, through measure
    captured = {"block": [], "fc": []}
    hooks = [
        model.block.register_forward_hook(lambda m, i, o: captured["block"].append(o)),
        model.fc.register_forward_pre_hook(lambda m, i: captured["fc"].append(i[0])),
    ]
    with torch.no_grad():
        for inputs, _ in data:  # the same batches: a kernel may round per batch size
            model(inputs.to(torch.bfloat16))
    for hook in hooks:
        hook.remove()
    block = torch.cat(captured["block"]).double().mean(dim=(2, 3))
    penultimate = torch.cat(captured["fc"]).double()
    weight, bias = model.fc.weight.double(), model.fc.bias.double()
    _assert_same(result["block"].to_dict(), measure(block, labels).to_dict())
    _assert_same(
        result["penultimate"].to_dict(), measure(penultimate, labels, weight, bias).to_dict()
    )


def test_lightning_bf16_true_equals_the_float64_cast_of_its_features(tmp_path):
    L = pytest.importorskip("lightning")
    from torch.utils.data import DataLoader, TensorDataset

    from neuralcollapse.integrations.lightning import NeuralCollapseCallback

    class Module(L.LightningModule):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 10))

        def forward(self, x):
            return self.net(x)

        def training_step(self, batch, index):
            return nn.functional.cross_entropy(self(batch[0]), batch[1])

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=0.05)

    torch.manual_seed(0)
    images, labels = _clusters(10, 64, per_class=20, seed=3)
    loader = DataLoader(TensorDataset(images, labels), batch_size=50)
    callback = NeuralCollapseCallback(loader, classifier="net.2")
    module = Module()
    trainer = L.Trainer(
        max_epochs=1,
        precision="bf16-true",
        callbacks=[callback],
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
    )
    trainer.fit(module, loader)
    assert module.net[0].weight.dtype == torch.bfloat16
    logged = callback.last_results["train"]["penultimate"]
    with torch.no_grad():
        features = module.net[1](module.net[0](images.to(torch.bfloat16)))
    expected = measure(
        features.double(), labels, module.net[2].weight.double(), module.net[2].bias.double()
    )
    assert logged.nc1 == pytest.approx(expected.nc1, rel=1e-9)
    assert logged.etf_gap_weights == pytest.approx(expected.etf_gap_weights, rel=1e-9)
