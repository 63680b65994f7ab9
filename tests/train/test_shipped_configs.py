"""Every YAML file in configs/ loads into its stage's typed config (a stale key would be an error)."""

from pathlib import Path

import pytest

import astroembed

from astroembed.train.clip import CLIPConfig
from astroembed.train.clip_frozen import FrozenAlignConfig
from astroembed.config import load_yaml_config
from astroembed.train.image import ImagePretrainConfig
from astroembed.train.photometry import PhotometryPretrainConfig
from astroembed.train.spectrum import SpectrumPretrainConfig
from astroembed.train.spectrum_decoder import SpectrumDecoderConfig

CONFIGS = Path(astroembed.__file__).parent / "configs"
STAGES = {"image": ImagePretrainConfig, "spectrum": SpectrumPretrainConfig, "clip": CLIPConfig,
          "photometry": PhotometryPretrainConfig, "decoder": SpectrumDecoderConfig, "align": FrozenAlignConfig}


def test_there_is_a_config_for_every_stage():
    assert {path.name.split("_")[0] for path in CONFIGS.glob("*.yaml")} == set(STAGES)


@pytest.mark.parametrize("path", sorted(CONFIGS.glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_config_loads_into_its_stage_config(path):
    stage = STAGES[path.name.split("_")[0]]
    config = load_yaml_config(stage, path)
    assert isinstance(config, stage)
    if isinstance(config, SpectrumPretrainConfig):  # patching follows the preprocessing
        assert config.model.n_patches == config.preprocess.n_patches


def test_a_shipped_config_loads_by_name_with_dotted_overrides():
    config = ImagePretrainConfig.from_yaml("image_simclr_cpu", {"run.batch_size": 7, "encoder.arch": "resnet18"})
    assert config.run.batch_size == 7 and config.encoder.arch == "resnet18"
    assert config.run.max_minutes == 15  # from the file, not the dataclass default (None)
    with pytest.raises(FileNotFoundError, match="no shipped config of that name.*image_simclr_cpu"):
        ImagePretrainConfig.from_yaml("image_simclr_gpu_typo")


def test_unknown_keys_fail_at_every_nesting_level():
    with pytest.raises(ValueError, match=r"unknown RunConfig key\(s\) \['batchsize'\]"):
        ImagePretrainConfig.from_yaml(None, {"run.batchsize": 3})
    with pytest.raises(ValueError, match=r"unknown SpectrumPreprocessConfig key\(s\) \['wave_stp'\]"):
        SpectrumPretrainConfig.from_yaml(None, {"preprocess.wave_stp": 3.0})


def test_every_config_round_trips_through_plain_data():
    for stage in STAGES.values():
        config = stage.from_yaml(None)
        assert stage.from_dict(config.to_dict()) == config
