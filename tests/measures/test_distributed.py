"""Two gloo processes, each streaming its own shard, get the single-process measures."""

from __future__ import annotations

import os
import socket

import numpy as np
import pytest
import torch
import torch.multiprocessing

from neuralcollapse.measures import (
    OODScorer,
    mse_decomposition,
    mse_decomposition_batches,
    separation_fuzziness,
    separation_fuzziness_batches,
)


def _data():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), [30, 40, 50])
    features = rng.normal(size=(3, 6))[labels] * 2 + rng.normal(size=(120, 6))
    weights, bias = rng.normal(size=(3, 6)), rng.normal(size=3)
    ood = rng.normal(size=(20, 6))
    return features, labels, weights, bias, ood


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _worker(rank: int, world: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    try:
        features, labels, weights, bias, ood = _data()
        shard = (torch.as_tensor(features[rank::world]), torch.as_tensor(labels[rank::world]))
        batches = lambda: [shard]  # noqa: E731
        terms = mse_decomposition_batches(
            batches, num_classes=3, weights=weights, bias=bias, ridge=1e-2, distributed=True
        )
        fuzziness = separation_fuzziness_batches(batches, num_classes=3, distributed=True)
        scorer = OODScorer.fit_batches(
            batches, num_classes=3, weights=weights, bias=bias, distributed=True
        )
        scores = np.stack([scorer.score(ood, m) for m in ("mahalanobis", "neco", "nci")])
        np.save(
            os.path.join(out_dir, f"rank{rank}.npy"),
            np.concatenate([[terms.nc1, terms.nc2_3, terms.ls_perp, fuzziness], scores.ravel()]),
        )
    finally:
        torch.distributed.destroy_process_group()


@pytest.mark.slow
@pytest.mark.skipif(
    "fork" not in torch.multiprocessing.get_all_start_methods(), reason="needs fork (Linux)"
)
def test_two_processes_equal_one(tmp_path):
    # fork, not spawn: the children inherit the imported modules (a spawn re-imports torch,
    # scipy and scikit-learn in each, ~10 s on a busy 2-core machine); a join timeout keeps
    # a stuck child from hanging the suite
    context = torch.multiprocessing.get_context("fork")
    port = _free_port()
    children = [
        context.Process(target=_worker, args=(rank, 2, port, str(tmp_path))) for rank in range(2)
    ]
    for child in children:
        child.start()
    for child in children:
        child.join(timeout=120)
    for child in children:
        if child.is_alive():
            child.terminate()
    assert [child.exitcode for child in children] == [0, 0]
    features, labels, weights, bias, ood = _data()
    terms = mse_decomposition(features, labels, weights, bias, ridge=1e-2)
    scorer = OODScorer.fit(features, labels, weights, bias)
    scores = np.stack([scorer.score(ood, m) for m in ("mahalanobis", "neco", "nci")])
    expected = np.concatenate(
        [
            [terms.nc1, terms.nc2_3, terms.ls_perp, separation_fuzziness(features, labels)],
            scores.ravel(),
        ]
    )
    for rank in range(2):
        got = np.load(tmp_path / f"rank{rank}.npy")
        assert np.allclose(got, expected, rtol=1e-10, atol=1e-12)
