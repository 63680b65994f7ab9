"""ViT-S/8: parameter count by formula, shapes, positional-embedding interpolation, attention, drop path."""

import math

import pytest
import torch
import torch.nn.functional as F

from astroembed.models.vit import Attention, VisionTransformer, attend, interpolate_pos_embed, vit_s8

TINY = dict(embed_dim=32, depth=2, num_heads=2)


def vit_param_formula(in_channels, image_size, patch, dim, depth, mlp_ratio=4.0):
    """Parameter count of a ViT from its hyper-parameters (Dosovitskiy et al. / DINO layout, qkv bias)."""
    hidden = int(dim * mlp_ratio)
    patch_embed = in_channels * patch * patch * dim + dim
    tokens = dim + (1 + (image_size // patch) ** 2) * dim  # cls token + positional embeddings
    block = (2 * dim                      # norm1
             + dim * 3 * dim + 3 * dim    # qkv
             + dim * dim + dim            # attention output projection
             + 2 * dim                    # norm2
             + dim * hidden + hidden      # fc1
             + hidden * dim + dim)        # fc2
    return patch_embed + tokens + depth * block + 2 * dim  # + final norm


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_vit_s8_parameter_count_at_224():
    expected = vit_param_formula(3, 224, 8, 384, 12)
    assert expected == pytest.approx(21.7e6, rel=0.01)
    assert n_params(vit_s8(3, 224)) == expected


def test_tiny_variant_parameter_count():
    assert n_params(vit_s8(5, 64, **TINY)) == vit_param_formula(5, 64, 8, 32, 2)


def test_vit_s8_forward_small_input():
    m = vit_s8(3, 32).eval()
    with torch.no_grad():
        out = m(torch.randn(1, 3, 32, 32))
    assert m.embed_dim == 384 and out.shape == (1, 384)


@pytest.mark.parametrize("in_channels", [1, 3, 5])
@pytest.mark.parametrize("size", [64, 96])
def test_output_shape_trained_at_64(in_channels, size):
    m = vit_s8(in_channels, image_size=64, **TINY).eval()
    with torch.no_grad():
        out = m(torch.randn(2, in_channels, size, size))
    assert out.shape == (2, 32) and torch.isfinite(out).all()


def test_output_is_final_normed_cls_token():
    m = vit_s8(3, 64, **TINY).eval()
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        tokens = m.forward_features(x)
        out = m(x)
    assert tokens.shape == (2, 1 + 64, 32)
    torch.testing.assert_close(out, tokens[:, 0])
    # LayerNorm output with gamma=1, beta=0 at init: zero mean, unit variance per token
    torch.testing.assert_close(out.mean(-1), torch.zeros(2), atol=1e-5, rtol=0)


def test_pos_embed_interpolation_properties():
    pos = torch.randn(1, 1 + 8 * 8, 16)
    assert interpolate_pos_embed(pos, (8, 8), (8, 8)) is pos  # native size: untouched
    up = interpolate_pos_embed(pos, (8, 8), (12, 12))
    assert up.shape == (1, 1 + 144, 16)
    torch.testing.assert_close(up[:, 0], pos[:, 0])  # CLS position is never resampled
    const = torch.full((1, 1 + 64, 4), 0.7)
    torch.testing.assert_close(interpolate_pos_embed(const, (8, 8), (12, 6)),
                               torch.full((1, 1 + 72, 4), 0.7))  # bicubic weights sum to one
    # Patch order is row-major: a grid varying only along rows stays constant along each row.
    rows = torch.arange(8.0).repeat_interleave(8).reshape(1, 64, 1)
    rows_up = interpolate_pos_embed(torch.cat([torch.zeros(1, 1, 1), rows], 1), (8, 8), (12, 12))
    grid = rows_up[0, 1:, 0].reshape(12, 12)
    torch.testing.assert_close(grid, grid[:, :1].expand(12, 12))
    assert torch.all(grid[1:, 0] >= grid[:-1, 0])


def test_model_at_96_uses_interpolated_positions():
    # A model trained at 64 px, run on 96-px images, equals a 96-px model whose positional embeddings are the
    # bicubic resample of the 64-px ones (independently computed here with F.interpolate).
    torch.manual_seed(0)
    m64 = vit_s8(3, 64, **TINY).eval()
    m96 = vit_s8(3, 96, **TINY).eval()
    sd = m64.state_dict()
    grid = sd["pos_embed"][:, 1:].reshape(1, 8, 8, 32).permute(0, 3, 1, 2)
    grid96 = F.interpolate(grid, size=(12, 12), mode="bicubic", align_corners=False)
    sd["pos_embed"] = torch.cat([sd["pos_embed"][:, :1], grid96.permute(0, 2, 3, 1).reshape(1, 144, 32)], 1)
    m96.load_state_dict(sd)
    x = torch.randn(2, 3, 96, 96)
    with torch.no_grad():
        torch.testing.assert_close(m64(x), m96(x))
        assert m64(torch.randn(1, 3, 64, 96)).shape == (1, 32)  # non-square works too


def test_attention_matches_naive_softmax():
    torch.manual_seed(1)
    attn = Attention(dim=12, num_heads=3).double()
    x = torch.randn(2, 5, 12, dtype=torch.float64)
    qkv = attn.qkv(x).reshape(2, 5, 3, 3, 4)  # (B, N, q/k/v, heads, head_dim)
    q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(4), dim=-1)
    expected = attn.proj((weights @ v).transpose(1, 2).reshape(2, 5, 12))
    torch.testing.assert_close(attn(x), expected)


def test_attention_under_cpu_bf16_autocast_is_computed_in_fp32():
    # bf16 q, k, v (what autocast's linear layers hand over): the attention itself must be the fp32 result
    # of those inputs (float64 reference), not a bf16 one (~3 significant digits, off by ~1e-3 here).
    torch.manual_seed(2)
    q, k, v = (torch.randn(2, 3, 40, 8).to(torch.bfloat16) for _ in range(3))
    qd, kd, vd = (t.double() for t in (q, k, v))
    reference = torch.softmax(qd @ kd.transpose(-1, -2) / math.sqrt(8), dim=-1) @ vd
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = attend(q, k, v)
    assert out.dtype == torch.float32
    torch.testing.assert_close(out.double(), reference, rtol=1e-5, atol=1e-6)
    bf16 = F.scaled_dot_product_attention(q, k, v).double()  # what the bf16 kernel gives: visibly coarser
    assert (bf16 - reference).abs().max() > 1e-3
    with torch.autocast("cpu", dtype=torch.bfloat16):  # and a whole block still trains: finite gradients
        x = torch.randn(2, 40, 16, requires_grad=True)
        Attention(16, 2)(x).float().sum().backward()
    assert torch.isfinite(x.grad).all()


def test_init_statistics():
    m = vit_s8(3, 224)
    w = m.blocks[0].mlp.fc1.weight
    assert w.std().item() == pytest.approx(0.02, rel=0.03)  # trunc_normal(0.02) cut at +-2: std ~0.0199
    assert w.abs().max() <= 2.0
    assert torch.all(m.blocks[0].attn.qkv.bias == 0) and torch.all(m.norm.weight == 1)


def test_drop_path_only_while_training():
    torch.manual_seed(0)
    m = vit_s8(3, 32, drop_path_rate=0.5, **TINY)
    x = torch.randn(8, 3, 32, 32)
    m.train()
    assert not torch.allclose(m(x), m(x))
    m.eval()
    torch.testing.assert_close(m(x), m(x))


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="multiple of patch_size"):
        VisionTransformer(image_size=60, patch_size=8)
    m = vit_s8(3, 64, **TINY)
    with pytest.raises(ValueError, match="60x64 is not a multiple of patch_size 8"):
        m(torch.randn(1, 3, 60, 64))
    with pytest.raises(TypeError, match="unknown ViT option"):
        vit_s8(3, 64, width=3)
    with pytest.raises(ValueError, match="divisible"):
        vit_s8(3, 64, embed_dim=30, num_heads=4)
