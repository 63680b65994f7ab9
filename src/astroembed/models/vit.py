"""Vision Transformer image encoder (Dosovitskiy et al. 2021) in the DINO ViT-S/8 configuration.

Written here because timm cannot be installed in this environment. The layout and names follow DINO's
``vision_transformer.py`` (``patch_embed.proj``, ``cls_token``, ``pos_embed``, ``blocks.i.attn.qkv`` ...), so
a DINO ViT-S/8 checkpoint's backbone weights load into :func:`vit_s8` for 3 bands.

- Patches: a conv with kernel = stride = ``patch_size``; a learned CLS token; learned positional embeddings
  for the ``image_size`` grid, resampled bicubically when an image of another size comes in (so a model
  pretrained at 64 px embeds 96-px cutouts, as DINO does at other resolutions).
- Pre-LayerNorm blocks (LN -> attention -> residual, LN -> MLP -> residual), attention through
  ``torch.nn.functional.scaled_dot_product_attention`` (fused kernels where the device has them),
  optional stochastic depth (``drop_path_rate``, linearly increasing with depth).
- Init: truncated normal (std 0.02) for the tokens, positional embeddings and Linear weights; zero biases;
  LayerNorm gamma=1, beta=0; the patch conv keeps PyTorch's default init (as in DINO).
- Output: the CLS token after the final LayerNorm, ``embed_dim`` wide.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from astroembed.models._checks import check_images
from astroembed.models.registry import IMAGE_ARCHITECTURES

__all__ = ["VisionTransformer", "vit_s8", "interpolate_pos_embed"]


class DropPath(nn.Module):
    """Stochastic depth: drop the whole residual branch for a random subset of samples while training."""

    def __init__(self, p: float = 0.0):
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.p == 0.0 or not self.training:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
        return x * mask / keep


class Attention(nn.Module):
    """Multi-head self-attention."""

    def __init__(self, dim: int, num_heads: int, qkv_bias: bool = True):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"embed_dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        out = attend(qkv[0], qkv[1], qkv[2])  # (B, heads, N, head_dim)
        return self.proj(out.transpose(1, 2).reshape(B, N, C))


def attend(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Scaled dot-product attention; in fp32 under CPU bf16 autocast, as autocast gives it elsewhere.

    On CPUs, PyTorch's bf16 flash-attention kernel (its backward above all) was slower than the fp32 one
    (torch 2.13, AMX CPU, ``bench/bench_attention_optimizer.py``: a spectrum-transformer training step ran
    0.97x as fast as fp32 with attention in bf16 and 1.43x with attention in fp32; the linear layers, where
    AMX pays, stay bf16).
    The attention itself is a small share of the FLOPs at these sequence lengths, so fp32 costs little.
    GPUs keep the bf16 kernels.
    """
    if q.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        with torch.autocast("cpu", enabled=False):
            return F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    return F.scaled_dot_product_attention(q, k, v)


