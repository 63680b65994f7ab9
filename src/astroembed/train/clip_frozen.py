"""CLIP alignment on frozen features: embed the training galaxies once, then train only the heads.

    from astroembed.train.clip_frozen import FrozenAlignConfig, align_frozen
    model_dir = align_frozen(FrozenAlignConfig(image_model=..., spectrum_model=..., data=..., out=...))

Why a second alignment path beside :mod:`astroembed.train.clip`: with both backbones frozen, every
step of end-to-end alignment spends nearly all its time re-running the two encoders on the same
galaxies to train two small MLPs. Here each training galaxy's spectrum is embedded once and its image
``image_views`` times (the unaugmented cutout plus light random views: rotations, flips, a small
shift), and the heads then train for hundreds of epochs on those cached features in seconds. On the
main job's CPU budget this buys far more alignment than end-to-end steps do (BENCHMARKS.md).

The result is the same ``model_type: "aligned"`` export as the end-to-end stage (both encoders
unchanged, both heads, both preprocessing configs), so ``astroembed.load(RUN/model)``, embedding
catalogues, indexes and ``search`` use it as they use any aligned model. There are no checkpoints:
the head training takes seconds, and rerunning with the model already exported does nothing.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ..augment.image import ImageAugmenter
from ..config import Config, save_yaml_config
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..files import atomic_write_text
from ..objectives.clip import CLIPLoss
from ..preprocess.image import PreprocessConfig, preprocess, standardize
from ..preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
from ..preprocess.stored import fill_padded_wavelengths
from ..models.clip_model import AlignedModel
from .clip import LightImageAugmentConfig, export_aligned_model, load_encoder
from .common import cosine_with_warmup


@dataclass
class FrozenAlignConfig(Config):
    """Everything a frozen-feature alignment run needs; loadable from YAML.

    ``image_augment`` draws the extra image views (``null``: only the unaugmented cutout, then
    ``image_views`` must be 1); ``crop_size`` is replaced by the image model's crop.
    """

    image_model: str = ""           # exported image encoder folder (RUN/model)
    spectrum_model: str = ""        # exported spectrum transformer folder
    data: str = ""                  # MMU survey with both images and spectra
    out: str = "runs/clip_frozen"
    embed_dim: int = 128            # shared space size
    projection_hidden: int = 512    # hidden width of both heads; 0 = linear heads
    image_views: int = 4            # cached image views per galaxy: the cutout itself + (views - 1) augmented
    epochs: int = 300
    batch_size: int = 256
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_epochs: int = 5
    validation_fraction: float = 0.1  # training galaxies held out to keep the heads of the best epoch (0: last)
    init_temperature: float = 0.07
    max_logit_scale: float = 100.0
    image_augment: LightImageAugmentConfig | None = field(default_factory=LightImageAugmentConfig)
    train_indices: list[int] | None = None
    embed_batch_size: int = 256
    device: str = "auto"            # "auto" (CUDA when present), "cpu", "cuda"
    seed: int = 0

    def __post_init__(self):
        for name in ("embed_dim", "image_views", "epochs", "batch_size", "embed_batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (a contrastive batch needs negatives), got {self.batch_size}")
        if self.image_augment is None and self.image_views != 1:
            raise ValueError(f"image_views={self.image_views} needs image_augment (augmented views); "
                             f"with image_augment: null use image_views: 1")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.learning_rate > 0 or not self.init_temperature > 0:
            raise ValueError("learning_rate and init_temperature must be > 0")


@torch.no_grad()
def cache_features(model, dataset: MMUDataset, image_pre: PreprocessConfig, spectrum_pre: SpectrumPreprocessConfig,
                   bands: tuple[str, ...], config: FrozenAlignConfig, device: torch.device
                   ) -> tuple[torch.Tensor, torch.Tensor]:
    """Frozen encoder features: images (views, N, D_image), view 0 unaugmented; spectra (N, D_spectrum)."""
    augmenter = ImageAugmenter(config.image_augment) if config.image_augment is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.embed_batch_size, shuffle=False, num_workers=0)
    images, spectra = [[] for _ in range(config.image_views)], []
    for batch in loader:
        flux, ivar, lam, mask = fill_padded_wavelengths(batch["spectrum_flux"], batch["spectrum_ivar"],
                                                        batch["spectrum_lambda"], batch["spectrum_mask"])
        prepared = prepare_batch(flux, ivar, mask, lam, spectrum_pre)
        spectra.append(model.spectrum_encoder({k: v.to(device) for k, v in prepared.items()}).float().cpu())
        cutouts = standardize(batch["image"].float(), image_pre)
        for view in range(config.image_views):
            x = cutouts
            if view > 0:
                image_ivar = batch["image_ivar"] if bool(batch["image_has_ivar"].all()) else None
                x = augmenter(cutouts, bands, ivar=image_ivar, generator=generator)
            x = preprocess(x, image_pre, bands).to(device)
            images[view].append(model.image_encoder(x).float().cpu())
    return torch.stack([torch.cat(v) for v in images]), torch.cat(spectra)


def train_heads(model, loss: CLIPLoss, image_features: torch.Tensor, spectrum_features: torch.Tensor,
                config: FrozenAlignConfig, device: torch.device,
                validation: tuple[torch.Tensor, torch.Tensor] | None = None) -> list[dict]:
    """Train both projection heads and the temperature on cached features; returns one log row per epoch.

    Each epoch shuffles the galaxies and gives every galaxy one of its image views at random; the last
    batch is dropped when short, so every step has ``batch_size`` negatives (the heads' BatchNorm too
    needs more than one row). With ``validation`` (unaugmented image and spectrum features of galaxies
    kept out of training), the heads and temperature of the epoch with the lowest validation CLIP loss
    are kept: on a few thousand galaxies, heads on 2,000-d features memorise the training pairs within
    a few hundred steps and held-out retrieval falls after its peak (BENCHMARKS.md).
    """
    n_views, n = image_features.shape[:2]
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    heads = [model.image_head, model.spectrum_head]
    params = [p for h in heads for p in h.parameters()] + list(loss.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = cosine_with_warmup(optimizer, config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    image_features, spectrum_features = image_features.to(device), spectrum_features.to(device)
    history, best = [], (math.inf, None)
    for epoch in range(config.epochs):
        for h in heads:
            h.train()
        order = torch.randperm(n, generator=generator)
        views = torch.randint(n_views, (n,), generator=generator)
        total = accuracy = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch:(step + 1) * batch]
            a = model.image_head(image_features[views[rows].to(device), rows.to(device)])
            b = model.spectrum_head(spectrum_features[rows.to(device)])
            out = loss(a, b, return_details=True)
            optimizer.zero_grad(set_to_none=True)
            out.loss.backward()
            optimizer.step()
            schedule.step()
            total += float(out.loss.detach())
            accuracy += float(out.accuracy)
        history.append({"epoch": epoch, "loss": total / steps_per_epoch, "train_accuracy": accuracy / steps_per_epoch,
                        "logit_scale": float(out.logit_scale)})
        for h in heads:
            h.eval()
        if validation is not None:
            with torch.no_grad():
                a, b = model.image_head(validation[0].to(device)), model.spectrum_head(validation[1].to(device))
                history[-1]["val_loss"] = val = float(loss(a, b))
            if val < best[0]:
                best = (val, [{k: v.clone() for k, v in m.state_dict().items()} for m in (*heads, loss)])
    if best[1] is not None:
        for module, state in zip((*heads, loss), best[1]):
            module.load_state_dict(state)
    return history


def _aligned_model(config: FrozenAlignConfig) -> tuple[AlignedModel, dict, dict]:
    """The image + spectrum aligned model (random heads) from the two exports, and their saved configs."""
    image_encoder, image_cfg = load_encoder(config.image_model, "image_encoder", "--image-model")
    spectrum_encoder, spectrum_cfg = load_encoder(config.spectrum_model, "spectrum_transformer", "--spectrum-model")
    model = AlignedModel(image_encoder, spectrum_encoder, config.embed_dim, config.projection_hidden,
                         image_config={k: image_cfg[k] for k in ("model_type", "model")},
                         spectrum_config={k: spectrum_cfg[k] for k in ("model_type", "model")})
    return model, image_cfg, spectrum_cfg


def align_frozen(config: FrozenAlignConfig) -> Path:
    """Align two exported encoders by training heads on their frozen features; returns ``RUN/model``."""
    run_dir = Path(config.out)
    model_dir = run_dir / "model"
    if (model_dir / "model.safetensors").exists():
        return model_dir
    data = Path(config.data)
    if not data.exists():
        raise InvalidDataError("no such file or folder", source=str(data))
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    from ..runtime import resolve_device

    device = resolve_device(config.device)
    model, image_cfg, spectrum_cfg = _aligned_model(config)
    image_pre = PreprocessConfig.from_dict(image_cfg["preprocessing"])
    spectrum_pre = SpectrumPreprocessConfig.from_dict(spectrum_cfg["preprocessing"])
    if image_pre.mode == "rgb":
        raise InvalidDataError("alignment needs an image encoder trained on survey flux (bands with spectra), "
                               "not on 8-bit RGB cutouts", source=str(config.image_model), field="preprocessing")
    dataset = MMUDataset(data, modalities=("image", "spectrum"), indices=config.train_indices)
    if len(dataset) < 2:
        raise InvalidDataError(f"{len(dataset)} galaxies: alignment needs at least 2", source=str(data))
    bands = tuple(image_cfg["bands"])
    stored = tuple(dataset.survey.galaxy(int(dataset.indices[0])).image.bands)
    if stored != bands:
        raise InvalidDataError(f"the image model was trained on bands {list(bands)}, the survey has "
                               f"{list(stored)}", source=str(data), field="image_band")
    if config.image_augment is not None:
        side = image_pre.crop_size or image_pre.input_size or int(dataset[0]["image"].shape[-1])
        config.image_augment.crop_size = int(side)
    save_yaml_config(config, run_dir / "config.yaml")

    model.to(device).eval()
    t0 = time.perf_counter()
    image_features, spectrum_features = cache_features(model, dataset, image_pre, spectrum_pre, bands, config, device)
    embed_seconds = time.perf_counter() - t0
    n_val = round(config.validation_fraction * len(dataset))
    validation = None
    if n_val >= 2 and len(dataset) - n_val >= 2:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))
        held, kept = order[:n_val], order[n_val:]
        validation = (image_features[0, held], spectrum_features[held])
        image_features, spectrum_features = image_features[:, kept], spectrum_features[kept]
    loss = CLIPLoss(init_temperature=config.init_temperature, max_logit_scale=config.max_logit_scale,
                    gather_distributed=False).to(device)
    history = train_heads(model, loss, image_features, spectrum_features, config, device, validation)
    train_seconds = time.perf_counter() - t0 - embed_seconds
    atomic_write_text(run_dir / "history.json", json.dumps(history))
    kept = min(history, key=lambda r: r.get("val_loss", math.inf)) if validation is not None else history[-1]
    n_train = image_features.shape[1]
    return export_aligned_model(model.cpu(), image_cfg, spectrum_cfg, model_dir, {
        "alignment": "frozen_features", "image_model": str(config.image_model),
        "spectrum_model": str(config.spectrum_model), "freeze_image": True, "freeze_spectrum": True,
        "data": str(config.data), "n_galaxies": len(dataset), "n_validation": len(dataset) - n_train,
        "image_views": config.image_views, "epochs": config.epochs, "kept_epoch": kept["epoch"],
        "global_step": (kept["epoch"] + 1) * max(1, n_train // min(config.batch_size, n_train)),
        "train_loss": kept["loss"], "val_loss": kept.get("val_loss"), "train_accuracy": kept["train_accuracy"],
        "logit_scale": float(loss.logit_scale.detach().exp()),
        "embed_seconds": round(embed_seconds, 2), "train_seconds": round(train_seconds, 2)})
