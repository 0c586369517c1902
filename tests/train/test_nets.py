"""Networks expose penultimate features (pre/post ReLU) and named layers; probes capture them."""

from __future__ import annotations

import pytest
import torch

from neuralcollapse.train.nets import ARCHITECTURES, build_net
from neuralcollapse.train.probe import FeatureProbe, as_feature_matrix, resolve_layers

SMALL = {"width": 16, "depth": 3, "base_channels": 4}


def _net(arch, shape=(1, 8, 8), **kw):
    torch.manual_seed(0)
    return build_net(arch, shape, 5, **{**SMALL, **kw}).eval()


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_logits_are_the_classifier_applied_to_the_post_relu_features(arch):
    net = _net(arch)
    images = torch.randn(6, 1, 8, 8)
    pre, post = net.forward_features(images)
    assert pre.shape == post.shape == (6, net.feature_dim)
    torch.testing.assert_close(net(images), net.classifier(post))
    logits, features = net(images, return_features=True)
    torch.testing.assert_close(features, post)
    assert (post >= 0).all() and (pre < 0).any()


@pytest.mark.parametrize("arch", ["mlp", "cnn", "vgg11"])
def test_post_features_are_the_relu_of_pre_features(arch):
    net = _net(arch)
    pre, post = net.forward_features(torch.randn(4, 1, 8, 8))
    torch.testing.assert_close(post, torch.relu(pre))


def test_resnet_pre_features_are_the_pooled_last_block_before_its_relu():
    net = _net("resnet18")
    images = torch.randn(3, 1, 8, 8)
    captured = {}
    net.layer4[-1].bn2.register_forward_hook(lambda m, i, o: captured.setdefault("bn2", o))
    net.layer4[-1].shortcut.register_forward_hook(lambda m, i, o: captured.setdefault("sc", o))
    pre, post = net.forward_features(images)
    preactivation = captured["bn2"] + captured["sc"]
    torch.testing.assert_close(pre, preactivation.mean(dim=(2, 3)))
    torch.testing.assert_close(post, torch.relu(preactivation).mean(dim=(2, 3)))


@pytest.mark.parametrize("arch", ARCHITECTURES)
def test_no_bias_switches_the_classifier_bias_off(arch):
    assert _net(arch, bias=False).classifier.bias is None
    assert _net(arch, bias=True).classifier.bias is not None


@pytest.mark.parametrize(
    ("arch", "layers"),
    [
        ("mlp", ("layer1", "layer2")),
        ("cnn", ("layer1", "layer2", "layer3")),
        ("vgg13", tuple(f"layer{i}" for i in range(1, 6))),
        ("resnet34", ("layer1", "layer2", "layer3")),
    ],
)
def test_probe_layers_are_named_and_captured_in_one_pass(arch, layers):
    net = _net(arch, shape=(3, 32, 32))
    assert net.probe_layers == layers
    with FeatureProbe(net, resolve_layers(net, "all")) as probe:
        out = probe.features(torch.randn(2, 3, 32, 32))
    for name in layers:
        assert out[name].dim() == 2 and out[name].shape[0] == 2
    # the probe leaves no hooks behind
    assert all(not module._forward_hooks for module in net.modules())


def test_probe_averages_conv_maps_over_space():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).reshape(2, 3, 4, 4)
    torch.testing.assert_close(as_feature_matrix(maps), maps.mean(dim=(2, 3)))
    assert as_feature_matrix(torch.ones(2, 5)).shape == (2, 5)


def test_mlp_depth_sets_the_number_of_probe_layers_and_bn_is_optional():
    net = _net("mlp", depth=5, batch_norm=False)
    assert net.probe_layers == ("layer1", "layer2", "layer3", "layer4")
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in net.modules())


def test_resolve_layers_accepts_any_module_name_and_rejects_unknown_ones():
    net = _net("resnet18")
    assert resolve_layers(net, "layer2.1, layer3") == ("layer2.1", "layer3")
    assert resolve_layers(net, "none") == ()
    with pytest.raises(ValueError, match="layer 'layer9' is not a module of ResNet.*layer1"):
        resolve_layers(net, "layer9")


def test_resnet_imagenet_stem_is_chosen_for_large_images():
    net = build_net("resnet18", (3, 96, 96), 10, base_channels=4)
    assert isinstance(net.stem[0], torch.nn.Conv2d) and net.stem[0].kernel_size == (7, 7)
    assert build_net("resnet18", (1, 28, 28), 10, base_channels=4).stem[0].kernel_size == (3, 3)


def test_feature_parameters_are_all_parameters_but_the_classifiers():
    net = _net("cnn")
    ids = {id(p) for p in net.feature_parameters()}
    assert id(net.classifier.weight) not in ids
    assert len(ids) + len(list(net.classifier.parameters())) == len(list(net.parameters()))


def test_build_net_rejects_unknown_architectures():
    with pytest.raises(ValueError, match="unknown arch 'vgg19'; choose one of mlp"):
        build_net("vgg19", (1, 8, 8), 10)
