"""The names the command line offers, without importing torch (fast ``--help``).

:mod:`.data` and :mod:`.nets` define what each name builds; ``tests/train/test_names.py``
checks that both lists match them.
"""

#: registered data sets (neuralcollapse.train.data.DATASETS), in the order --help shows them
DATASET_NAMES: tuple[str, ...] = (
    "digits",
    "mnist5k",
    "fashion-mnist",
    "mnist",
    "kmnist",
    "svhn",
    "cifar10",
    "cifar100",
    "stl10",
)

#: architectures of neuralcollapse.train.nets.build_net
ARCHITECTURES: tuple[str, ...] = ("mlp", "cnn", "vgg11", "vgg13", "vgg16", "resnet18", "resnet34")
