"""The training data as map-style datasets, and the batches the loop reads from them.

``neuralcollapse train`` takes any data set: ``--data pkg.module:factory`` names a function
that returns ``(train_dataset, test_dataset)`` (``test_dataset`` may be None), each a
``torch.utils.data.Dataset`` of ``(x, y)`` pairs with integer ``y`` in [0, K), K given by
``--num-classes``; the network's input shape is that of the first training sample. The
registered data sets (:mod:`.data`) become factories of the same kind, their tensors
wrapped in ``TensorDataset``.

The loop never holds a split: it reads batches of indices (the same shuffled global batches
for any world size, an evaluation shard in order) through :func:`batches`, which indexes a
``TensorDataset``'s tensors directly (the registered sets: as fast as before, the same
numbers) and gives any other dataset to a ``DataLoader`` with ``--workers`` processes. The
memory of a run is then what the user's dataset holds, plus one batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch.utils.data import DataLoader, Dataset, TensorDataset

from neuralcollapse.entry_points import load_entry_point, required_arguments


@dataclass
class DataSplits:
    """The training and test sets of a run, their class count and the input shape."""

    name: str
    train: Dataset
    test: Dataset | None
    num_classes: int
    input_shape: tuple[int, ...]

    @property
    def has_test(self) -> bool:
        return self.test is not None


def registered_splits(dataset, name: str) -> DataSplits:
    """A :class:`~.data.Dataset` of tensors as :class:`DataSplits` of TensorDatasets."""
    test = None
    if dataset.test_images is not None:
        test = TensorDataset(dataset.test_images, dataset.test_labels)
    return DataSplits(
        name,
        TensorDataset(dataset.train_images, dataset.train_labels),
        test,
        dataset.num_classes,
        tuple(dataset.input_shape),
    )


def _is_map_dataset(value: object) -> bool:
    return hasattr(value, "__getitem__") and hasattr(value, "__len__")


def factory_splits(spec: str, num_classes: int) -> DataSplits:
    """Call the ``--data`` factory and check what it returns (one line per problem)."""
    factory = load_entry_point(spec, "--data")
    if not callable(factory):
        raise ValueError(
            f"--data {spec} is a {type(factory).__name__}, not a factory: point to a function "
            "that returns (train_dataset, test_dataset)"
        )
    _check_no_arguments(factory, spec)
    try:
        made = factory()
    except Exception as error:  # the user's own code failed: say where, and how to see why
        raise ValueError(
            f"--data {spec} raised {_one_line(error)}; the error is in that factory: call it "
            "in Python to see its traceback"
        ) from error
    if not (isinstance(made, (tuple, list)) and len(made) == 2):
        raise ValueError(
            f"--data {spec} returned {type(made).__name__}; it must return a pair "
            "(train_dataset, test_dataset), test_dataset None when there is none"
        )
    return dataset_splits(made[0], made[1], num_classes, f"--data {spec}")


def dataset_splits(train: Dataset, test: Dataset | None, num_classes: int, name: str) -> DataSplits:
    """The user's datasets checked as the run's splits (``name`` says where they came from:
    the ``--data`` factory, or the Python API's ``train(config, datasets=...)``)."""
    spec = name.removeprefix("--data ")
    for role, value in (("train", train), ("test", test)):
        if value is not None and not _is_map_dataset(value):
            raise ValueError(
                f"{name}: the {role} set is a {type(value).__name__}, not a map-style "
                "dataset (one with __len__ and __getitem__, e.g. torch.utils.data.Dataset); "
                "an iterable-only stream cannot be shuffled or measured twice"
            )
    try:
        size, first = len(train), train[0] if len(train) else None
    except Exception as error:  # the dataset's own __len__ / __getitem__
        raise ValueError(
            f"{name}: reading the training set's first sample raised {_one_line(error)}; "
            "fix the dataset's __len__ / __getitem__"
        ) from error
    if size == 0:
        raise ValueError(f"{name}: the training set is empty")
    if not (isinstance(first, (tuple, list)) and len(first) == 2):
        raise ValueError(
            f"{name}: a training sample is {type(first).__name__}; each must be a pair "
            "(x, y) with y the class index"
        )
    sample = torch.as_tensor(first[0])
    if not sample.is_floating_point():
        raise ValueError(
            f"{name}: inputs must be floating point tensors; the first is {sample.dtype} "
            "(convert and normalise them in the dataset, e.g. x.float() / 255)"
        )
    return DataSplits(spec, train, test, num_classes, tuple(sample.shape))


def _one_line(error: BaseException) -> str:
    """``Type: message`` of an exception on one line. A DataLoader worker's exception carries
    the worker's traceback as its message: its last line is the original error."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    if len(lines) > 1 and lines[0].startswith("Caught ") and "worker" in lines[0]:
        return lines[-1]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def _check_no_arguments(factory, spec: str) -> None:
    """A ``--data`` factory is called with no arguments; one that needs some is refused (a
    builtin without a signature is called: the call will tell)."""
    required = required_arguments(factory)
    if required:
        raise ValueError(
            f"--data {spec} needs arguments ({', '.join(required)}), but it is called with "
            "none: write a function that takes no arguments and returns (train_dataset, "
            "test_dataset), and point --data to it"
        )


def _unreadable(dataset: Dataset, indices: Sequence[int], error: Exception) -> ValueError:
    """What is wrong with a batch that failed to load: the first sample that cannot be read
    or does not match the first sample's kind, else the collation error itself."""
    reference, first = None, None
    for index in indices:
        try:
            sample = dataset[index]
        except Exception as inner:  # the dataset's own __getitem__
            return ValueError(
                f"the dataset's sample {index} (of {len(dataset)}, its __len__) cannot be read: "
                f"{_one_line(inner)}; fix the dataset's __getitem__ / __len__"
            )
        problem = _sample_problem(sample, reference)
        if problem and reference is not None:
            problem += f" (sample {first})"
        if problem:
            return ValueError(
                f"the dataset's sample {index} {problem}; every sample must be a pair (x, y): "
                "x a tensor of one shape and dtype, y an integer class index"
            )
        if reference is None:
            reference, first = sample, index
    return ValueError(
        f"a batch of the dataset cannot be assembled ({_one_line(error)}); every sample must "
        "be a pair (x, y): x a tensor of one shape and dtype, y an integer class index"
    )


def _sample_problem(sample: object, reference: object) -> str:
    """Why ``sample`` cannot join a batch whose first sample is ``reference`` ('' if fine)."""
    if not (isinstance(sample, (tuple, list)) and len(sample) == 2):
        size = f" of {len(sample)}" if isinstance(sample, (tuple, list)) else ""
        return f"is a {type(sample).__name__}{size}, not a pair (x, y)"
    x, y = sample
    if not isinstance(x, (torch.Tensor, float, int)) and not hasattr(x, "__array__"):
        return f"has an input x of type {type(x).__name__}"
    numeric = isinstance(y, (int, torch.Tensor)) or hasattr(y, "__array__")
    label = torch.as_tensor(y) if numeric and not isinstance(y, bool) else None
    if label is None or label.ndim != 0 or label.is_floating_point():
        return f"has a label y = {str(y)[:40]!r}, not one integer class index"
    if reference is not None:
        shape, reference_shape = (
            tuple(torch.as_tensor(x).shape),
            tuple(torch.as_tensor(reference[0]).shape),
        )
        if shape != reference_shape:
            return f"has an input of shape {shape}, the batch's first has {reference_shape}"
    return ""


def batches(
    dataset: Dataset,
    index_batches: Sequence[torch.Tensor],
    *,
    workers: int = 0,
    device: torch.device | None = None,
    num_classes: int | None = None,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """``(x, y)`` of each batch of indices, in order, on ``device``.

    A ``TensorDataset`` is indexed directly; any other dataset is read by a ``DataLoader``
    (``workers`` processes, each batch collated by PyTorch's default). With ``num_classes``
    the labels are checked to lie in [0, K) (a dataset's own labels, read as they come).
    """
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        images, labels = dataset.tensors
        for indices in index_batches:
            place = indices.to(images.device)
            yield _to(images[place], device), _to(labels[place], device)
        return
    sampler = [indices.tolist() for indices in index_batches]
    loader: Iterable = DataLoader(
        dataset, batch_sampler=sampler, num_workers=workers, persistent_workers=False
    )
    stream = iter(loader)
    for indices in sampler:
        try:
            # the user's __getitem__ (in-process or in a worker) and the collation of what it
            # returned: their errors are the dataset's, named by the sample at fault
            x, y = next(stream)
        except StopIteration:
            return
        except Exception as error:
            raise _unreadable(dataset, indices, error) from error
        if not isinstance(y, torch.Tensor) or not isinstance(x, torch.Tensor):
            raise _unreadable(dataset, indices, TypeError("not tensors after collation"))
        if num_classes is not None:
            _check_labels(y, num_classes)
        yield _to(x, device), _to(y.long(), device)


def _to(tensor: torch.Tensor, device: torch.device | None) -> torch.Tensor:
    return tensor if device is None else tensor.to(device)


def _check_labels(labels: torch.Tensor, num_classes: int) -> None:
    if labels.ndim != 1:
        raise ValueError(
            f"each of the dataset's labels must be one integer class index; a batch of them has "
            f"shape {tuple(labels.shape)} (return y as an int, e.g. int(y), not a tensor of "
            "shape (1,) or a one-hot vector)"
        )
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise ValueError(f"the dataset's labels must be integer class indices; got {labels.dtype}")
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        bad = int(labels[(labels < 0) | (labels >= num_classes)][0])
        raise ValueError(
            f"the dataset has label {bad}, outside [0, {num_classes}): pass --num-classes K "
            "with K above every label, or remap the labels to 0..K-1"
        )


def shard_batches(length: int, rank: int, world: int, batch_size: int) -> list[torch.Tensor]:
    """This process's evaluation shard (every ``world``-th sample) in batches, in order."""
    shard = torch.arange(rank, length, world)
    return list(torch.split(shard, batch_size))


def gather(dataset: Dataset, indices: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(images, labels)`` of ``indices`` as two tensors (a small subset: DeepFool's)."""
    return next(iter(batches(dataset, [indices])))


class _Relabelled(Dataset):
    """The samples ``indices`` of ``dataset`` with each label ``y`` read as ``lookup[y]`` (the
    classes left after some are withheld, renumbered 0..K'-1 in their order)."""

    def __init__(self, dataset: Dataset, indices: torch.Tensor, lookup: torch.Tensor) -> None:
        self.dataset, self.indices, self.lookup = dataset, indices.tolist(), lookup.tolist()

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int):
        x, y = self.dataset[self.indices[index]]
        return x, self.lookup[int(y)]


@dataclass
class Withheld:
    """The withheld classes' samples the transfer measures read: ``images`` and their
    original ``labels`` (a seeded subset, gathered once), and the ``classes`` withheld."""

    images: torch.Tensor
    labels: torch.Tensor
    classes: tuple[int, ...]


def _all_labels(dataset: Dataset, num_classes: int, workers: int) -> torch.Tensor:
    """Every label of ``dataset``, checked to lie in [0, K) (a user's dataset is read once)."""
    indices = torch.arange(len(dataset))
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        labels = dataset.tensors[1].cpu().long()
    else:
        labels = torch.cat(
            [y for _, y in batches(dataset, list(torch.split(indices, 1024)), workers=workers)]
        ).cpu()
    _check_labels(labels, num_classes)
    return labels


def _keep(dataset: Dataset, labels: torch.Tensor, lookup: torch.Tensor) -> Dataset:
    """``dataset`` without the withheld classes, the others renumbered."""
    kept = torch.nonzero(lookup[labels] >= 0).flatten()
    if isinstance(dataset, TensorDataset) and len(dataset.tensors) == 2:
        images, labels_tensor = dataset.tensors
        place = kept.to(images.device)
        return TensorDataset(images[place], lookup.to(labels_tensor.device)[labels_tensor[place]])
    return _Relabelled(dataset, kept, lookup)


def withhold_classes(
    splits: DataSplits,
    classes: Sequence[int],
    *,
    per_class: int,
    shots: int,
    seed: int,
    workers: int = 0,
) -> tuple[DataSplits, Withheld]:
    """Take ``classes`` out of the run: the splits without them (the other classes renumbered
    0..K'-1 in their order, so the network has K' outputs), and up to ``per_class`` seeded
    training samples of each withheld class for the transfer measures (Galanti et al. 2022).

    The withheld classes' test samples are dropped (the test error is over the trained
    classes). Within a class the chosen samples keep their order in the dataset.
    """
    num_classes = splits.num_classes
    outside = [c for c in classes if not 0 <= c < num_classes]
    if outside:
        raise ValueError(
            f"--transfer-classes names {outside}, outside the {num_classes} classes of "
            f"{splits.name} (0..{num_classes - 1})"
        )
    if num_classes - len(classes) < 2:
        raise ValueError(
            f"--transfer-classes withholds {len(classes)} of the {num_classes} classes of "
            f"{splits.name}; at least 2 must be left to train on"
        )
    lookup = torch.full((num_classes,), -1, dtype=torch.int64)
    kept_classes = [c for c in range(num_classes) if c not in set(classes)]
    lookup[kept_classes] = torch.arange(len(kept_classes))
    train_labels = _all_labels(splits.train, num_classes, workers)
    generator = torch.Generator().manual_seed(seed)
    chosen = []
    for c in classes:
        members = torch.nonzero(train_labels == c).flatten()
        if len(members) <= shots:
            raise ValueError(
                f"withheld class {c} has {len(members)} training samples in {splits.name}; the "
                f"few-shot error needs more than --transfer-shots {shots}"
            )
        pick = torch.randperm(len(members), generator=generator)[:per_class]
        chosen.append(members[pick.sort().values])
    images, labels = gather(splits.train, torch.cat(chosen))
    test = splits.test
    if test is not None:
        test = _keep(test, _all_labels(test, num_classes, workers), lookup)
        if len(test) == 0:
            raise ValueError(
                f"the test split of {splits.name} holds only the withheld classes "
                f"{list(classes)}: nothing is left to test the trained classes on"
            )
    remaining = DataSplits(
        splits.name,
        _keep(splits.train, train_labels, lookup),
        test,
        len(kept_classes),
        splits.input_shape,
    )
    return remaining, Withheld(images, labels.cpu(), tuple(classes))