class Mlp(nn.Module):
    def __init__(self, dim: int, hidden_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden_dim)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class Block(nn.Module):
    """Pre-LN transformer block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float, qkv_bias: bool, drop_path: float):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim, eps=1e-6)
        self.attn = Attention(dim, num_heads, qkv_bias)
        self.drop_path = DropPath(drop_path)
        self.norm2 = nn.LayerNorm(dim, eps=1e-6)
        self.mlp = Mlp(dim, int(dim * mlp_ratio))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        return x + self.drop_path(self.mlp(self.norm2(x)))


class PatchEmbed(nn.Module):
    def __init__(self, in_channels: int, patch_size: int, dim: int):
        super().__init__()
        self.proj = nn.Conv2d(in_channels, dim, kernel_size=patch_size, stride=patch_size)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.proj(x).flatten(2).transpose(1, 2)  # (N, n_patches, dim), row-major patch order


def interpolate_pos_embed(pos_embed: torch.Tensor, grid: tuple[int, int], new_grid: tuple[int, int]) -> torch.Tensor:
    """Resample a (1, 1 + gh*gw, D) positional embedding (CLS first) to ``new_grid`` patches, bicubically.

    The CLS position is kept as is; the patch positions are treated as a D-channel ``gh x gw`` image.
    """
    if tuple(new_grid) == tuple(grid):
        return pos_embed
    cls_pos, patch_pos = pos_embed[:, :1], pos_embed[:, 1:]
    dim = pos_embed.shape[-1]
    patch_pos = patch_pos.reshape(1, grid[0], grid[1], dim).permute(0, 3, 1, 2)
    # bicubic is not implemented for half precision on every device: resample in float32.
    patch_pos = F.interpolate(patch_pos.float(), size=tuple(new_grid), mode="bicubic", align_corners=False)
    patch_pos = patch_pos.to(pos_embed.dtype).permute(0, 2, 3, 1).reshape(1, new_grid[0] * new_grid[1], dim)
    return torch.cat([cls_pos, patch_pos], dim=1)


class VisionTransformer(nn.Module):
    """ViT trunk returning the CLS token: (N, in_channels, H, W) -> (N, embed_dim).

    Parameters
    ----------
    in_channels
        number of image bands.
    image_size
        side of the square image the positional embeddings are learned for; other sizes
        (multiples of ``patch_size``, square or not) are handled by interpolation.
    patch_size
        patch side in pixels.
    embed_dim, depth, num_heads, mlp_ratio, qkv_bias
        transformer width, number of blocks, attention
        heads, MLP hidden width / embed_dim, bias on the qkv projection.
    drop_path_rate
        stochastic-depth rate of the last block (0 for the first, linear in between).
    """

    def __init__(self, in_channels: int = 3, image_size: int = 224, patch_size: int = 8, embed_dim: int = 384,
                 depth: int = 12, num_heads: int = 6, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 drop_path_rate: float = 0.0):
        super().__init__()
        if in_channels < 1:
            raise ValueError(f"in_channels must be >= 1, got {in_channels}")
        if image_size % patch_size:
            raise ValueError(f"image_size {image_size} is not a multiple of patch_size {patch_size}")
        self.in_channels, self.patch_size, self.embed_dim = in_channels, patch_size, embed_dim
        self.grid = (image_size // patch_size, image_size // patch_size)
        self.patch_embed = PatchEmbed(in_channels, patch_size, embed_dim)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, 1 + self.grid[0] * self.grid[1], embed_dim))
        rates = torch.linspace(0, drop_path_rate, depth).tolist() if depth > 0 else []
        self.blocks = nn.ModuleList([Block(embed_dim, num_heads, mlp_ratio, qkv_bias, r) for r in rates])
        self.norm = nn.LayerNorm(embed_dim, eps=1e-6)

        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """All tokens after the final LayerNorm, (N, 1 + n_patches, embed_dim); CLS first."""
        check_images(x, self.in_channels)
        h, w = x.shape[-2:]
        if h % self.patch_size or w % self.patch_size:
            raise ValueError(f"image size {h}x{w} is not a multiple of patch_size {self.patch_size}")
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(x.shape[0], -1, -1), tokens], dim=1)
        new_grid = (h // self.patch_size, w // self.patch_size)
        tokens = tokens + interpolate_pos_embed(self.pos_embed, self.grid, new_grid)
        for block in self.blocks:
            tokens = block(tokens)
        return self.norm(tokens)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.forward_features(x)[:, 0]


def vit_s8(in_channels: int = 3, image_size: int = 224, drop_path_rate: float = 0.0, **overrides) -> VisionTransformer:
    """DINO's ViT-S/8: patch 8, embed_dim 384, depth 12, 6 heads, MLP ratio 4 (21.67M parameters at 224 px).

    ``overrides`` (``embed_dim``, ``depth``, ``num_heads``, ``mlp_ratio``, ``patch_size``, ``qkv_bias``) give a
    smaller variant, e.g. ``vit_s8(5, 64, embed_dim=64, depth=2, num_heads=2)`` trains on a CPU.
    """
    kwargs = dict(patch_size=8, embed_dim=384, depth=12, num_heads=6, mlp_ratio=4.0, qkv_bias=True)
    unknown = set(overrides) - set(kwargs)
    if unknown:
        raise TypeError(f"unknown ViT option(s) {sorted(unknown)}; allowed: {sorted(kwargs)}")
    kwargs.update(overrides)
    return VisionTransformer(in_channels=in_channels, image_size=image_size, drop_path_rate=drop_path_rate, **kwargs)


_VIT_SIZE_OPTIONS = ("patch_size", "embed_dim", "depth", "num_heads", "mlp_ratio")


def _build_vit_s8(cfg) -> VisionTransformer:
    overrides = {name: getattr(cfg, name) for name in _VIT_SIZE_OPTIONS if getattr(cfg, name) is not None}
    return vit_s8(cfg.in_channels, cfg.image_size, drop_path_rate=cfg.drop_path_rate, **overrides)


IMAGE_ARCHITECTURES.register("vit_s8", _build_vit_s8, options=_VIT_SIZE_OPTIONS + ("drop_path_rate",))
