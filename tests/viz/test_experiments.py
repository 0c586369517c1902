"""The experiment configs in experiments/ are valid training configurations."""

from pathlib import Path

import pytest

from neuralcollapse.train.config import build_config, read_config_file

EXPERIMENTS = Path(__file__).resolve().parents[2] / "experiments"
CONFIGS = sorted(EXPERIMENTS.glob("*/*.toml"))


def test_there_are_gpu_and_cpu_configs_for_both_papers():
    groups = {path.parent.name for path in CONFIGS}
    assert groups == {"papyan", "tirer_bruna", "cpu"}


@pytest.mark.parametrize("path", CONFIGS, ids=lambda path: f"{path.parent.name}/{path.stem}")
def test_config_is_a_valid_training_configuration(path):
    config = build_config(read_config_file(path))
    if path.parent.name == "papyan":
        assert (config.loss, config.bias, config.epochs) == ("ce", True, 350)
        assert (config.momentum, config.weight_decay, config.batch_size) == (0.9, 5e-4, 128)
    if path.parent.name == "tirer_bruna":
        assert config.arch == "resnet18" and config.lr == 0.05 and config.step_size == 40
        # the paper's two cases: MSE without classifier bias, CE with bias
        assert (config.loss, config.bias) in {("mse", False), ("ce", True)}
