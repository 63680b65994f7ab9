"""CLIP alignment on frozen features: embed the training galaxies once, then train only the heads.

    from astroembed.train.clip_frozen import FrozenAlignConfig, align_frozen
    model_dir = align_frozen(FrozenAlignConfig(image_model=..., spectrum_model=..., data=..., out=...))

Why a second alignment path beside :mod:`astroembed.train.clip`: with both backbones frozen, every
step of end-to-end alignment spends nearly all its time re-running the two encoders on the same
galaxies to train two small MLPs. Here each training galaxy's spectrum is embedded once and its image
``image_views`` times (the unaugmented cutout plus light random views: rotations, flips, a small
shift), and the heads then train for hundreds of epochs on those cached features in seconds. On the
main job's CPU budget this buys far more alignment than end-to-end steps do (BENCHMARKS.md).

Photometry is an optional third modality. ``photometry: true`` trains a new photometry encoder with the
heads: its input, the arcsinh magnitudes of :mod:`astroembed.preprocess.photometry` (fitted on the
training galaxies), is what gets cached, and the encoder (a transformer over 5-10 band tokens) is as
cheap to train as a head. ``photometry_model`` instead takes an exported photometry encoder, frozen, its
features cached like the image's. ``photometry_views > 1`` caches extra views of the photometry with
:mod:`astroembed.augment.photometry` (noise redrawn from the ivar, ...). Every pair of modalities has its
own CLIP loss and temperature (:func:`astroembed.train.clip.pair_losses`), masked to the galaxies that
have both, and each training stage keeps the epoch with the lowest summed validation loss of its pairs.
By default (``photometry_training: after``) the image and spectrum heads train first, exactly as without
photometry, and photometry then aligns to their fixed projections: training the three pairs at once
(``joint``) let the still-learning photometry encoder choose a late epoch at which the image and spectrum
heads had memorised their pairs, and cost image <-> spectrum recall (BENCHMARKS.md).

The result is the same ``model_type: "aligned"`` export as the end-to-end stage (the pretrained encoders
unchanged, every head, every preprocessing config), so ``astroembed.load(RUN/model)``, embedding
catalogues, indexes and ``search`` use it as they use any aligned model. There are no checkpoints:
the head training takes seconds, and rerunning with the model already exported does nothing.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from ..augment.image import ImageAugmenter
from ..augment.photometry import PhotometryAugmentConfig
from ..config import Config, save_yaml_config
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..files import atomic_write_text
from ..models.photometry_encoder import PhotometryEncoderConfig
from ..preprocess.image import PreprocessConfig, preprocess, standardize
from ..preprocess.photometry import PhotometryPreprocessConfig
from ..preprocess.spectrum import SpectrumPreprocessConfig
from .clip import LightImageAugmentConfig, pair_losses, pairwise_clip
from .clip_build import build_aligned, configured_modalities, export_aligned
from .clip_data import AlignmentInputs, fit_training_photometry, survey_photometry_bands
from .common import cosine_with_warmup

# A cached modality: a (views, N, D) feature tensor, or for an encoder trained here its input, a dict of
# (views, N, ...) tensors (the photometry encoder's {"values", "mask"}).
Cached = torch.Tensor | dict[str, torch.Tensor]


@dataclass
class FrozenAlignConfig(Config):
    """Everything a frozen-feature alignment run needs; loadable from YAML.

    ``image_augment`` draws the extra image views (``null``: only the unaugmented cutout, then
    ``image_views`` must be 1); ``crop_size`` is replaced by the image model's crop.
    ``photometry_augment`` draws the extra photometry views the same way (``photometry_views``).
    """

    image_model: str = ""           # exported image encoder folder (RUN/model)
    spectrum_model: str = ""        # exported spectrum transformer folder
    photometry: bool = False        # also align a photometry encoder trained from scratch with the heads
    photometry_model: str = ""      # ... or an exported photometry encoder, frozen
    data: str = ""                  # MMU survey with images and spectra (and photometry)
    out: str = "runs/clip_frozen"
    # append measured fluxes to the frozen features (models/measured_fluxes.py): the cutout's aperture fluxes
    # in circles of aperture_radii pixels, the spectrum's mean flux in spectrum_flux_bins wavelength ranges
    measured_fluxes: bool = False
    aperture_radii: tuple[float, ...] = (4.0, 8.0, 16.0, 32.0)
    spectrum_flux_bins: int = 32
    measured_colours: bool = True   # also the differences of adjacent bands / bins (models/measured_fluxes.py)
    # with measured fluxes: dropout rate of the encoders' learned features while the heads train, so the heads
    # cannot memorise the training pairs by them (the few measured fluxes cannot be memorised)
    learned_feature_dropout: float = 0.0
    embed_dim: int = 128            # shared space size
    projection_hidden: int = 512    # hidden width of every head; 0 = linear heads
    image_views: int = 4            # cached image views per galaxy: the cutout itself + (views - 1) augmented
    photometry_views: int = 1       # cached photometry views: the catalogue values + (views - 1) augmented
    photometry_encoder: PhotometryEncoderConfig = field(default_factory=PhotometryEncoderConfig)
    photometry_augment: PhotometryAugmentConfig | None = None
    # "after": the image and spectrum heads train first (as without photometry) and photometry then aligns
    # to their fixed projections; "joint": every pair at once (measured: costs image <-> spectrum recall)
    photometry_training: str = "after"
    photometry_epochs: int | None = None  # epochs of the "after" photometry stage (null: epochs)
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
        self.aperture_radii = tuple(float(r) for r in self.aperture_radii)
        for name in ("embed_dim", "image_views", "photometry_views", "epochs", "batch_size", "embed_batch_size",
                     "photometry_epochs"):
            value = getattr(self, name)
            if name == "photometry_epochs" and value is None:
                continue
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.batch_size < 2:
            raise ValueError(f"batch_size must be >= 2 (a contrastive batch needs negatives), got {self.batch_size}")
        for what, augment in (("image", self.image_augment), ("photometry", self.photometry_augment)):
            views = getattr(self, f"{what}_views")
            if augment is None and views != 1:
                raise ValueError(f"{what}_views={views} needs {what}_augment (augmented views); "
                                 f"with {what}_augment: null use {what}_views: 1")
        if self.photometry_training not in ("after", "joint"):
            raise ValueError(f"photometry_training must be 'after' or 'joint', got {self.photometry_training!r}")
        if self.photometry and self.photometry_model:
            raise ValueError("give photometry (a new encoder) or photometry_model (an exported one), not both")
        if not 0.0 <= self.learned_feature_dropout < 1.0:
            raise ValueError(f"learned_feature_dropout must be in [0, 1), got {self.learned_feature_dropout}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if not self.learning_rate > 0 or not self.init_temperature > 0:
            raise ValueError("learning_rate and init_temperature must be > 0")

    @property
    def modalities(self) -> tuple[str, ...]:
        return configured_modalities(self)


@torch.no_grad()
def cache_features(model, dataset: MMUDataset, inputs: AlignmentInputs, config: FrozenAlignConfig,
                   device: torch.device, trainable: tuple[str, ...] = ()
                   ) -> tuple[dict[str, Cached], dict[str, torch.Tensor]]:
    """Each modality's cache (views first; view 0 unaugmented) and which galaxies have it ((N,) bool).

    Images: (image_views, N, D_image) frozen features; spectra: (1, N, D_spectrum); photometry:
    (photometry_views, N, D) frozen features, or for an encoder in ``trainable`` its input (a dict).
    """
    augmenter = ImageAugmenter(config.image_augment) if config.image_augment is not None else None
    generator = torch.Generator().manual_seed(config.seed)
    # Photometry views draw from their own stream: the image views are the same with or without them.
    photometry_generator = torch.Generator().manual_seed(config.seed + 1)
    loader = torch.utils.data.DataLoader(dataset, batch_size=config.embed_batch_size, shuffle=False, num_workers=0)
    views = {"image": config.image_views, "spectrum": 1, "photometry": config.photometry_views}
    parts = {m: [[] for _ in range(views[m])] for m in model.modalities}
    present = {m: [] for m in model.modalities}
    for batch in loader:
        for m in model.modalities:
            present[m].append(inputs.present(m, batch))
        inputs.eval()  # the stored spectra as they are (a galaxy without one gets a fully masked placeholder)
        prepared = {k: v.to(device) for k, v in inputs.spectra(batch).items()}
        parts["spectrum"][0].append(model.spectrum_encoder(prepared).float().cpu())
        cutouts = standardize(batch["image"].float(), inputs.image_preprocess)
        for view in range(config.image_views):
            x = cutouts
            if view > 0:
                image_ivar = batch["image_ivar"] if bool(batch["image_has_ivar"].all()) else None
                x = augmenter(cutouts, inputs.bands, ivar=image_ivar, generator=generator)
            x = preprocess(x, inputs.image_preprocess, inputs.bands).to(device)
            parts["image"][view].append(model.image_encoder(x).float().cpu())
        if "photometry" in model.modalities:
            for view in range(config.photometry_views):
                inputs.train(view > 0)  # view 0: the catalogue values as measured
                x = inputs.photometry(batch, generator=photometry_generator)
                parts["photometry"][view].append(x if "photometry" in trainable else
                                                 model.photometry_encoder({k: v.to(device) for k, v in x.items()})
                                                 .float().cpu())
    cache = {}
    for m, per_view in parts.items():
        if isinstance(per_view[0][0], dict):
            cache[m] = {k: torch.stack([torch.cat([part[k] for part in v]) for v in per_view]) for k in per_view[0][0]}
        else:
            cache[m] = torch.stack([torch.cat(v) for v in per_view])
    return cache, {m: torch.cat(v) for m, v in present.items()}


def _map(cached: Cached, fn) -> Cached:
    """``fn`` applied to a cache's tensor, or to each tensor of an encoder-input cache."""
    return {k: fn(v) for k, v in cached.items()} if isinstance(cached, dict) else fn(cached)


