"""``--data`` factories for the training tests (``tests.train.factories:...``)."""

from __future__ import annotations

import torch
from torch.utils.data import Dataset

from neuralcollapse.train.data import load_dataset


class Samples(Dataset):
    """A plain map-style dataset (not a TensorDataset): read sample by sample."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        self.images, self.labels = images, labels

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, index: int):
        return self.images[index], int(self.labels[index])


def digits():
    """The registered digits set, as user datasets."""
    data = load_dataset("digits")
    return Samples(data.train_images, data.train_labels), Samples(
        data.test_images, data.test_labels
    )


def digits_without_test():
    return digits()[0], None


def shifted_labels():
    train, test = digits()
    train.labels = train.labels + 5  # labels 5..14: outside --num-classes 10
    return train, test


def not_a_pair():
    return digits()[0]


def integer_images():
    train, test = digits()
    train.images = (train.images * 10).long()
    return train, test


def flat_vectors():
    """Inputs that are plain vectors (d,), not images."""
    train, test = digits()
    train.images = train.images.reshape(len(train.images), -1)
    test.images = test.images.reshape(len(test.images), -1)
    return train, test
