"""The torch-free name lists of the command line match what the code builds."""

from neuralcollapse.train import data, names, nets


def test_dataset_and_architecture_names_match_the_registries():
    assert names.DATASET_NAMES == tuple(data.DATASETS)
    assert names.ARCHITECTURES == nets.ARCHITECTURES
