"""CLIP alignment of a pretrained image encoder and a pretrained spectrum encoder (AstroCLIP).

    astroembed pretrain clip --image-model RUN_I/model --spectrum-model RUN_S/model --data PATH --out RUN

Both encoders are loaded from their exports (config.json + model.safetensors, with the preprocessing
each was trained with). A projection head on each maps its embedding into a shared space; the
symmetric InfoNCE loss (:class:`~astroembed.objectives.clip.CLIPLoss`, learnable clamped temperature,
negatives gathered from every process under DDP) pulls a galaxy's image and spectrum together. Each
backbone is either frozen (eval mode, no gradient: only the heads and temperature learn) or fine-tuned
at ``backbone_lr_scale`` times the learning rate.

Per step, on the training device: cutouts -> optional light augmentation -> the image model's saved
preprocessing -> image encoder -> head; stored spectra -> optional spectrum augmentation -> the
spectrum model's saved preprocessing (resample, normalise, patch) -> spectrum encoder -> head.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..augment.image import ImageAugmentConfig, ImageAugmenter
from ..preprocess.image import PreprocessConfig, preprocess, standardize
from ..augment.spectrum import SpectrumAugmentConfig, augment_spectra
from ..preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..preprocess.stored import fill_padded_wavelengths
from ..models.clip_model import AlignedModel
from ..models.io import load_model, save_model
from ..objectives.clip import CLIPLoss
from ..config import Config, save_yaml_config
from .common import RunConfig, fit_stage


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

    ``image_augment: null`` turns image augmentation off; ``spectrum_augment`` is off unless given
    (a mapping of :class:`~astroembed.augment.spectrum.SpectrumAugmentConfig` fields, ``{}`` = defaults).
    """

    image_model: str = ""           # exported image encoder folder (RUN/model)
    spectrum_model: str = ""        # exported spectrum transformer folder
    data: str = ""                  # MMU survey with both images and spectra
    out: str = "runs/clip"
    embed_dim: int = 128            # shared space size (AstroCLIP: 512)
    projection_hidden: int = 512    # hidden width of both heads; 0 = linear heads
    freeze_image: bool = False
    freeze_spectrum: bool = False
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


def load_encoder(path, model_type: str, what: str) -> tuple[nn.Module, dict]:
    """An exported encoder and its config, checked to be of ``model_type``."""
    path = Path(path)
    if (path / "model" / "config.json").is_file() and not (path / "config.json").is_file():
        path = path / "model"  # a run folder was given
    module, config = load_model(path)
    if config["model_type"] != model_type:
        raise InvalidDataError(f"{what} must be a {model_type!r} export, this is {config['model_type']!r}",
                               source=str(path / "config.json"), field="model_type")
    return module, config


class CLIPNetworks(nn.Module):
    """The aligned model, the loss and the augmentations; free of Lightning."""

    def __init__(self, config: CLIPConfig, model: AlignedModel, image_preprocess: PreprocessConfig,
                 spectrum_preprocess: SpectrumPreprocessConfig, bands: tuple[str, ...]):
        super().__init__()
        self.config = config
        self.model = model
        self.image_preprocess = image_preprocess
        self.spectrum_preprocess = spectrum_preprocess
        self.bands = tuple(bands)
        self.loss = CLIPLoss(init_temperature=config.init_temperature, max_logit_scale=config.max_logit_scale)
        self.augmenter = ImageAugmenter(config.image_augment) if config.image_augment is not None else None
        self.frozen = [enc for enc, frozen in ((model.image_encoder, config.freeze_image),
                                               (model.spectrum_encoder, config.freeze_spectrum)) if frozen]
        for encoder in self.frozen:
            encoder.requires_grad_(False)
        # The masked-modelling head and mask token serve pretraining only; embedding never uses them, and
        # DDP refuses parameters that want a gradient but get none.
        model.spectrum_encoder.head.requires_grad_(False)
        model.spectrum_encoder.mask_token.requires_grad_(False)

    def train(self, mode: bool = True):
        # Frozen backbones stay in eval mode: no BatchNorm statistics drift, no dropout.
        super().train(mode)
        for encoder in self.frozen:
            encoder.eval()
        return self

    def images(self, batch) -> torch.Tensor:
        flux = standardize(batch["image"].float(), self.image_preprocess)
        if self.augmenter is not None and self.training:
            ivar = batch["image_ivar"] if bool(batch["image_has_ivar"].all()) else None
            scale = float(batch["pixel_scale"][0])
            flux = self.augmenter(flux, self.bands, ivar=ivar, psf_fwhm=batch.get("psf_fwhm"),
                                  pixel_scale=scale if np.isfinite(scale) and scale > 0 else 0.262)
        return preprocess(flux, self.image_preprocess, self.bands)

    def spectra(self, batch) -> dict[str, torch.Tensor]:
        flux, ivar, lam, mask = fill_padded_wavelengths(batch["spectrum_flux"], batch["spectrum_ivar"],
                                                        batch["spectrum_lambda"], batch["spectrum_mask"])
        if self.config.spectrum_augment is not None and self.training:
            flux, ivar, mask = augment_spectra(flux, ivar, mask, lam, self.config.spectrum_augment)
        return prepare_batch(flux, ivar, mask, lam, self.spectrum_preprocess)

    def _project(self, encoder, head, x, frozen: bool) -> torch.Tensor:
        if frozen:
            with torch.no_grad():
                features = encoder(x)
            return head(features)
        return head(encoder(x))

    def forward(self, batch):
        """CLIPOutput (loss, logits, accuracy, scale) of one batch with both modalities."""
        m, c = self.model, self.config
        a = self._project(m.image_encoder, m.image_head, self.images(batch), c.freeze_image)
        b = self._project(m.spectrum_encoder, m.spectrum_head, self.spectra(batch), c.freeze_spectrum)
        return self.loss(a.float(), b.float(), return_details=True)

    def step(self, batch, device=None) -> tuple[torch.Tensor, int, dict]:
        out = self(batch)
        # "negatives": candidates each row is scored against: the global batch when negatives are gathered (DDP).
        return out.loss, len(out.logits_a), {"train_accuracy": out.accuracy, "logit_scale": out.logit_scale,
                                             "negatives": float(out.logits_a.shape[1])}

    def parameter_groups(self, lr: float) -> list[dict]:
        m, c = self.model, self.config
        groups = [{"params": [*m.image_head.parameters(), *m.spectrum_head.parameters(), *self.loss.parameters()],
                   "lr": lr}]
        backbones = [p for enc in (m.image_encoder, m.spectrum_encoder) for p in enc.parameters() if p.requires_grad]
        if backbones:
            groups.append({"params": backbones, "lr": lr * c.backbone_lr_scale})
        return groups


