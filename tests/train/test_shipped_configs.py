"""Every YAML file in configs/ loads into its stage's typed config (a stale key would be an error)."""

from pathlib import Path

import pytest

from astroembed.train.clip import CLIPConfig
from astroembed.train.common import load_yaml_config
from astroembed.train.image import ImagePretrainConfig
from astroembed.train.spectrum import SpectrumPretrainConfig

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
STAGES = {"image": ImagePretrainConfig, "spectrum": SpectrumPretrainConfig, "clip": CLIPConfig}


def test_there_is_a_config_for_every_stage():
    assert {path.name.split("_")[0] for path in CONFIGS.glob("*.yaml")} == set(STAGES)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads_into_its_stage_config(path):
    stage = STAGES[path.name.split("_")[0]]
    config = load_yaml_config(stage, path)
    assert isinstance(config, stage)
    if isinstance(config, SpectrumPretrainConfig):  # patching follows the preprocessing
        assert config.model.n_patches == config.preprocess.n_patches
