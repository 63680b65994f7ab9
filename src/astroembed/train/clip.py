"""CLIP alignment of two or three modalities into one space (AstroCLIP; ImageBind-style pairwise losses).

    astroembed pretrain clip --image-model RUN_I/model --spectrum-model RUN_S/model --data PATH --out RUN
    astroembed pretrain clip --image-model RUN_I/model --spectrum-model RUN_S/model --photometry ...

Image and spectrum encoders are loaded from their exports (config.json + model.safetensors, with the
preprocessing each was trained with). Photometry comes either from an exported photometry encoder
(``photometry_model``) or from a new one trained from scratch in the alignment (``photometry: true``; its
arcsinh softening and standardisation are fitted on the training galaxies). A projection head on each
encoder maps its embedding into a shared space; every pair of modalities has its own symmetric InfoNCE
loss (:class:`~astroembed.objectives.clip.CLIPLoss`, learnable clamped temperature, negatives gathered
from every process under DDP), masked to the galaxies that have both (a galaxy without a spectrum still
trains image <-> photometry), and the stage minimises their mean. Each pretrained backbone is either
frozen (eval mode, no gradient) or fine-tuned at ``backbone_lr_scale`` times the learning rate; a
photometry encoder trained from scratch learns at the full rate. Batch assembly: :mod:`.clip_data`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from itertools import combinations
from pathlib import Path
from typing import Sequence

import torch
from torch import nn

from ..augment.image import ImageAugmentConfig
from ..augment.photometry import PhotometryAugmentConfig
from ..augment.spectrum import SpectrumAugmentConfig
from ..config import Config, save_yaml_config
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..models.clip_model import AlignedModel
from ..models.photometry_encoder import PhotometryEncoderConfig
from ..objectives.clip import CLIPLoss, CLIPOutput
from ..preprocess.image import PreprocessConfig
from ..preprocess.photometry import PhotometryPreprocessConfig
from ..preprocess.spectrum import SpectrumPreprocessConfig
from .clip_build import build_aligned, configured_modalities, export_aligned, export_aligned_model, load_encoder
from .clip_data import AlignmentInputs, fit_training_photometry, survey_photometry_bands
from .common import RunConfig, fit_stage

# build_aligned, load_encoder and the exports live in clip_build.py; named here too, where callers found them.
__all__ = ["CLIPConfig", "CLIPNetworks", "LightImageAugmentConfig", "build_aligned", "export_aligned",
           "export_aligned_model", "load_encoder", "pretrain_clip"]


@dataclass
class LightImageAugmentConfig(ImageAugmentConfig):
    """The image views of the alignment stage: exact rotations/flips, free rotation and a small jitter.

    Lighter than the image pretraining views (no rescaling, reddening, blur or added noise): here the
    augmentation only regularises the heads, it does not define what the encoder must ignore.
    ``crop_size`` is replaced by the image model's crop at run start.
    """

    max_shift: float = 2.0
    scale_range: tuple[float, float] = (1.0, 1.0)
    physical: bool = False
    noise: bool = False


@dataclass
class CLIPConfig(Config):
    """Everything a CLIP alignment run needs; loadable from YAML.

    Two or three modalities: ``image_model``, ``spectrum_model``, and ``photometry`` (a new encoder,
    architecture ``photometry_encoder``) or ``photometry_model`` (an exported one).
    ``image_augment: null`` turns image augmentation off; ``spectrum_augment`` is off unless given
    (a mapping of :class:`~astroembed.augment.spectrum.SpectrumAugmentConfig` fields, ``{}`` = defaults);
    ``photometry_augment: null`` turns photometry augmentation off.
    """

    image_model: str = ""           # exported image encoder folder (RUN/model)
    spectrum_model: str = ""        # exported spectrum transformer folder
    photometry: bool = False        # align a photometry encoder trained from scratch here
    photometry_model: str = ""      # ... or an exported photometry encoder
    data: str = ""                  # MMU survey with the modalities
    out: str = "runs/clip"
    embed_dim: int = 128            # shared space size (AstroCLIP: 512)
    projection_hidden: int = 512    # hidden width of every head; 0 = linear heads
    freeze_image: bool = False
    freeze_spectrum: bool = False
    freeze_photometry: bool = False  # only for an exported photometry encoder
    photometry_encoder: PhotometryEncoderConfig = field(default_factory=PhotometryEncoderConfig)
    photometry_augment: PhotometryAugmentConfig | None = field(default_factory=PhotometryAugmentConfig)
    backbone_lr_scale: float = 0.1  # learning-rate multiplier of a fine-tuned backbone (heads get 1)
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0  # the learnable 1/temperature is clamped to this (CLIP)
    image_augment: LightImageAugmentConfig | None = field(default_factory=LightImageAugmentConfig)
    spectrum_augment: SpectrumAugmentConfig | None = None
    train_indices: list[int] | None = None
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if isinstance(self.embed_dim, bool) or not isinstance(self.embed_dim, int) or self.embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive int, got {self.embed_dim!r}")
        if not self.init_temperature > 0:
            raise ValueError(f"init_temperature must be > 0, got {self.init_temperature}")
        if not self.backbone_lr_scale >= 0:
            raise ValueError(f"backbone_lr_scale must be >= 0, got {self.backbone_lr_scale}")
        if self.photometry and self.photometry_model:
            raise ValueError("give photometry (a new encoder) or photometry_model (an exported one), not both")

    @property
    def modalities(self) -> tuple[str, ...]:
        return configured_modalities(self)


def pair_name(a: str, b: str) -> str:
    """The name of the loss (and its logged values) of modalities ``a`` and ``b``: ``"image_spectrum"``."""
    return f"{a}_{b}"


def pair_losses(modalities: Sequence[str], init_temperature: float, max_logit_scale: float,
                gather_distributed: bool = True) -> nn.ModuleDict:
    """One :class:`CLIPLoss` (its own learnable temperature) per pair of ``modalities``, by :func:`pair_name`."""
    return nn.ModuleDict({pair_name(a, b): CLIPLoss(init_temperature=init_temperature, max_logit_scale=max_logit_scale,
                                                    gather_distributed=gather_distributed)
                          for a, b in combinations(modalities, 2)})


def pairwise_clip(losses: nn.ModuleDict, z: dict[str, torch.Tensor], present: dict[str, torch.Tensor]
                  ) -> dict[str, CLIPOutput]:
    """The CLIPOutput of each pair of ``losses`` on projections ``z``, over the galaxies ``present`` in both
    (pairs of ``z`` without a loss are not scored)."""
    out = {}
    for a, b in combinations(z, 2):
        name = pair_name(a, b)
        if name in losses:
            out[name] = losses[name](z[a], z[b], return_details=True, mask=present[a] & present[b])
    return out


class CLIPNetworks(nn.Module):
    """The aligned model, one loss per pair of modalities and the batch assembly; free of Lightning."""

    def __init__(self, config: CLIPConfig, model: AlignedModel, inputs: AlignmentInputs,
                 pretrained: Sequence[str] = ("image", "spectrum")):
        super().__init__()
        self.config = config
        self.model = model
        self.inputs = inputs
        self.modalities = model.modalities
        self.pairs = list(combinations(self.modalities, 2))
        self.losses = pair_losses(self.modalities, config.init_temperature, config.max_logit_scale)
        self.pretrained = tuple(m for m in self.modalities if m in pretrained)
        self.frozen_modalities = tuple(m for m in self.pretrained if getattr(config, f"freeze_{m}"))
        self.frozen = [model.encoder(m) for m in self.frozen_modalities]
        for encoder in self.frozen:
            encoder.requires_grad_(False)
        if "spectrum" in self.modalities:
            # The masked-modelling head and mask token serve pretraining only; embedding never uses them,
            # and DDP refuses parameters that want a gradient but get none.
            model.spectrum_encoder.head.requires_grad_(False)
            model.spectrum_encoder.mask_token.requires_grad_(False)

    def train(self, mode: bool = True):
        # Frozen backbones stay in eval mode: no BatchNorm statistics drift, no dropout.
        super().train(mode)
        for encoder in self.frozen:
            encoder.eval()
        return self

    def _project(self, modality: str, batch) -> torch.Tensor:
        x = self.inputs.inputs(modality, batch)
        if modality in self.frozen_modalities:
            with torch.no_grad():
                features = self.model.encoder(modality)(x)
            return self.model.head(modality)(features)
        return self.model.project(modality, x)

    def forward(self, batch) -> dict[str, CLIPOutput]:
        """The CLIPOutput (loss, logits, accuracy, scale) of each pair, over the galaxies that have both."""
        z = {m: self._project(m, batch).float() for m in self.modalities}
        return pairwise_clip(self.losses, z, {m: self.inputs.present(m, batch) for m in self.modalities})

    def step(self, batch, device=None) -> tuple[torch.Tensor, int, dict]:
        outs = self(batch)
        loss = torch.stack([o.loss for o in outs.values()]).mean()
        first = next(iter(outs.values()))
        # "negatives": candidates each row is scored against: the global batch when negatives are gathered (DDP).
        logs = {"train_accuracy": torch.stack([o.accuracy for o in outs.values()]).nanmean(),
                "logit_scale": first.logit_scale, "negatives": float(first.logits_a.shape[1])}
        if len(outs) > 1:
            logs.update({f"loss_{name}": o.loss.detach() for name, o in outs.items()})
        return loss, len(first.logits_a), logs

    def parameter_groups(self, lr: float) -> list[dict]:
        m = self.model
        new = [p for mod in self.modalities if mod not in self.pretrained for p in m.encoder(mod).parameters()]
        groups = [{"params": [*(p for mod in self.modalities for p in m.head(mod).parameters()), *new,
                              *self.losses.parameters()], "lr": lr}]
        backbones = [p for mod in self.pretrained for p in m.encoder(mod).parameters() if p.requires_grad]
        if backbones:
            groups.append({"params": backbones, "lr": lr * self.config.backbone_lr_scale})
        return groups

    def logit_scales(self) -> dict[str, float]:
        return {name: float(loss.logit_scale.detach().exp()) for name, loss in self.losses.items()}


def _image_preprocess(config: CLIPConfig, image_cfg: dict, dataset: MMUDataset) -> PreprocessConfig:
    """The image model's preprocessing, checked against the survey's bands; sizes the augmentation's crop."""
    image_pre = PreprocessConfig.from_dict(image_cfg["preprocessing"])
    if image_pre.mode == "rgb":
        raise InvalidDataError("CLIP alignment needs an image encoder trained on survey flux (bands with "
                               "spectra), not on 8-bit RGB cutouts", source=str(config.image_model),
                               field="preprocessing")
    bands = tuple(image_cfg["bands"])
    image = dataset.survey.galaxy(int(dataset.indices[0])).image
    stored = tuple(image.bands) if image is not None else bands
    if stored != bands:
        raise InvalidDataError(f"the image model was trained on bands {list(bands)}, the survey has "
                               f"{list(stored)}", source=str(config.data), field="image_band")
    if config.image_augment is not None:
        side = image_pre.crop_size or image_pre.input_size or int(dataset[0]["image"].shape[-1])
        config.image_augment = dataclasses.replace(config.image_augment, crop_size=int(side))
    return image_pre


