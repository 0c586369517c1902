"""ClassStats / CentredStats: exact merging, serialisation, streaming and all_reduce."""

import os
import socket

import pytest
import torch
import torch.multiprocessing as mp

from neuralcollapse.metrics import (
    CentredStats,
    ClassStats,
    MeanGeometry,
    compute_metrics,
    measure,
    measure_batches,
)

from .reference import assert_same_metrics
from .test_collapse import random_problem


def split_points(n, seed, parts):
    g = torch.Generator().manual_seed(seed)
    cuts = torch.sort(torch.randperm(n - 1, generator=g)[: parts - 1] + 1).values.tolist()
    return [0, *cuts, n]


@pytest.mark.parametrize("seed,parts", [(0, 2), (1, 3), (2, 7)])
def test_merging_any_batch_split_equals_one_pass(seed, parts):
    h, y, w, b = random_problem(seed, n=400)
    bounds = split_points(h.shape[0], seed, parts)
    shards = [(h[a:c], y[a:c]) for a, c in zip(bounds[:-1], bounds[1:], strict=True)]

    merged = ClassStats(7)
    for features, labels in shards:
        merged.merge(ClassStats(7).update(features, labels))
    one_pass = ClassStats(7).update(h, y)
    assert torch.equal(merged.counts, one_pass.counts)
    torch.testing.assert_close(merged.sums, one_pass.sums, rtol=1e-13, atol=1e-12)

    geometry = MeanGeometry.from_means(merged.means())
    centred = CentredStats(geometry, w, b)
    for features, labels in shards:
        centred.merge(CentredStats(geometry, w, b).update(features, labels))
    result = compute_metrics(merged, centred).to_dict()
    assert_same_metrics(result, measure(h, y, w, b).to_dict(), rel=1e-10, abs=1e-14)


def test_measure_batches_on_a_stream_equals_measure():
    h, y, w, b = random_problem(3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(h, y), batch_size=64)
    streamed = measure_batches(lambda: iter(loader), num_classes=7, weights=w, bias=b)
    assert_same_metrics(streamed.to_dict(), measure(h, y, w, b).to_dict(), rel=1e-10)


def test_one_shot_generator_is_rejected_with_a_fix():
    h, y, _, _ = random_problem(4)
    generator = ((h[i : i + 50], y[i : i + 50]) for i in range(0, 500, 50))
    with pytest.raises(ValueError, match="fresh iterable"):
        measure_batches(lambda: generator, num_classes=7)


def test_class_stats_save_and_load_round_trip(tmp_path):
    h, y, _, _ = random_problem(5)
    stats = ClassStats(7).update(h, y)
    stats.save(tmp_path / "stats.pt")
    loaded = ClassStats.load(tmp_path / "stats.pt")
    assert torch.equal(loaded.counts, stats.counts) and torch.equal(loaded.sums, stats.sums)
    assert not [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]


def test_merging_mismatched_statistics_is_an_error():
    a = ClassStats(3).update(torch.randn(6, 4), torch.tensor([0, 1, 2, 0, 1, 2]))
    b = ClassStats(3).update(torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2]))
    with pytest.raises(ValueError, match="different shapes"):
        a.merge(b)


def test_dimension_change_between_batches_is_an_error():
    stats = ClassStats(2).update(torch.randn(4, 3), torch.tensor([0, 1, 0, 1]))
    with pytest.raises(ValueError, match="dimension 5 but earlier batches had 3"):
        stats.update(torch.randn(4, 5), torch.tensor([0, 1, 0, 1]))


def test_empty_stats_say_what_to_do():
    with pytest.raises(ValueError, match="seen no data"):
        ClassStats(3).means()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _distributed_worker(rank, world, port, queue):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        torch.set_num_threads(1)
        h, y, w, b = random_problem(6)
        shard = slice(rank, None, world)  # interleaved shards of unequal class make-up
        result = measure_batches(
            lambda: [(h[shard], y[shard])], num_classes=7, weights=w, bias=b, distributed=True
        )
        queue.put((rank, result.to_dict()))
    finally:
        torch.distributed.destroy_process_group()


def test_all_reduce_across_two_processes_equals_one_process():
    context = mp.get_context("spawn")
    queue = context.Queue()
    port = _free_port()
    processes = [
        context.Process(target=_distributed_worker, args=(rank, 2, port, queue))
        for rank in range(2)
    ]
    for process in processes:
        process.start()
    results = dict(queue.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=60)
        assert process.exitcode == 0
    h, y, w, b = random_problem(6)
    expected = measure(h, y, w, b).to_dict()
    for rank in range(2):
        assert_same_metrics(results[rank], expected, rel=1e-10, abs=1e-14)


def test_distributed_without_process_group_is_an_error():
    h, y, _, _ = random_problem(7)
    with pytest.raises(ValueError, match="not initialised"):
        measure_batches(lambda: [(h, y)], num_classes=7, distributed=True)
