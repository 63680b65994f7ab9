"""Masked-modelling pretraining of the spectrum transformer (AstroCLIP's spectrum stage).

    astroembed pretrain spectrum --data PATH --out RUN [--config cfg.yaml] [--max-minutes M]

Batches are the spectra as stored (MMUDataset, any grid, -1 padding), resampled onto the model grid and
normalised by the same :func:`astroembed.preprocess.stored.prepare_stored_spectra` that embedding uses, so
the exported model sees its input exactly as in training. Masked modelling does not augment its input, so
that preparation gives the same arrays every epoch: when the prepared training set fits in
``prepared_cache_gib`` it is prepared once, before training (:class:`PreparedSpectra`), instead of in every
step (larger sets are prepared batch by batch in the step, on the training device). Contiguous chunks of
patches are hidden and the model predicts their normalised flux; the loss counts hidden pixels only, each
weighted by its inverse variance.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import torch
from torch import nn

from ..preprocess.spectrum import SpectrumPreprocessConfig, model_batch
from ..data.dataset import MMUDataset
from ..data.records import InvalidDataError
from ..preprocess.stored import prepare_stored_spectra
from ..models.io import save_model
from ..models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
from ..objectives.masked import masked_modelling_loss
from ..config import Config, save_yaml_config
from .common import RunConfig, fit_stage


@dataclass
class SpectrumModelConfig(SpectrumTransformerConfig):
    """The transformer of this stage: binned mean pooling over 16 wavelength ranges by default. Masked
    modelling trains the patch tokens only (the loss never reaches the CLS token, which would stay close
    to its random init), and a single mean over all patches loses where spectral features sit (see
    SpectrumTransformerConfig). More bins gave a better k-NN redshift on the built-in survey
    (``experiments/spectrum_ablation.py``; figures in README.md)."""

    pooling: str = "bins"
    n_bins: int = 16


@dataclass
class SpectrumPretrainConfig(Config):
    """Everything a spectrum pretraining run needs; loadable from YAML.

    ``model`` takes the transformer's width, depth, heads and pooling (default: binned means over 16
    wavelength ranges, :class:`SpectrumModelConfig`); its patching fields
    (``n_patches``, ``patch_size``, ``patch_stride``) are always set from ``preprocess``.
    """

    data: str = ""
    out: str = "runs/spectrum"
    preprocess: SpectrumPreprocessConfig = field(default_factory=SpectrumPreprocessConfig)
    model: SpectrumModelConfig = field(default_factory=SpectrumModelConfig)
    mask_fraction: float = 0.3      # fraction of patches hidden per spectrum
    chunk_len: int = 12             # patches per hidden chunk (wider than a galaxy line: see masked_modelling_loss)
    train_indices: list[int] | None = None
    # Prepare the training spectra once and keep them in memory when they take at most this many GiB
    # (float32 flux and ivar, a bool mask: 9 bytes per model pixel; 0 turns the cache off).
    prepared_cache_gib: float = 2.0
    run: RunConfig = field(default_factory=RunConfig)

    def __post_init__(self):
        if not self.prepared_cache_gib >= 0:
            raise ValueError(f"prepared_cache_gib must be >= 0, got {self.prepared_cache_gib}")
        if not 0.0 < self.mask_fraction < 1.0:
            raise ValueError(f"mask_fraction must be in (0, 1), got {self.mask_fraction}")
        if isinstance(self.chunk_len, bool) or not isinstance(self.chunk_len, int) or self.chunk_len < 1:
            raise ValueError(f"chunk_len must be a positive int, got {self.chunk_len!r}")
        self.sync_model()

    def sync_model(self) -> None:
        """Make the transformer's patching match the preprocessing (the positional embeddings depend on it)."""
        pre = self.preprocess
        self.model = dataclasses.replace(self.model, n_patches=pre.n_patches, patch_size=pre.patch_size,
                                         patch_stride=pre.patch_stride)


def stored_spectra(batch: Mapping[str, Any]) -> tuple:
    """(flux, ivar, wavelength, mask) of a collated MMUDataset batch."""
    return batch["spectrum_flux"], batch["spectrum_ivar"], batch["spectrum_lambda"], batch["spectrum_mask"]


class SpectrumMaskedModelling(nn.Module):
    """The transformer and its objective, free of Lightning so a bare loop can drive it too."""

    def __init__(self, config: SpectrumPretrainConfig):
        super().__init__()
        self.config = config
        self.model = SpectrumTransformer(config.model)

    def inputs(self, batch: Mapping[str, Any], device: torch.device | str | None = None) -> dict[str, torch.Tensor]:
        """Stored spectra (or a :class:`PreparedSpectra` batch) -> normalised, patched model input on ``device``."""
        if PreparedSpectra.FLUX in batch:
            return model_batch(*(batch[key].to(device) for key in PreparedSpectra.KEYS), self.config.preprocess)
        return prepare_stored_spectra(*stored_spectra(batch), config=self.config.preprocess, device=device)

    def training_loss(self, inputs: Mapping[str, torch.Tensor]) -> torch.Tensor:
        return masked_modelling_loss(self.model, inputs, self.config.mask_fraction, self.config.chunk_len)

    def step(self, batch: Mapping[str, Any], device=None) -> tuple[torch.Tensor, int, dict]:
        inputs = self.inputs(batch, device)
        return self.training_loss(inputs), len(inputs["flux"]), {}