def _take(cached: Cached, views: torch.Tensor | int, rows: torch.Tensor) -> Cached:
    """Rows ``rows`` of a cache, row i in view ``views[i]`` (or every row in one view)."""
    return _map(cached, lambda v: v[views, rows])


def _n_views(cached: Cached) -> int:
    return (next(iter(cached.values())) if isinstance(cached, dict) else cached).shape[0]


def _to(cached: Cached, device) -> Cached:
    return _map(cached, lambda v: v.to(device))


def _project(model, modality: str, x: Cached, trainable: tuple[str, ...], fixed: tuple[str, ...] = (),
             learned_dropout: float = 0.0) -> torch.Tensor:
    # A frozen modality's cache holds its encoder's features; a trainable one's holds the encoder's input;
    # a fixed one's holds its head's projections already (see _project_fixed).
    if modality in fixed:
        return x
    head = getattr(model, f"{modality}_head")
    if modality in trainable:
        x = getattr(model, f"{modality}_encoder")(x)
    n_measured = getattr(getattr(model, f"{modality}_encoder", None), "n_measured", 0)
    if learned_dropout > 0 and n_measured and head.training:
        # Dropout after the head's standardisation (head[0]), so its running statistics are those of the
        # features it will see at inference; only the learned features drop, the measured fluxes stay.
        x = head[0](x)
        learned = nn.functional.dropout(x[:, :-n_measured], learned_dropout, training=True)
        return head[1](torch.cat([learned, x[:, -n_measured:]], dim=1)).float()
    return head(x).float()


