"""Exact shards of a data set for measuring under ``torch.distributed``.

Frameworks' distributed samplers pad every shard to the same length by repeating samples
(and shuffle); that is right for training but would count some samples twice in the
collapse statistics. :func:`shard_loader` gives process ``rank`` of ``world`` the samples
``rank, rank + world, ...`` of the loader's data set, in order, each exactly once overall.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch.utils.data import DataLoader, Subset


def world_and_rank() -> tuple[int, int]:
    """(world size, rank) of the initialised process group, (1, 0) without one."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size(), torch.distributed.get_rank()
    return 1, 0


def shard_loader(loader: Iterable, world: int, rank: int) -> Iterable:
    """This process's exact shard of ``loader`` (the loader itself when ``world`` is 1).

    A DataLoader is rebuilt over ``Subset(dataset, range(rank, n, world))`` with its batch
    size, collate function and workers, in order and without dropping; a list of batches
    is split batch-wise (``batches[rank::world]``).
    """
    if world == 1:
        return loader
    if isinstance(loader, DataLoader):
        dataset = loader.dataset
        indices = range(rank, len(dataset), world)
        return DataLoader(
            Subset(dataset, indices),
            batch_size=loader.batch_size or 1,
            shuffle=False,
            drop_last=False,
            collate_fn=loader.collate_fn,
            num_workers=loader.num_workers,
        )
    if isinstance(loader, (list, tuple)):
        return list(loader)[rank::world]
    raise ValueError(
        f"cannot shard a {type(loader).__name__} across {world} processes: pass a DataLoader "
        "or a list of batches, or give each process its own shard and measure with "
        "measure_model(..., distributed=True)"
    )
