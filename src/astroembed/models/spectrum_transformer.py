"""Spectrum transformer: overlapping flux patches -> one embedding, plus a masked-modelling head.

The AstroCLIP spectrum encoder (Parker et al. 2024) in a form that reads top to bottom:

- Input: the batch of :func:`astroembed.preprocess.spectrum.prepare_batch`. Each patch token
  is ``Linear([normalised flux (patch_size), per-pixel validity (patch_size)])``; the validity channel
  tells the model which zeros are data and which are missing pixels.
- Sequence: ``[CLS, scale, patch_1 ... patch_P]``; the scale token is ``Linear(log10 scale)``, so the
  amplitude removed by normalisation is still seen. Learned positional embeddings (one per patch:
  a patch index is a fixed wavelength range on the model grid).
- Pre-LayerNorm transformer blocks (the ViT blocks of :mod:`astroembed.models.vit`), a final
  LayerNorm, then pooling: ``"cls"`` (the CLS token), ``"mean"`` (mean over patches holding at
  least one valid pixel) or ``"bins"`` (such means over equal wavelength ranges, concatenated). The
  pooled vector is standardised with the training spectra's mean and scale
  (:meth:`SpectrumTransformer.fit_output_scaling`).
- Masked modelling (:meth:`SpectrumTransformer.forward_masked`): chosen patches are replaced by a
  learned mask token before the encoder and a linear head predicts the normalised flux of every
  patch. Patches overlap (stride < size), so the hidden patches' pixels are also blanked (flux 0,
  validity 0) inside the visible patches that share them; otherwise the model could copy half of each
  hidden patch from its neighbour.
- Init: truncated normal (std 0.02) for Linear weights and tokens; zero biases (ViT / AstroCLIP).
  The patches' positional embeddings start from the fixed 1-D sine-cosine code of MAE (He et al.
  2022) and are then learned (``pos_init="sincos"``, the default): neighbouring patches start with
  similar codes, so attention can find a hidden chunk's neighbours from the first step. From a random
  init (``pos_init="random"``) the model must first discover which patches are adjacent, which a short
  CPU run barely does (see SpectrumTransformerConfig).

Sizes: the defaults (dim 128, depth 4, heads 4; ~0.8M parameters) train on a CPU; AstroCLIP's spectrum
encoder is ``dim=768, depth=12, num_heads=12`` on the 0.8 A DESI grid.

Example::

    pre = SpectrumPreprocessConfig()
    model = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(pre))
    batch = prepare_batch(flux, ivar, mask, wavelength, pre)
    emb = model(batch)                                # (N, 128)
    loss = masked_modelling_loss(model, batch)        # pre-training (astroembed.objectives.masked)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import torch
from torch import nn

from astroembed.preprocess.spectrum import (
    SpectrumPreprocessConfig,
    interpolate_gaps,
    patches_to_pixels,
    patchify,
)
from astroembed.config import Config
from astroembed.models.registry import MODEL_TYPES
from astroembed.models.vit import Block

__all__ = ["SpectrumTransformerConfig", "SpectrumTransformer", "build_spectrum_transformer", "POOLINGS"]

POOLINGS = ("cls", "mean", "bins")
POS_INITS = ("sincos", "random")
DECODER_BASELINES = ("none", "interpolation")


@dataclass
class SpectrumTransformerConfig(Config):
    """Architecture of the spectrum transformer. Plain data: ``to_dict``/``from_dict`` round-trip via JSON.

    Attributes
    ----------
    n_patches, patch_size, patch_stride
        must match the preprocessing
        (:meth:`for_preprocess` copies them); the positional embeddings are learned per patch.
    dim, depth, num_heads, mlp_ratio
        transformer width, blocks, heads, MLP hidden / dim.
    pooling
        ``"cls"``, ``"mean"``, or ``"bins"``: the mean over each of ``n_bins`` equal wavelength
        ranges, concatenated (embed_dim = n_bins * dim). A single mean over the whole spectrum blurs
        *where* features sit, which is what redshift is; binned means keep it coarsely (k-NN
        redshift on the built-in survey, mean against binned pooling: README.md).
    n_bins
        number of wavelength ranges for ``"bins"`` pooling.
    drop_path_rate
        stochastic depth of the last block (0 for the first, linear in between).
    pos_init
        initial positional embeddings of the patches, ``"sincos"`` or ``"random"``
        (truncated normal, std 0.02). Both are learned; only the start differs.
    decoder_baseline
        what the masked-modelling head adds its output to: ``"none"`` (the head
        predicts the flux itself) or ``"interpolation"`` (the head predicts the departure from a
        straight line across each hidden gap, drawn through the nearest visible pixels). With
        the baseline, the head starts at "the continuum is locally straight" and its training
        signal is only what a straight line misses (lines, breaks, curvature), which is where
        redshift and stellar populations live. Only pretraining uses it; embeddings do not.
    """

    n_patches: int = SpectrumPreprocessConfig().n_patches
    patch_size: int = 20
    patch_stride: int = 10
    dim: int = 128
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 4.0
    pooling: str = "cls"
    n_bins: int = 8
    drop_path_rate: float = 0.0
    pos_init: str = "sincos"
    decoder_baseline: str = "none"

    def __post_init__(self) -> None:
        for name in ("n_patches", "patch_size", "patch_stride", "dim", "depth", "num_heads"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        if self.dim % self.num_heads:
            raise ValueError(f"dim {self.dim} is not divisible by num_heads {self.num_heads}")
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, int) or not 1 <= self.n_bins <= self.n_patches:
            raise ValueError(f"n_bins must be an int in [1, n_patches], got {self.n_bins!r}")
        if self.pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {self.pooling!r}")
        if self.decoder_baseline not in DECODER_BASELINES:
            raise ValueError(f"decoder_baseline must be one of {DECODER_BASELINES}, got {self.decoder_baseline!r}")
        if self.pos_init not in POS_INITS:
            raise ValueError(f"pos_init must be one of {POS_INITS}, got {self.pos_init!r}")
        if not self.mlp_ratio > 0:
            raise ValueError(f"mlp_ratio must be > 0, got {self.mlp_ratio}")
        if not 0.0 <= float(self.drop_path_rate) < 1.0:
            raise ValueError(f"drop_path_rate must be in [0, 1), got {self.drop_path_rate!r}")

    @classmethod
    def for_preprocess(cls, pre: SpectrumPreprocessConfig, **kwargs: Any) -> "SpectrumTransformerConfig":
        """A config whose patching matches ``pre``; ``kwargs`` set the other fields."""
        return cls(n_patches=pre.n_patches, patch_size=pre.patch_size, patch_stride=pre.patch_stride, **kwargs)


class SpectrumTransformer(nn.Module):
    """Patched spectra -> (N, embed_dim) embeddings; ``forward_masked`` for masked-modelling pre-training."""

    def __init__(self, config: SpectrumTransformerConfig | None = None):
        super().__init__()
        self.config = cfg = config or SpectrumTransformerConfig()
        self.embed_dim = cfg.dim * cfg.n_bins if cfg.pooling == "bins" else cfg.dim
        self.patch_embed = nn.Linear(2 * cfg.patch_size, cfg.dim)
        self.scale_embed = nn.Linear(1, cfg.dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.mask_token = nn.Parameter(torch.zeros(1, 1, cfg.dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 2 + cfg.n_patches, cfg.dim))  # CLS, scale, patches
        rates = [cfg.drop_path_rate * i / max(cfg.depth - 1, 1) for i in range(cfg.depth)]  # 0 -> rate
        self.blocks = nn.ModuleList([Block(cfg.dim, cfg.num_heads, cfg.mlp_ratio, True, r) for r in rates])
        self.norm = nn.LayerNorm(cfg.dim, eps=1e-6)
        self.head = nn.Linear(cfg.dim, cfg.patch_size)  # masked modelling: normalised flux of each patch
        # Output standardisation, identity until fit_output_scaling sets it from the training spectra.
        self.register_buffer("embed_mean", torch.zeros(self.embed_dim))
        self.register_buffer("embed_scale", torch.ones(self.embed_dim))

        for p in (self.cls_token, self.mask_token, self.pos_embed):
            nn.init.trunc_normal_(p, std=0.02)
        if cfg.pos_init == "sincos":
            with torch.no_grad():
                self.pos_embed[0, 2:] = sincos_positions(cfg.n_patches, cfg.dim)
        self.apply(self._init_weights)
        if cfg.decoder_baseline == "interpolation":
            # Start exactly at the straight line across each gap (a head of std-0.02 weights adds noise of
            # ~0.2 normalised flux that the first hundreds of steps spend removing): from the first step
            # the head learns only what the line misses, and masked reconstruction starts at interpolation.
            nn.init.zeros_(self.head.weight)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def _check(self, batch: Mapping[str, torch.Tensor]) -> None:
        for key in ("patch_flux", "patch_valid", "log10_scale"):
            if key not in batch:
                raise KeyError(f"batch has no {key!r}; build it with astroembed.preprocess.spectrum."
                               f"prepare_batch (keys given: {sorted(batch)})")
        shape = tuple(batch["patch_flux"].shape)
        want = (self.config.n_patches, self.config.patch_size)
        if len(shape) != 3 or shape[1:] != want:
            raise ValueError(f"patch_flux has shape {shape}, the model expects (N, {want[0]}, {want[1]}): "
                             f"preprocess with the grid and patching the model was built for")

    def _encode(self, patch_flux: torch.Tensor, patch_valid: torch.Tensor, log10_scale: torch.Tensor,
                patch_mask: torch.Tensor | None = None) -> torch.Tensor:
        """All tokens after the final LayerNorm, (N, 2 + n_patches, dim): CLS, scale, patches."""
        # Zeroing flux where validity is 0 here too (prepare_batch already did) guarantees that a
        # hand-built batch with garbage (even NaN) in invalid pixels cannot reach the weights.
        valid = patch_valid > 0
        flux = torch.where(valid, patch_flux, torch.zeros((), dtype=patch_flux.dtype, device=patch_flux.device))
        tokens = self.patch_embed(torch.cat([flux, valid.to(flux.dtype)], dim=-1))
        if patch_mask is not None:
            tokens = torch.where(patch_mask[..., None], self.mask_token.to(tokens.dtype), tokens)
        n = tokens.shape[0]
        scale = self.scale_embed(log10_scale.reshape(n, 1, 1).to(tokens.dtype))
        x = torch.cat([self.cls_token.expand(n, -1, -1), scale, tokens], dim=1) + self.pos_embed
        for block in self.blocks:
            x = block(x)
        return self.norm(x)

    def forward(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Embeddings (N, embed_dim) of a batch from ``prepare_batch``."""
        self._check(batch)
        pooled = self._pooled(batch)
        return (pooled - self.embed_mean.to(pooled.dtype)) / self.embed_scale.to(pooled.dtype)

    def _pooled(self, batch: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """Pooled tokens before the output standardisation, (N, embed_dim)."""
        x = self._encode(batch["patch_flux"], batch["patch_valid"], batch["log10_scale"])
        if self.config.pooling == "cls":
            return x[:, 0]
        has_data = (batch["patch_valid"] > 0).any(-1).to(x.dtype)  # (N, P)
        tokens = x[:, 2:]
        if self.config.pooling == "bins":  # masked mean within each wavelength range, concatenated
            n, p, d = tokens.shape
            edges = torch.linspace(0, p, self.config.n_bins + 1).round().long().tolist()
            return torch.cat([_masked_mean(tokens[:, a:b], has_data[:, a:b]) for a, b in zip(edges, edges[1:])], 1)
        return _masked_mean(tokens, has_data)

    @torch.no_grad()
    def fit_output_scaling(self, batches: Iterable[Mapping[str, torch.Tensor]]) -> None:
        """Standardise the embeddings: afterwards ``forward`` returns (pooled - mean) / std, with the
        per-dimension mean and standard deviation of the pooled outputs of ``batches`` (the training
        spectra; the masked-modelling stage calls this before export).

        Why: every pooled token carries what all spectra share (the positional code, the mean
        spectrum), so raw embeddings crowd into a narrow cone and cosine similarity, which search
        and k-NN use, mostly measures that shared part. On the built-in survey this raised the k-NN
        redshift R^2 (README.md; ``experiments/spectrum_ablation.py --model RUN/model``). A dimension that
        never varies keeps scale 1. Fixed buffers, not trained: alignment fine-tunes the weights
        behind them.
        """
        was_training = self.training
        self.eval()
        total = total_sq = None
        count = 0
        for batch in batches:
            pooled = self._pooled(batch).double()
            total = pooled.sum(0) if total is None else total + pooled.sum(0)
            total_sq = (pooled ** 2).sum(0) if total_sq is None else total_sq + (pooled ** 2).sum(0)
            count += len(pooled)
        if count < 2:
            self.train(was_training)
            raise ValueError(f"fit_output_scaling needs at least 2 spectra, got {count}")
        mean = total / count
        std = ((total_sq / count - mean ** 2).clamp(min=0) * count / (count - 1)).sqrt()
        self.embed_mean.copy_(mean.to(self.embed_mean))
        self.embed_scale.copy_(torch.where(std > 1e-6, std, torch.ones_like(std)).to(self.embed_scale))
        self.train(was_training)

    def forward_masked(self, batch: Mapping[str, torch.Tensor], patch_mask: torch.Tensor) -> torch.Tensor:
        """Predicted normalised flux of every patch, (N, n_patches, patch_size), with ``patch_mask`` hidden.

        Parameters
        ----------
        batch
            from ``prepare_batch``; needs the pixel-level ``flux`` and ``valid`` too.
        patch_mask
            (N, n_patches) bool, True = hidden (replaced by the mask token; its pixels are
            also blanked in overlapping visible patches).
        """
        self._check(batch)
        if patch_mask.shape != batch["patch_flux"].shape[:2] or patch_mask.dtype != torch.bool:
            raise ValueError(f"patch_mask must be a bool tensor of shape {tuple(batch['patch_flux'].shape[:2])}, "
                             f"got {patch_mask.dtype} {tuple(patch_mask.shape)}")
        size, stride = self.config.patch_size, self.config.patch_stride
        if batch["flux"].shape[-1] != size + stride * (self.config.n_patches - 1):
            raise ValueError(f"batch['flux'] has {batch['flux'].shape[-1]} pixels, the model's patching needs "
                             f"{size + stride * (self.config.n_patches - 1)}: build the batch with prepare_batch")
        hidden = patches_to_pixels(patch_mask, size, stride, batch["flux"].shape[-1])  # (N, n_padded)
        zero = torch.zeros((), dtype=batch["flux"].dtype, device=batch["flux"].device)
        flux = patchify(torch.where(hidden, zero, batch["flux"]), size, stride)
        valid = patchify(torch.where(hidden, zero, batch["valid"]), size, stride)
        x = self._encode(flux, valid, batch["log10_scale"], patch_mask)
        pred = self.head(x[:, 2:])
        if self.config.decoder_baseline == "interpolation":
            usable = (batch["valid"] > 0) & ~hidden
            pred = pred + patchify(interpolate_gaps(batch["flux"], usable), size, stride).to(pred.dtype)
        return pred


def build_spectrum_transformer(config: SpectrumTransformerConfig | Mapping[str, Any]) -> SpectrumTransformer:
    """Build the (randomly initialised) model a config or its ``to_dict()`` describes."""
    cfg = config if isinstance(config, SpectrumTransformerConfig) else SpectrumTransformerConfig.from_dict(config)
    return SpectrumTransformer(cfg)


def sincos_positions(n: int, dim: int) -> torch.Tensor:
    """(n, dim) fixed 1-D sine-cosine position code (Vaswani et al. 2017, as MAE's
    ``get_1d_sincos_pos_embed_from_grid``): half the channels sin(pos * w_k), half cos(pos * w_k), with
    frequencies w_k = 10000^(-k / (dim/2)); an odd ``dim`` leaves the last channel 0."""
    half = dim // 2
    omega = 1.0 / 10000 ** (torch.arange(half, dtype=torch.float64) / max(half, 1))
    angle = torch.arange(n, dtype=torch.float64)[:, None] * omega[None, :]
    code = torch.zeros(n, dim, dtype=torch.float64)
    code[:, :half] = torch.sin(angle)
    code[:, half:2 * half] = torch.cos(angle)
    return code.float()


def _masked_mean(tokens: torch.Tensor, has_data: torch.Tensor) -> torch.Tensor:
    """Mean of the tokens that hold data; rows with none fall back to the plain mean (no division by 0)."""
    weights = torch.where(has_data.sum(-1, keepdim=True) > 0, has_data, torch.ones_like(has_data))
    return (tokens * weights[..., None]).sum(1) / weights.sum(-1, keepdim=True)


MODEL_TYPES.register("spectrum_transformer", build_spectrum_transformer)
