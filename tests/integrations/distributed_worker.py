"""Run under torchrun by test_distributed.py: measure_model on this rank's exact shard."""

import json
import sys

import torch

from neuralcollapse.integrations import measure_model
from neuralcollapse.integrations.shards import leave_distributed, shard_loader, world_and_rank


def build():
    torch.manual_seed(0)
    labels = torch.arange(150) % 5
    inputs = torch.randn(150, 7, dtype=torch.float64) + labels.view(-1, 1)
    model = torch.nn.Sequential(
        torch.nn.Linear(7, 9), torch.nn.ReLU(), torch.nn.Linear(9, 5)
    ).double()
    loader = torch.utils.data.DataLoader(
        torch.utils.data.TensorDataset(inputs, labels), batch_size=16
    )
    return model, loader


def main(out):
    torch.distributed.init_process_group("gloo")
    model, loader = build()
    world, rank = world_and_rank()
    result = measure_model(
        model, shard_loader(loader, world, rank), layers=["0", "penultimate"], classifier="2"
    )
    with open(f"{out}.{rank}", "w") as stream:
        json.dump(result.to_dict(), stream)
    leave_distributed()  # barrier, destroy, and an exit gloo's threads cannot abort


if __name__ == "__main__":
    main(sys.argv[1])
