"""Networks for terminal-phase training: MLP, small CNN, VGG-11/13/16 (BN), ResNet-18/34.

Every network here is a :class:`CollapseNet`: a feature extractor ending in a
*penultimate layer* and a linear classifier ``logits = W h + b`` on it. For neural
collapse we need, besides the logits,

- the penultimate features before the final ReLU (``pre``) and after it (``post``; the
  features ``h`` that feed the classifier), from :meth:`CollapseNet.forward_features`;
- named intermediate layers (``probe_layers``; plain module names, so forward hooks can
  capture them) for the depth-wise NC1 profile (Tirer & Bruna, ICML 2022; Papyan, Han &
  Donoho, PNAS 2020 measure the last layer only).

The classifier's bias can be switched off (``bias=False``): Tirer & Bruna's MSE setting.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from neuralcollapse.checks import check_int
from neuralcollapse.schema import PENULTIMATE_POST
from neuralcollapse.train.names import ARCHITECTURES


class CollapseNet(nn.Module):
    """A classifier ``W h(x) + b`` whose penultimate features ``h`` are exposed.

    Subclasses build ``self.classifier`` (an ``nn.Linear``), set ``self.probe_layers``
    (names of intermediate modules, shallow to deep) and implement ``forward_features``.
    """

    classifier: nn.Linear
    probe_layers: tuple[str, ...]

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Penultimate features (pre-ReLU, post-ReLU), each of shape (N, feature_dim)."""
        raise NotImplementedError

    def forward(
        self, x: torch.Tensor, return_features: bool = False
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        """Logits ``W h + b``; with ``return_features`` also ``h`` (post-ReLU), as a pair."""
        features = self.forward_features(x)[1]
        logits = self.classifier(features)
        return (logits, features) if return_features else logits

    @property
    def feature_dim(self) -> int:
        """d, the width of the penultimate layer."""
        return self.classifier.in_features

    def linear_inputs(self) -> dict[str, str | None]:
        """Each ``nn.Linear``'s name -> the measured layer whose output is its input (the
        metrics rows' layer name), None for the raw input (or an input no row measures).

        The classifier reads ``penultimate_post``; the penultimate block's linear map reads
        the deepest probe layer (a conv stage is measured averaged over space, which is what
        the global pool feeds it); a linear map inside probe layer l reads layer l - 1. It
        pairs the neural feature ansatz of each linear layer with the NC1 of its input
        (Beaglehole et al. 2024).
        """
        order = list(self.probe_layers)
        inputs: dict[str, str | None] = {}
        for name, module in self.named_modules():
            if not isinstance(module, nn.Linear):
                continue
            block = name.split(".")[0]
            if module is self.classifier:
                inputs[name] = PENULTIMATE_POST
            elif block == "penultimate":
                inputs[name] = order[-1] if order else None
            elif block in order and name == f"{block}.0":  # the block's first module
                position = order.index(block)
                inputs[name] = order[position - 1] if position else None
            else:
                inputs[name] = None
        return inputs

    def feature_parameters(self) -> list[nn.Parameter]:
        """Every parameter except the classifier's (for a separate weight decay)."""
        classifier_ids = {id(p) for p in self.classifier.parameters()}
        return [p for p in self.parameters() if id(p) not in classifier_ids]


def _linear_block(in_features: int, out_features: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [nn.Linear(in_features, out_features)]
    if batch_norm:
        layers.append(nn.BatchNorm1d(out_features))
    return layers


class MLP(CollapseNet):
    """Fully connected ReLU network: ``depth`` hidden layers of ``width`` units.

    Hidden layer l computes ``relu(BN(A_l z + c_l))`` (BN optional); the last hidden
    layer is the penultimate layer, of ``feature_dim`` units when given (a bottleneck: with
    ``feature_dim < K - 1`` the K classes outnumber the feature dimensions plus one). Probe
    layers ``layer1 .. layer{depth-1}`` are the hidden layers before it (their post-ReLU
    outputs).
    """

    def __init__(
        self,
        in_features: int,
        num_classes: int,
        *,
        width: int = 256,
        depth: int = 3,
        batch_norm: bool = True,
        bias: bool = True,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        self.flatten = nn.Flatten()
        fan_in = in_features
        names = []
        for index in range(1, depth):
            block = nn.Sequential(*_linear_block(fan_in, width, batch_norm), nn.ReLU())
            self.add_module(f"layer{index}", block)
            names.append(f"layer{index}")
            fan_in = width
        features = feature_dim or width
        self.penultimate = nn.Sequential(*_linear_block(fan_in, features, batch_norm))
        self.classifier = nn.Linear(features, num_classes, bias=bias)
        self.probe_layers = tuple(names)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.flatten(x)
        for name in self.probe_layers:
            z = getattr(self, name)(z)
        pre = self.penultimate(z)
        return pre, torch.relu(pre)


def _conv_block(in_channels: int, out_channels: int, batch_norm: bool) -> list[nn.Module]:
    layers: list[nn.Module] = [
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=not batch_norm)
    ]
    if batch_norm:
        layers.append(nn.BatchNorm2d(out_channels))
    layers.append(nn.ReLU())
    return layers


class SmallCNN(CollapseNet):
    """Three 3x3 conv stages (c, 2c, 4c channels; 2x2 max pool after the first two), global
    average pooling, then a fully connected penultimate layer of ``hidden`` units.

    Probe layers: ``layer1``, ``layer2``, ``layer3`` (the conv stages; their feature maps are
    average-pooled over space when measured).
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        *,
        channels: int = 32,
        hidden: int = 128,
        batch_norm: bool = True,
        bias: bool = True,
    ) -> None:
        super().__init__()
        c = channels
        self.layer1 = nn.Sequential(*_conv_block(in_channels, c, batch_norm), nn.MaxPool2d(2))
        self.layer2 = nn.Sequential(*_conv_block(c, 2 * c, batch_norm), nn.MaxPool2d(2))
        self.layer3 = nn.Sequential(*_conv_block(2 * c, 4 * c, batch_norm))
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.penultimate = nn.Sequential(*_linear_block(4 * c, hidden, batch_norm))
        self.classifier = nn.Linear(hidden, num_classes, bias=bias)
        self.probe_layers = ("layer1", "layer2", "layer3")

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        z = self.pool(self.layer3(self.layer2(self.layer1(x))))
        pre = self.penultimate(z)
        return pre, torch.relu(pre)


# channel multipliers of the VGG stages (Simonyan & Zisserman 2015), per depth
VGG_STAGES: dict[int, tuple[tuple[int, ...], ...]] = {
    11: ((1,), (2,), (4, 4), (8, 8), (8, 8)),
    13: ((1, 1), (2, 2), (4, 4), (8, 8), (8, 8)),
    16: ((1, 1), (2, 2), (4, 4, 4), (8, 8, 8), (8, 8, 8)),
}


class VGG(CollapseNet):
    """VGG-11/13/16 with batch norm (Simonyan & Zisserman, ICLR 2015), for small images.

    Five conv stages of base x (1, 2, 4, 8, 8) channels, each ending in a 2x2 max pool
    (ceil mode, so 28x28 and 8x8 inputs work), global average pooling, then one fully
    connected penultimate layer of 8 x base units (+ BN) and the classifier.
    Probe layers: ``layer1`` .. ``layer5`` (the stages).
    """

    def __init__(
        self,
        depth: int,
        in_channels: int,
        num_classes: int,
        *,
        base_channels: int = 64,
        bias: bool = True,
        feature_dim: int | None = None,
    ) -> None:
        super().__init__()
        if depth not in VGG_STAGES:
            raise ValueError(f"VGG depth must be one of {sorted(VGG_STAGES)}; got {depth}")
        channels = in_channels
        names = []
        for index, stage in enumerate(VGG_STAGES[depth], start=1):
            layers: list[nn.Module] = []
            for multiplier in stage:
                layers += _conv_block(channels, multiplier * base_channels, True)
                channels = multiplier * base_channels
            layers.append(nn.MaxPool2d(2, ceil_mode=True))
            self.add_module(f"layer{index}", nn.Sequential(*layers))
            names.append(f"layer{index}")
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten())
        features = feature_dim or channels
        self.penultimate = nn.Sequential(*_linear_block(channels, features, True))
        self.classifier = nn.Linear(features, num_classes, bias=bias)
        self.probe_layers = tuple(names)

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        for name in self.probe_layers:
            x = getattr(self, name)(x)
        pre = self.penultimate(self.pool(x))
        return pre, torch.relu(pre)


class BasicBlock(nn.Module):
    """ResNet basic block: ``relu(BN(conv(relu(BN(conv x)))) + shortcut(x))`` (He et al. 2016).

    With ``keep_preactivation`` set, the last forward's value before the final ReLU is
    kept in ``self.preactivation`` (the ResNet uses it for its pre-ReLU features).
    """

    def __init__(self, in_channels: int, out_channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride, bias=False),
                nn.BatchNorm2d(out_channels),
            )
        self.keep_preactivation = False
        self.preactivation: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = torch.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out)) + self.shortcut(x)
        if self.keep_preactivation:
            self.preactivation = out
        return torch.relu(out)


RESNET_BLOCKS = {18: (2, 2, 2, 2), 34: (3, 4, 6, 3)}


class ResNet(CollapseNet):
    """ResNet-18/34 (He et al., CVPR 2016) with a stem for small or large images.

    ``stem="small"``: one 3x3 stride-1 conv (the usual CIFAR-10 stem; with 1 input channel
    it is the MNIST stem of Tirer & Bruna). ``stem="imagenet"``: 7x7 stride-2 conv and 3x3
    max pool (for 96x96 STL-10 and larger). Stages ``layer1`` .. ``layer4`` of base x
    (1, 2, 4, 8) channels; the penultimate features are the global average pool of
    ``layer4`` (post) and of its last block before the final ReLU (pre). Probe layers:
    ``layer1`` .. ``layer3`` (``layer4`` is the penultimate layer).
    """

    def __init__(
        self,
        depth: int,
        in_channels: int,
        num_classes: int,
        *,
        base_channels: int = 64,
        stem: str = "small",
        bias: bool = True,
    ) -> None:
        super().__init__()
        if depth not in RESNET_BLOCKS:
            raise ValueError(f"ResNet depth must be one of {sorted(RESNET_BLOCKS)}; got {depth}")
        c = base_channels
        if stem == "small":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c, 3, 1, padding=1, bias=False), nn.BatchNorm2d(c), nn.ReLU()
            )
        elif stem == "imagenet":
            self.stem = nn.Sequential(
                nn.Conv2d(in_channels, c, 7, 2, padding=3, bias=False),
                nn.BatchNorm2d(c),
                nn.ReLU(),
                nn.MaxPool2d(3, 2, padding=1),
            )
        else:
            raise ValueError(f"stem must be 'small' or 'imagenet'; got {stem!r}")
        channels = c
        for index, (blocks, multiplier) in enumerate(
            zip(RESNET_BLOCKS[depth], (1, 2, 4, 8), strict=True), start=1
        ):
            stage = []
            for block_index in range(blocks):
                stride = 2 if (index > 1 and block_index == 0) else 1
                stage.append(BasicBlock(channels, multiplier * c, stride))
                channels = multiplier * c
            self.add_module(f"layer{index}", nn.Sequential(*stage))
        self.last_block: BasicBlock = self.layer4[-1]
        self.last_block.keep_preactivation = True
        self.classifier = nn.Linear(channels, num_classes, bias=bias)
        self.probe_layers = ("layer1", "layer2", "layer3")

    def forward_features(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.stem(x)))))
        pre = self.last_block.preactivation
        self.last_block.preactivation = None  # do not keep the graph alive between calls
        assert pre is not None
        return pre.mean(dim=(2, 3)), x.mean(dim=(2, 3))


def build_net(
    arch: str,
    input_shape: tuple[int, int, int],
    num_classes: int,
    *,
    width: int = 256,
    depth: int = 3,
    batch_norm: bool = True,
    bias: bool = True,
    base_channels: int | None = None,
    stem: str = "auto",
    feature_dim: int | None = None,
) -> CollapseNet:
    """Build a network by name.

    Parameters
    ----------
    arch : one of ``ARCHITECTURES``.
    input_shape : (C, H, W) of the images (any shape for the MLP, which flattens it).
    num_classes : K, the classifier's outputs.
    width, depth : MLP hidden units per layer and number of hidden layers.
    batch_norm : batch norm in the MLP and CNN (VGG and ResNet always have it).
    bias : the classifier's bias (False: ``logits = W h``).
    base_channels : conv channels of the first stage (default 32 for cnn, 64 otherwise).
    stem : ResNet stem, 'small', 'imagenet' or 'auto' (imagenet for images >= 64 px).
    feature_dim : width d of the penultimate layer, the classifier's input (default: the
        architecture's own: ``width`` for the MLP, 128 for the CNN, 8 x base for VGG); not
        for ResNet, whose features are its last stage's channels.
    """
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHITECTURES)}")
    width = check_int("width", width, minimum=1, meaning="hidden units per MLP layer")
    depth = check_int("depth", depth, minimum=1, meaning="hidden layers of the MLP")
    num_classes = check_int("num_classes (K)", num_classes, minimum=2, meaning="classifier outputs")
    if base_channels is not None:
        base_channels = check_int(
            "base_channels", base_channels, minimum=1, meaning="conv channels of the first stage"
        )
    if feature_dim is not None:
        feature_dim = check_int(
            "feature_dim (d)", feature_dim, minimum=1, meaning="width of the penultimate layer"
        )
        if arch.startswith("resnet"):
            raise ValueError(
                f"--feature-dim does not apply to {arch}: its features are the channels of its "
                "last stage (8 x --base-channels); use mlp, cnn or vgg for a chosen width"
            )
    input_shape = tuple(int(size) for size in input_shape)
    if arch == "mlp":  # any input shape: the MLP flattens it
        return MLP(
            math.prod(input_shape),
            num_classes,
            width=width,
            depth=depth,
            batch_norm=batch_norm,
            bias=bias,
            feature_dim=feature_dim,
        )
    if len(input_shape) != 3:
        raise ValueError(
            f"arch {arch} needs images of shape (C, H, W); the inputs have shape {input_shape}: "
            "use --arch mlp for other inputs, or reshape them in the dataset"
        )
    channels, height, _ = input_shape
    if arch == "cnn":
        return SmallCNN(
            channels,
            num_classes,
            channels=base_channels or 32,
            hidden=feature_dim or 128,
            batch_norm=batch_norm,
            bias=bias,
        )
    if arch.startswith("vgg"):
        return VGG(
            int(arch[3:]),
            channels,
            num_classes,
            base_channels=base_channels or 64,
            bias=bias,
            feature_dim=feature_dim,
        )
    if stem == "auto":
        stem = "imagenet" if height >= 64 else "small"
    return ResNet(
        int(arch[6:]),
        channels,
        num_classes,
        base_channels=base_channels or 64,
        stem=stem,
        bias=bias,
    )
