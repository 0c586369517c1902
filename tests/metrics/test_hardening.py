"""Issue 16 on the metrics engine: no silently wrong numbers, no tracebacks for bad input.

Every test here failed on the code before the fix it covers (the item number is in its name).
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from neuralcollapse import schema
from neuralcollapse.cli import main
from neuralcollapse.metrics import ClassStats, measure
from neuralcollapse.metrics.pairwise import nearest_row_distance
from neuralcollapse.metrics.stats import RoundingLevelWarning

from .reference import dense_metrics

# metrics that scale with the square of the features (the rest are scale invariant)
QUADRATIC = ("within_class_variance", "between_class_variance")


def _clusters(seed=0, num_classes=5, dim=8, per_class=12, spread=0.6):
    rng = np.random.default_rng(seed)
    labels = np.arange(num_classes).repeat(per_class)
    centres = 3 * rng.normal(size=(num_classes, dim))
    features = centres[labels] + spread * rng.normal(size=(len(labels), dim))
    weights = centres + 0.5 * rng.normal(size=centres.shape)
    bias = rng.normal(size=num_classes)
    ood = rng.normal(size=(20, dim)) + 1.0
    return features, labels, weights, bias, ood


def _strict_loads(text: str):
    """json.loads that refuses the invalid tokens NaN / Infinity."""

    def refuse(token):
        raise ValueError(f"invalid JSON token {token}")

    return json.loads(text, parse_constant=refuse)


# ----------------------------------------------------------------------------- item 2, 4


def test_item2_ncc_accuracy_of_large_float32_features_is_the_truth():
    # the reproduction: float32 squared norms overflowed from norm ~1.8e19
    rng = np.random.default_rng(0)
    features = rng.normal(size=(40, 6)) + 3 * np.repeat(np.eye(4, 6), 10, 0)
    labels = np.repeat(np.arange(4), 10)
    truth = measure(features, labels).ncc_accuracy
    assert truth == 0.975
    for scale in (1e19, 1e30, 1e-30):
        assert measure((features * scale).astype(np.float32), labels).ncc_accuracy == truth
        assert measure(features * scale, labels).ncc_accuracy == truth


def test_item2_the_certificate_is_a_lower_bound_at_any_scale():
    frame = torch.randn(30, 7, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    exact = torch.cdist(frame, frame).fill_diagonal_(math.inf).amin(dim=1)
    for scale in (1e-300, 1e-30, 1.0, 1e19, 1e30, 1e300):
        bound = nearest_row_distance(frame * scale, tile_size=8)
        assert bool((bound <= exact * scale).all())
        assert bool((bound >= 0.999 * exact * scale).all())  # and tight


def _check_rescaled(result: dict, base: dict, scale: float, weight_scale: float, rel: float):
    for key, value in base.items():
        expected = value
        if key in QUADRATIC:
            expected = value * scale * scale  # in turn: 0 stays 0, overflow is inf
        elif key == "unc3":
            expected = value * scale * scale * weight_scale * weight_scale
        assert result[key] == pytest.approx(expected, rel=rel, abs=0), (key, scale, weight_scale)


@pytest.mark.parametrize(
    ("scale", "weight_scale"),
    [
        (1e-200, 1.0),
        (1e-120, 1e-100),
        (1e-30, 1e30),
        (1e77, 1.0),
        (1e100, 1e-90),
        (1e160, 1.0),
        (1e200, 1e100),
        (1.0, 1e155),
        (1.0, 1e-150),
    ],
)
def test_item4_every_metric_is_invariant_to_rescaling_in_float64(scale, weight_scale):
    features, labels, weights, bias, ood = _clusters()
    base = measure(features, labels, weights, bias, ood_features=ood).to_dict()
    result = measure(
        features * scale,
        labels,
        weights * weight_scale,
        bias * (scale * weight_scale),  # the logits scale by both: the same decisions
        ood_features=ood * scale,
    ).to_dict()
    _check_rescaled(result, base, scale, weight_scale, rel=1e-9)


@pytest.mark.parametrize("scale", [1e-30, 1e-12, 1e12, 1e19, 1e30])
def test_item4_every_metric_is_invariant_to_rescaling_in_float32(scale):
    # overlapping clusters: some samples are nearer another class's centre, so a
    # certificate that wrongly settles every sample (float32 overflow) shows in ncc_accuracy
    features, labels, weights, bias, ood = _clusters(seed=1, spread=2.5)
    weights32, bias32 = weights.astype(np.float32), bias.astype(np.float32)
    base = measure(features.astype(np.float32), labels, weights32, bias32, ood_features=ood)
    assert base.ncc_accuracy < 0.95
    result = measure(
        (features * scale).astype(np.float32),
        labels,
        weights32,
        bias32 * np.float32(scale),
        ood_features=(ood * scale).astype(np.float32),
    )
    # float32 rounds the scaled features differently: equal to a few float32 epsilons
    _check_rescaled(result.to_dict(), base.to_dict(), scale, 1.0, rel=1e-5)


def test_item4_sums_that_overflow_float64_are_refused_plainly():
    features, labels, *_ = _clusters()
    with pytest.raises(ValueError, match="overflowed float64.*outside the supported range"):
        measure(np.full((40, 3), 1e307) * np.arange(1, 4), np.arange(4).repeat(10))
    del features, labels


# ----------------------------------------------------------------------------- item 3


def _rank_two_means(num_classes=6, dim=20, per_class=50):
    """Class means that span exactly 2 dimensions, within-class noise of mean exactly 0."""
    generator = torch.Generator().manual_seed(0)
    basis = torch.linalg.qr(torch.randn(dim, 2, generator=generator, dtype=torch.float64))[0]
    angles = torch.arange(num_classes, dtype=torch.float64) * 2 * math.pi / num_classes
    means = 3 * torch.stack([angles.cos(), angles.sin()], 1) @ basis.T
    labels = torch.arange(num_classes).repeat_interleave(per_class)
    noise = 0.05 * torch.randn(len(labels), dim, generator=generator, dtype=torch.float64)
    noise -= torch.stack([noise[labels == k].mean(0) for k in range(num_classes)])[labels]
    return means[labels] + noise + 1.0, labels


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16])
def test_item3_nc1_of_rounded_rank_two_means(dtype):
    """Issue 21 replaced the input-eps cut-off: NC1 is the metric of the rounded numbers (the
    float64 cast), a warning names the rounding-level directions, and the rtol it suggests
    gives back the unrounded answer (float16 gave 548,173 instead of 1.8e-4 before issue 16)."""
    features, labels = _rank_two_means()
    exact = measure(features, labels)
    rounded = features.to(dtype)
    if dtype in (torch.float16, torch.bfloat16):
        with pytest.warns(RoundingLevelWarning, match="rounding level of") as caught:
            result = measure(rounded, labels)
        suggested = float(str(caught[0].message).split("rtol=")[1].split()[0])
        cut = measure(rounded, labels, rtol=suggested)
        assert cut.nc1 == pytest.approx(exact.nc1, rel=0.1)
    else:
        result = measure(rounded, labels)
    assert result.nc1 == pytest.approx(measure(rounded.double(), labels).nc1, rel=1e-9)
    # the stable alternatives do not divide by the rounding directions
    tolerance = 2 * torch.finfo(dtype).eps
    assert result.nc1_trace_ratio == pytest.approx(exact.nc1_trace_ratio, rel=tolerance)
    assert result.cdnv == pytest.approx(exact.cdnv, rel=tolerance)


def test_item3_the_input_precision_survives_merge_and_save(tmp_path):
    features, labels = _rank_two_means()
    half = ClassStats(6).update(features[:150].half(), labels[:150])
    full = ClassStats(6).update(features[150:], labels[150:])
    assert full.input_eps == torch.finfo(torch.float64).eps
    full.merge(half)
    assert full.input_eps == torch.finfo(torch.float16).eps
    full.save(tmp_path / "stats.pt")
    assert ClassStats.load(tmp_path / "stats.pt").input_eps == full.input_eps


def _precision_worker(rank, port, queue):
    import os

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2)
    try:
        features, labels = _rank_two_means()
        dtype = torch.float16 if rank == 0 else torch.float64
        stats = ClassStats(6).update(features[rank::2].to(dtype), labels[rank::2])
        queue.put((rank, stats.all_reduce().input_eps))
    finally:
        torch.distributed.destroy_process_group()


def test_item3_all_reduce_keeps_the_least_precise_input():
    import multiprocessing
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    workers = [context.Process(target=_precision_worker, args=(r, port, queue)) for r in (0, 1)]
    for worker in workers:
        worker.start()
    found = dict(queue.get(timeout=120) for _ in workers)
    for worker in workers:
        worker.join(timeout=60)
        assert worker.exitcode == 0
    assert found == {0: torch.finfo(torch.float16).eps, 1: torch.finfo(torch.float16).eps}


# ----------------------------------------------------------------------------- item 7


def test_item7_to_json_and_measure_json_are_strict(tmp_path, capsys):
    # two classes with the same mean: cdnv is inf, which json.dumps writes as Infinity
    features = np.array([[0.0, 0], [2, 0], [1, 1], [1, -1], [5, 5], [5, 7]])
    labels = np.array([0, 0, 1, 1, 2, 2])
    result = measure(features, labels)
    assert result.cdnv == math.inf
    assert _strict_loads(result.to_json())["cdnv"] == "Infinity"
    path = tmp_path / "feats.npz"
    np.savez(path, features=features, labels=labels)
    assert main(["measure", str(path), "--json"]) == 0
    printed = _strict_loads(capsys.readouterr().out)
    assert printed["cdnv"] == "Infinity"
    assert schema.decode_row(printed)["cdnv"] == math.inf


# ----------------------------------------------------------------------------- items 12, 13


def test_item12_features_that_require_grad_are_measured():
    features, labels, weights, bias, _ = _clusters()
    tracked = torch.tensor(features, requires_grad=True)
    result = measure(tracked * 1.0, labels, torch.tensor(weights, requires_grad=True), bias)
    assert result.to_dict() == measure(features, labels, weights, bias).to_dict()


@pytest.mark.parametrize("device", ["cuda", "cuda:1", "mps"])
def test_item13_an_unavailable_device_is_a_message(device):
    if device.startswith("cuda") and torch.cuda.device_count() > 1:
        pytest.skip("this machine has the device")
    if device == "mps" and torch.backends.mps.is_available():
        pytest.skip("this machine has the device")
    with pytest.raises(ValueError, match="(not|no CUDA GPU is) available.*device='cpu'"):
        ClassStats(3, device=device)


def test_item13_merging_an_empty_class_stats_adds_nothing():
    features, labels, *_ = _clusters()
    filled = ClassStats(5).update(features, labels)
    before = filled.sums.clone()
    filled.merge(ClassStats(5))
    assert torch.equal(filled.sums, before)
    assert ClassStats(5).merge(ClassStats(5)).initialised is False


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda s: s.pop("sums"), "lacks sums"),
        (lambda s: s.update(counts=s["counts"][:3]), "counts of shape"),
        (lambda s: s.update(sums=s["sums"][:, None]), "sums of shape"),
        (lambda s: s["counts"].__setitem__(0, -4), "non-negative"),
        (lambda s: s.update(input_eps=2.0), "input_eps"),
    ],
)
def test_item13_a_damaged_state_is_refused(change, message):
    features, labels, *_ = _clusters()
    state = ClassStats(5).update(features, labels).state_dict()
    change(state)
    with pytest.raises(ValueError, match=message):
        ClassStats.from_state_dict(state)


def test_item13_a_stray_huge_label_is_refused_before_allocating():
    features = np.zeros((4, 3))
    with pytest.raises(ValueError, match="largest label is 1099511627776.*remap"):
        measure(features, np.array([0, 1, 2, 2**40]))


def test_item13_nan_labels_say_it_is_the_labels():
    with pytest.raises(ValueError, match="labels .*contain NaN"):
        measure(np.eye(3), np.array([0.0, 1.0, np.nan]))


# ----------------------------------------------------------------------------- item 14


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "not an .npz file \\(empty\\)"),
        (b"features,labels\n1,0\n", "not an .npz file \\(not a zip archive\\)"),
        ("truncated", "not a readable .npz|cannot be read"),
    ],
)
def test_item14_a_bad_npz_file_is_a_message(tmp_path, capsys, content, message):
    path = tmp_path / "feats.npz"
    if content == "truncated":
        np.savez(path, features=np.ones((50, 4)), labels=np.arange(50) % 2)
        path.write_bytes(path.read_bytes()[:300])
    else:
        path.write_bytes(content)
    assert main(["measure", str(path)]) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert pytest.importorskip("re").search(message, err), err


def test_item14_per_class_into_an_unwritable_place_is_a_message(tmp_path, capsys):
    path = tmp_path / "feats.npz"
    np.savez(path, features=np.eye(3), labels=np.arange(3))
    blocker = tmp_path / "file"
    blocker.write_text("a file, not a folder")
    assert main(["measure", str(path), "--per-class", str(blocker / "classes.csv")]) == 2
    err = capsys.readouterr().err
    assert "cannot use" in err and "classes.csv" in err and "choose another" in err


def test_item14_an_empty_class_stats_file_is_a_message(tmp_path):
    path = tmp_path / "stats.pt"
    path.write_bytes(b"")
    with pytest.raises(ValueError, match="not a ClassStats file.*empty, truncated"):
        ClassStats.load(path)


# ----------------------------------------------------------------------------- property


DENSE_KEYS = (
    "nc1",
    "nc1_trace_ratio",
    "cdnv",
    "within_class_variance",
    "between_class_variance",
    "equinorm_means",
    "equiangular_means",
    "maxangle_means",
    "etf_gap_means",
    "of_gap_means",
    "global_mean_ratio",
    "ncc_accuracy",
    "equinorm_weights",
    "equiangular_weights",
    "maxangle_weights",
    "etf_gap_weights",
    "of_gap_weights",
    "self_duality",
    "self_duality_uncentred",
    "accuracy",
    "ncc_mismatch",
)


@settings(max_examples=40, deadline=2000, derandomize=True)
@given(
    num_classes=st.integers(2, 7),
    dim=st.integers(1, 10),
    # >= 2 samples a class: the variances are then real quantities, not rounding around 0
    # (a true 0 comes out as ~1e-32 |h|^2, which is inf for |h| ~ 1e180)
    per_class=st.integers(2, 5),
    exponent=st.integers(-30, 30),
    dtype=st.sampled_from(["float16", "float32", "float64"]),
    seed=st.integers(0, 2**31 - 1),
    with_classifier=st.booleans(),
)
def test_measure_equals_the_dense_reference(
    num_classes, dim, per_class, exponent, dtype, seed, with_classifier
):
    rng = np.random.default_rng(seed)
    labels = np.arange(num_classes).repeat(per_class)
    centres = 2 * rng.normal(size=(num_classes, dim))
    unit = centres[labels] + rng.normal(size=(len(labels), dim))
    scale = {  # within each dtype's range: float16 1e-2 .. 1e2, float64 1e-180 .. 1e180
        "float16": 10.0 ** (exponent % 5 - 2),
        "float32": 10.0**exponent,
        "float64": 10.0 ** (exponent * 6),
    }[dtype]
    features = (unit * scale).astype(dtype)
    if dtype == "float16":
        # a direction of the means near float16's rounding level makes NC1 ill-conditioned
        # (summation order then shows): compare where the means are well conditioned
        means = np.stack(
            [features[labels == k].astype(np.float64).mean(0) for k in labels[::per_class]]
        )
        singular = np.linalg.svd(means - means.mean(0), compute_uv=False)
        kept = singular[singular > 1e-9 * singular[0]]
        assume(kept[-1] > 20 * max(num_classes, dim) * np.finfo(np.float16).eps * kept[0])
    weights = centres + rng.normal(size=centres.shape) if with_classifier else None
    result = measure(features, labels, weights).to_dict()
    # the reference squares its input: give it the same values brought back to ~1
    expected = dense_metrics(features.astype(np.float64) / scale, labels, weights)
    assert set(expected) <= set(DENSE_KEYS)
    for key in QUADRATIC:
        # in the data's units (rounding is relative to |h|, so a tolerance is too), or inf
        # where the true value is beyond float64
        value = expected.pop(key)
        if math.isinf(value * scale * scale):
            assert result[key] == math.inf, key
        elif value * scale * scale < 1e-290:  # below float64's normal range: (nearly) 0
            assert 0 <= result[key] < 1e-280, key
        else:
            assert result[key] / scale / scale == pytest.approx(value, rel=1e-6, abs=1e-9), key
    for key, value in expected.items():
        # a std is the root of a rounded variance: at 0 it reads ~sqrt(eps64) = 1.5e-8
        absolute = 1e-7 if key.startswith("equiangular") else 1e-9
        assert result[key] == pytest.approx(value, rel=1e-6, abs=absolute), key