@torch.no_grad()
def _project_fixed(model, cache: dict[str, Cached], fixed: tuple[str, ...]) -> dict[str, Cached]:
    """The cache with each ``fixed`` modality's features replaced by its (eval-mode) head's projections."""
    for m in fixed:
        getattr(model, f"{m}_head").eval()
    return {m: torch.stack([getattr(model, f"{m}_head")(v).float() for v in c]) if m in fixed else c
            for m, c in cache.items()}


def train_heads(model, losses: nn.ModuleDict, cache: dict[str, Cached], present: dict[str, torch.Tensor],
                config: FrozenAlignConfig, device: torch.device,
                validation: tuple[dict[str, Cached], dict[str, torch.Tensor]] | None = None,
                trainable: tuple[str, ...] = (), fixed: tuple[str, ...] = ()) -> list[dict]:
    """Train the projection heads, the encoders named in ``trainable`` and the temperatures on cached
    features; returns one log row per epoch. The heads of the modalities in ``fixed`` are not trained:
    their projections are computed once and the others align to them (``losses`` then holds only the
    pairs that involve a trained head).

    ``cache`` maps each modality to its (views, N, ...) cache (:func:`cache_features`), ``present`` to
    the (N,) galaxies that have it; ``losses`` is :func:`~astroembed.train.clip.pair_losses` of them,
    and the training loss is the mean over the pairs. Each epoch shuffles the galaxies and gives every
    galaxy one of each modality's views at random; the last batch is dropped when short, so every step
    has ``batch_size`` negatives (the heads' BatchNorm too needs more than one row). With ``validation``
    (the unaugmented caches, view 0, and presence of galaxies kept out of training), the weights of the
    epoch with the lowest summed validation loss are kept: on a few thousand galaxies, heads on 2,000-d
    features memorise the training pairs within a few hundred steps and held-out retrieval falls after
    its peak (BENCHMARKS.md).
    """
    modalities = tuple(cache)
    n = len(next(iter(present.values())))
    batch = min(config.batch_size, n)
    steps_per_epoch = max(1, n // batch)
    trained = [getattr(model, f"{m}_head") for m in modalities if m not in fixed]
    trained += [getattr(model, f"{m}_encoder") for m in trainable]
    params = [p for module in trained for p in module.parameters()] + list(losses.parameters())
    optimizer = torch.optim.AdamW(params, lr=config.learning_rate, weight_decay=config.weight_decay)
    schedule = cosine_with_warmup(optimizer, config.warmup_epochs * steps_per_epoch, config.epochs * steps_per_epoch)
    generator = torch.Generator().manual_seed(config.seed)
    cache = _project_fixed(model, {m: _to(c, device) for m, c in cache.items()}, fixed)
    if validation is not None:
        validation = (_project_fixed(model, {m: _to(c, device) for m, c in validation[0].items()}, fixed),
                      validation[1])
    present = {m: p.to(device) for m, p in present.items()}
    history, best = [], (math.inf, None)
    for epoch in range(config.epochs):
        for module in trained:
            module.train()
        order = torch.randperm(n, generator=generator)
        # A modality with one view draws nothing: image + spectrum runs draw as they did before photometry.
        views = {m: (torch.randint(_n_views(c), (n,), generator=generator) if _n_views(c) > 1
                     else torch.zeros(n, dtype=torch.long)).to(device) for m, c in cache.items()}
        total = accuracy = 0.0
        for step in range(steps_per_epoch):
            rows = order[step * batch:(step + 1) * batch].to(device)
            z = {m: _project(model, m, _take(cache[m], views[m][rows], rows), trainable, fixed,
                             config.learned_feature_dropout) for m in modalities}
            outs = pairwise_clip(losses, z, {m: present[m][rows] for m in modalities})
            loss = torch.stack([o.loss for o in outs.values()]).mean()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            total += float(loss.detach())
            accuracy += float(torch.stack([o.accuracy for o in outs.values()]).nanmean())
        first = next(iter(outs.values()))
        history.append({"epoch": epoch, "loss": total / steps_per_epoch, "train_accuracy": accuracy / steps_per_epoch,
                        "logit_scale": float(first.logit_scale)})
        if len(outs) > 1:
            history[-1].update({f"loss_{name}": float(o.loss.detach()) for name, o in outs.items()})
        for module in trained:
            module.eval()
        if validation is not None:
            val = _validation_loss(model, losses, *validation, trainable, device, fixed)
            history[-1].update({f"val_loss_{name}": v for name, v in val.items()} if len(val) > 1 else {})
            history[-1]["val_loss"] = total_val = sum(val.values())
            if total_val < best[0]:
                best = (total_val, [{k: v.clone() for k, v in module.state_dict().items()}
                                    for module in (*trained, losses)])
    if best[1] is not None:
        for module, state in zip((*trained, losses), best[1]):
            module.load_state_dict(state)
    return history


@torch.no_grad()
def _validation_loss(model, losses: nn.ModuleDict, cache: dict[str, Cached], present: dict[str, torch.Tensor],
                     trainable: tuple[str, ...], device, fixed: tuple[str, ...] = ()) -> dict[str, float]:
    """Each pair's CLIP loss on the held-out galaxies' unaugmented caches (view 0)."""
    rows = torch.arange(len(next(iter(present.values()))), device=device)
    z = {m: _project(model, m, _take(_to(c, device), 0, rows), trainable, fixed) for m, c in cache.items()}
    outs = pairwise_clip(losses, z, {m: p.to(device) for m, p in present.items()})
    return {name: float(o.loss) for name, o in outs.items()}


def _split(cache: dict[str, Cached], present: dict[str, torch.Tensor], rows: torch.Tensor, views: bool = True):
    """The cache and presence of ``rows`` (every view, or only view 0 when ``views`` is False)."""
    kept = slice(None) if views else slice(0, 1)
    return {m: _map(c, lambda v: v[kept, rows]) for m, c in cache.items()}, {m: p[rows] for m, p in present.items()}


def _alignment_inputs(config: FrozenAlignConfig, configs: dict, dataset: MMUDataset,
                      photometry_bands: tuple[str, ...]) -> AlignmentInputs:
    """The encoders' input preparation, checked against the survey (image bands, flux-calibrated cutouts)."""
    image_cfg, data = configs["image"], str(config.data)
    image_pre = PreprocessConfig.from_dict(image_cfg["preprocessing"])
    if image_pre.mode == "rgb":
        raise InvalidDataError("alignment needs an image encoder trained on survey flux (bands with spectra), "
                               "not on 8-bit RGB cutouts", source=str(config.image_model), field="preprocessing")
    bands = tuple(image_cfg["bands"])
    stored = tuple(dataset.survey.galaxy(int(dataset.indices[0])).image.bands)
    if stored != bands:
        raise InvalidDataError(f"the image model was trained on bands {list(bands)}, the survey has "
                               f"{list(stored)}", source=data, field="image_band")
    if config.image_augment is not None:
        side = image_pre.crop_size or image_pre.input_size or int(dataset[0]["image"].shape[-1])
        config.image_augment.crop_size = int(side)
    photometry = configs.get("photometry")
    return AlignmentInputs(
        image=image_pre, bands=bands,
        spectrum=SpectrumPreprocessConfig.from_dict(configs["spectrum"]["preprocessing"]),
        photometry=PhotometryPreprocessConfig.from_dict(photometry["preprocessing"]) if photometry else None,
        survey_photometry_bands=photometry_bands, photometry_augment=config.photometry_augment)


def _train_stages(model, losses: nn.ModuleDict, cache: dict[str, Cached], present: dict[str, torch.Tensor],
                  config: FrozenAlignConfig, device, validation, trainable: tuple[str, ...]) -> list[dict]:
    """Every head (and a new photometry encoder) trained as ``photometry_training`` says; the history
    rows carry their ``stage``: ``"joint"`` (all pairs at once), or ``"image_spectrum"`` then
    ``"photometry"`` (the image and spectrum heads first, exactly as without photometry, then photometry
    aligned to their fixed projections)."""
    if "photometry" not in cache or config.photometry_training == "joint":
        history = train_heads(model, losses, cache, present, config, device, validation, trainable)
        return [{**row, "stage": "joint" if "photometry" in cache else "image_spectrum"} for row in history]
    def pick(d, names):
        return {m: d[m] for m in names}

    first, pairs = ("image", "spectrum"), [name for name in losses if name != "image_spectrum"]
    history = train_heads(model, nn.ModuleDict({"image_spectrum": losses["image_spectrum"]}), pick(cache, first),
                          pick(present, first), config, device,
                          None if validation is None else (pick(validation[0], first), pick(validation[1], first)))
    second = train_heads(model, nn.ModuleDict({name: losses[name] for name in pairs}), cache, present,
                         dataclasses.replace(config, epochs=config.photometry_epochs or config.epochs), device,
                         validation, trainable, fixed=first)
    return [{**row, "stage": "image_spectrum"} for row in history] + [{**row, "stage": "photometry"} for row in second]


def align_frozen(config: FrozenAlignConfig) -> Path:
    """Align exported encoders by training heads on their frozen features (and a new photometry encoder
    on its cached input); returns ``RUN/model``."""
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
    modalities = config.modalities
    if modalities[:2] != ("image", "spectrum"):
        raise ValueError("frozen alignment needs image_model and spectrum_model (photometry is the optional third)")
    opened: dict = {}

    def open_data():  # the survey and its photometry bands, read once the exported encoders have loaded
        if not opened:
            dataset = MMUDataset(data, modalities=modalities, indices=config.train_indices)
            if len(dataset) < 2:
                raise InvalidDataError(f"{len(dataset)} galaxies: alignment needs at least 2", source=str(data))
            opened.update(dataset=dataset, bands=survey_photometry_bands(dataset.survey, dataset.indices, str(data))
                          if "photometry" in modalities else ())
        return opened["dataset"], opened["bands"]

    model, configs = build_aligned(config, (lambda: fit_training_photometry(*open_data())) if config.photometry
                                   else None)
    dataset, photometry_bands = open_data()
    inputs = _alignment_inputs(config, configs, dataset, photometry_bands)
    save_yaml_config(config, run_dir / "config.yaml")
    trainable = ("photometry",) if config.photometry else ()

    model.to(device).eval()
    t0 = time.perf_counter()
    cache, present = cache_features(model, dataset, inputs, config, device, trainable)
    embed_seconds = time.perf_counter() - t0
    n_val = round(config.validation_fraction * len(dataset))
    validation = None
    if n_val >= 2 and len(dataset) - n_val >= 2:
        order = torch.randperm(len(dataset), generator=torch.Generator().manual_seed(config.seed))
        validation = _split(cache, present, order[:n_val], views=False)
        cache, present = _split(cache, present, order[n_val:])
    losses = pair_losses(modalities, config.init_temperature, config.max_logit_scale,
                         gather_distributed=False).to(device)
    history = _train_stages(model, losses, cache, present, config, device, validation, trainable)
    train_seconds = time.perf_counter() - t0 - embed_seconds
    atomic_write_text(run_dir / "history.json", json.dumps(history))
    kept = {}  # the row of the epoch each stage kept: the lowest validation loss, else its last
    for stage in dict.fromkeys(row["stage"] for row in history):
        rows = [row for row in history if row["stage"] == stage]
        kept[stage] = min(rows, key=lambda row: row["val_loss"]) if validation is not None else rows[-1]
    photometry_kept = kept.get("photometry", {}).get("epoch")
    kept = kept.get("image_spectrum") or kept["joint"]
    n_train = len(present["image"])
    scales = {name: float(loss.logit_scale.detach().exp()) for name, loss in losses.items()}
    pretrained = tuple(m for m in modalities if m not in trainable)
    return export_aligned(model.cpu(), configs, model_dir, {
        "alignment": "frozen_features", **{f"{m}_model": str(getattr(config, f"{m}_model")) for m in pretrained},
        **{f"freeze_{m}": True for m in pretrained}, "photometry_from_scratch": bool(config.photometry),
        "data": str(config.data), "n_galaxies": len(dataset), "n_validation": len(dataset) - n_train,
        "image_views": config.image_views, "photometry_views": config.photometry_views if config.photometry or
        config.photometry_model else None, "photometry_training": config.photometry_training if
        "photometry" in modalities else None, "photometry_kept_epoch": photometry_kept,
        "epochs": config.epochs, "kept_epoch": kept["epoch"],
        "global_step": (kept["epoch"] + 1) * max(1, n_train // min(config.batch_size, n_train)),
        "train_loss": kept["loss"], "val_loss": kept.get("val_loss"), "train_accuracy": kept["train_accuracy"],
        "logit_scale": next(iter(scales.values())), "logit_scales": scales,
        "embed_seconds": round(embed_seconds, 2), "train_seconds": round(train_seconds, 2)})