def build_aligned(config: CLIPConfig) -> tuple[AlignedModel, dict, dict]:
    """The aligned model from the two exported encoders, and their saved configs."""
    image_encoder, image_cfg = load_encoder(config.image_model, "image_encoder", "--image-model")
    spectrum_encoder, spectrum_cfg = load_encoder(config.spectrum_model, "spectrum_transformer", "--spectrum-model")
    model = AlignedModel(image_encoder, spectrum_encoder, config.embed_dim, config.projection_hidden,
                         image_config={"model_type": image_cfg["model_type"], "model": image_cfg["model"]},
                         spectrum_config={"model_type": spectrum_cfg["model_type"], "model": spectrum_cfg["model"]})
    return model, image_cfg, spectrum_cfg


def export_aligned_model(model: AlignedModel, image_cfg: dict, spectrum_cfg: dict, directory: Path,
                         extra: dict | None = None) -> Path:
    """Save the aligned model as one folder: both encoders, both heads, both preprocessing configs."""
    return save_model(model, {
        "model_type": "aligned",
        "modality": "aligned",
        "modalities": ["image", "spectrum"],
        "model": model.model_config(),
        "preprocessing": {"image": image_cfg["preprocessing"], "spectrum": spectrum_cfg["preprocessing"]},
        "bands": list(image_cfg["bands"]),
        "embed_dim": int(model.embed_dim),
        "training": {"method": "clip", **(extra or {})},
    }, directory)


def pretrain_clip(config: CLIPConfig, init_heads: str | Path | None = None) -> Path:
    """Run (or resume) CLIP alignment; returns the exported aligned model folder ``RUN/model``.

    ``init_heads``: an aligned export of the same two encoders whose projection heads this run starts
    from (e.g. :func:`astroembed.train.clip_frozen.align_frozen`'s), instead of random heads."""
    import lightning.pytorch as pl

    from .lightning_module import StageModule

    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.run.seed, workers=True, verbose=False)
    model, image_cfg, spectrum_cfg = build_aligned(config)
    if init_heads is not None:
        from .aligned_heads import load_heads

        load_heads(model, init_heads)
    image_pre = PreprocessConfig.from_dict(image_cfg["preprocessing"])
    spectrum_pre = SpectrumPreprocessConfig.from_dict(spectrum_cfg["preprocessing"])
    if image_pre.mode == "rgb":
        raise InvalidDataError("CLIP alignment needs an image encoder trained on survey flux (bands with "
                               "spectra), not on 8-bit RGB cutouts", source=str(config.image_model),
                               field="preprocessing")
    data = Path(config.data)
    if not data.exists():
        raise InvalidDataError("no such file or folder", source=str(data))
    dataset = MMUDataset(data, modalities=("image", "spectrum"), indices=config.train_indices)
    bands = tuple(image_cfg["bands"])
    stored = tuple(dataset.survey.galaxy(int(dataset.indices[0])).image.bands)
    if stored != bands:
        raise InvalidDataError(f"the image model was trained on bands {list(bands)}, the survey has "
                               f"{list(stored)}", source=str(data), field="image_band")
    if config.image_augment is not None:
        side = image_pre.crop_size or image_pre.input_size or int(dataset[0]["image"].shape[-1])
        config.image_augment = dataclasses.replace(config.image_augment, crop_size=int(side))
    save_yaml_config(config, run_dir / "config.yaml")

    networks = CLIPNetworks(config, model, image_pre, spectrum_pre, bands)
    module = StageModule(networks, config.run)
    return fit_stage(module, dataset, config.run, run_dir, str(config.data),
                     lambda model_dir, extra: export_aligned_model(model, image_cfg, spectrum_cfg, model_dir, {
                         **extra, "image_model": str(config.image_model),
                         "spectrum_model": str(config.spectrum_model), "freeze_image": config.freeze_image,
                         "freeze_spectrum": config.freeze_spectrum,
                         "logit_scale": float(networks.loss.logit_scale.detach().exp())}))