class PreparedSpectra(torch.utils.data.Dataset):
    """Stored spectra resampled onto the model grid and normalised once, kept in memory.

    Items are the rows of the model input before patching (``prepared_flux``, ``prepared_ivar``,
    ``prepared_valid``, ``log10_scale``); :meth:`SpectrumMaskedModelling.inputs` patches a batch of them.
    Preparation runs in float64 and is the same arithmetic as in the step (tested), so a model trains on
    identical inputs either way.
    """

    FLUX = "prepared_flux"
    KEYS = (FLUX, "prepared_ivar", "prepared_valid", "log10_scale")

    def __init__(self, dataset, preprocess: SpectrumPreprocessConfig, batch_size: int = 256):
        parts = []
        for start in range(0, len(dataset), batch_size):
            # Collated by hand: iterating a DataLoader draws from torch's global generator, which would
            # shift the seeded run's shuffling and masks away from an uncached run's.
            items = [dataset[i] for i in range(start, min(start + batch_size, len(dataset)))]
            batch = torch.utils.data.default_collate(items)
            prepared = prepare_stored_spectra(*stored_spectra(batch), config=preprocess)
            parts.append((prepared["flux"], prepared["ivar"], prepared["valid"].bool(), prepared["log10_scale"]))
        self.arrays = [torch.cat(column) for column in zip(*parts)]

    @staticmethod
    def nbytes(n_spectra: int, preprocess: SpectrumPreprocessConfig) -> int:
        return n_spectra * preprocess.n_padded * 9

    def __len__(self) -> int:
        return len(self.arrays[0])

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return {key: array[i] for key, array in zip(self.KEYS, self.arrays)}


def export_spectrum_encoder(model: SpectrumTransformer, preprocess: SpectrumPreprocessConfig, directory: Path,
                            extra: dict | None = None) -> Path:
    """Save the transformer with the preprocessing ``astroembed.load(...).embed_spectrum`` applies."""
    return save_model(model, {
        "model_type": "spectrum_transformer",
        "modality": "spectrum",
        "model": model.config.to_dict(),
        "preprocessing": preprocess.to_dict(),
        "embed_dim": int(model.embed_dim),
        "training": {"method": "masked_modelling", **(extra or {})},
    }, directory)


def spectrum_dataset(path, train_indices=None) -> MMUDataset:
    path = Path(path)
    if not path.exists():
        raise InvalidDataError("no such file or folder", source=str(path))
    return MMUDataset(path, modalities=("spectrum",), indices=train_indices)


SCALING_SPECTRA = 4096  # training spectra that set the exported model's output standardisation


def pretrain_spectrum(config: SpectrumPretrainConfig) -> Path:
    """Run (or resume) spectrum pretraining; returns the exported model folder ``RUN/model``."""
    import lightning.pytorch as pl

    from .lightning_module import StageModule

    config.sync_model()
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    pl.seed_everything(config.run.seed, workers=True, verbose=False)
    dataset = spectrum_dataset(config.data, config.train_indices)
    save_yaml_config(config, run_dir / "config.yaml")
    if PreparedSpectra.nbytes(len(dataset), config.preprocess) <= config.prepared_cache_gib * 2**30:
        dataset = PreparedSpectra(dataset, config.preprocess)

    networks = SpectrumMaskedModelling(config)
    module = StageModule(networks, config.run)

    def export(model_dir: Path, extra: dict) -> Path:
        fit_output_scaling(networks, dataset, config.run.batch_size)
        return export_spectrum_encoder(networks.model, config.preprocess, model_dir,
                                       {**extra, "mask_fraction": config.mask_fraction, "chunk_len": config.chunk_len,
                                        "output_scaling_spectra": min(len(dataset), SCALING_SPECTRA)})

    return fit_stage(module, dataset, config.run, run_dir, str(config.data), export)


def fit_output_scaling(networks: SpectrumMaskedModelling, dataset: MMUDataset, batch_size: int) -> None:
    """Set the transformer's output standardisation from (up to SCALING_SPECTRA of) the training
    spectra, on the device the model trained on (see SpectrumTransformer.fit_output_scaling)."""
    subset = torch.utils.data.Subset(dataset, range(min(len(dataset), SCALING_SPECTRA)))
    loader = torch.utils.data.DataLoader(subset, batch_size=batch_size, shuffle=False, num_workers=0)
    device = next(networks.parameters()).device
    networks.model.fit_output_scaling(networks.inputs(batch, device) for batch in loader)