def pretrain_clip(config: CLIPConfig, init_heads: str | Path | None = None) -> Path:
    """Run (or resume) CLIP alignment; returns the exported aligned model folder ``RUN/model``.

    ``init_heads``: an aligned export of the same encoders whose projection heads this run starts
    from (e.g. :func:`astroembed.train.clip_frozen.align_frozen`'s), instead of random heads."""
    import lightning.pytorch as pl

    from .lightning_module import StageModule

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.run.seed, workers=True, verbose=False)
    modalities = config.modalities
    if len(modalities) < 2:
        raise ValueError(f"CLIP alignment needs two or three modalities (--image-model, --spectrum-model, "
                         f"--photometry or --photometry-model); got {list(modalities)}")
    data = Path(config.data)
    opened: dict = {}

    def open_data():  # the survey and its photometry bands, read once the exported encoders have loaded
        if not opened:
            if not data.exists():
                raise InvalidDataError("no such file or folder", source=str(data))
            dataset = MMUDataset(data, modalities=modalities, indices=config.train_indices)
            opened.update(dataset=dataset, bands=survey_photometry_bands(dataset.survey, dataset.indices, str(data))
                          if "photometry" in modalities else ())
        return opened["dataset"], opened["bands"]

    model, configs = build_aligned(config, (lambda: fit_training_photometry(*open_data())) if config.photometry
                                   else None)
    if init_heads is not None:
        from .aligned_heads import load_heads

        load_heads(model, init_heads)
    dataset, survey_bands = open_data()
    image_pre = _image_preprocess(config, configs["image"], dataset) if "image" in modalities else None
    inputs = AlignmentInputs(
        image=image_pre, bands=tuple(configs["image"]["bands"]) if image_pre else (),
        image_augment=config.image_augment,
        spectrum=SpectrumPreprocessConfig.from_dict(configs["spectrum"]["preprocessing"])
        if "spectrum" in modalities else None, spectrum_augment=config.spectrum_augment,
        photometry=PhotometryPreprocessConfig.from_dict(configs["photometry"]["preprocessing"])
        if "photometry" in modalities else None,
        survey_photometry_bands=survey_bands, photometry_augment=config.photometry_augment)
    save_yaml_config(config, run_dir / "config.yaml")

    pretrained = tuple(m for m in modalities if not (m == "photometry" and config.photometry))
    networks = CLIPNetworks(config, model, inputs, pretrained)
    module = StageModule(networks, config.run)

    def export(model_dir, extra):
        scales = networks.logit_scales()
        sources = {f"{m}_model": str(getattr(config, f"{m}_model")) for m in pretrained}
        frozen = {f"freeze_{m}": bool(getattr(config, f"freeze_{m}")) for m in pretrained}
        return export_aligned(model, configs, model_dir, {
            **extra, **sources, **frozen, "photometry_from_scratch": bool(config.photometry),
            "logit_scale": next(iter(scales.values())), "logit_scales": scales})

    return fit_stage(module, dataset, config.run, run_dir, str(config.data), export)
