"""Embedding precision: bf16 autocast gives the fp32 embeddings (cosine >= 0.99 per object) as float32,
a forced precision is honoured, and a model trained in bf16-mixed is exported with float32 weights."""

import numpy as np
import pytest
import torch
from safetensors import safe_open

import astroembed.inference as inference
from astroembed.embed.catalog import EmbedConfig, embed_catalog
from astroembed.embed.store import read_embeddings
from astroembed.train.image import pretrain_image
from tests.train.test_image_pretraining import tiny_config


@pytest.fixture(scope="module")
def bf16_trained(tmp_path_factory):
    """A tiny survey and a small CNN trained 6 steps in bf16 mixed precision on it."""
    from astroembed.data.mmu import write_survey
    from tests.conftest import make_blob_galaxies

    tmp = tmp_path_factory.mktemp("bf16")
    galaxies = make_blob_galaxies(n=32)
    write_survey(galaxies, tmp / "survey", "blobs")
    data = tmp / "survey" / "blobs" / "default"
    torch.set_num_threads(1)
    model_dir = pretrain_image(tiny_config(data, tmp / "run", **{"run.max_steps": 6, "run.precision": "bf16-mixed",
                                                                 "run.device": "cpu"}))
    return data, galaxies, model_dir


def cosine_per_row(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def test_a_model_trained_in_bf16_mixed_is_exported_in_float32(bf16_trained):
    _, _, model_dir = bf16_trained
    with safe_open(str(model_dir / "model.safetensors"), framework="pt") as f:
        dtypes = {name: f.get_slice(name).get_dtype() for name in f.keys()}
    floating = {name: d for name, d in dtypes.items() if not name.endswith("num_batches_tracked")}  # int64 counters
    assert floating and set(floating.values()) == {"F32"}, dtypes


def test_bf16_embeddings_agree_with_fp32_per_object(bf16_trained):
    _, galaxies, model_dir = bf16_trained
    flux = np.stack([g.image.flux for g in galaxies])
    fp32 = inference.load(model_dir, precision="32-true")
    bf16 = inference.load(model_dir, precision="bf16-mixed")
    assert (fp32.precision, bf16.precision) == ("32-true", "bf16-mixed")
    # bf16 convolutions run channels-last (oneDNN's layout for them); fp32 keeps the stored layout
    conv = [n for n, p in bf16.encoder.named_parameters() if p.ndim == 4][0]
    assert dict(bf16.encoder.named_parameters())[conv].is_contiguous(memory_format=torch.channels_last)
    assert dict(fp32.encoder.named_parameters())[conv].is_contiguous()
    a, b = fp32.embed(flux), bf16.embed(flux)
    assert a.dtype == b.dtype == np.float32 and a.shape == b.shape == (32, fp32.embed_dim)
    assert not np.array_equal(a, b)  # bf16 really ran: its rounding shows in the low bits
    assert cosine_per_row(a, b).min() >= 0.99
    # the fp32 path is the plain forward pass of the exported encoder
    with torch.no_grad():
        expected = fp32.encoder(fp32.prepare(flux)).numpy()
    np.testing.assert_allclose(a, expected, rtol=1e-5, atol=1e-6)


def test_catalogue_precision_option_reaches_the_forward_pass(bf16_trained, tmp_path):
    data, _, model_dir = bf16_trained
    vectors = {}
    for precision in ("32-true", "bf16-mixed"):
        out = embed_catalog(EmbedConfig(model=str(model_dir), data=str(data), out=str(tmp_path / precision),
                                        device="cpu", precision=precision), progress=False)
        vectors[precision] = read_embeddings(out, "image")[3]
    assert cosine_per_row(vectors["32-true"], vectors["bf16-mixed"]).min() >= 0.99
    assert not np.array_equal(vectors["32-true"], vectors["bf16-mixed"])


def test_unknown_embedding_precision_is_refused_by_name(bf16_trained):
    _, _, model_dir = bf16_trained
    with pytest.raises(ValueError, match="'16-mixed'.*auto, 32-true or bf16-mixed"):
        inference.load(model_dir, precision="16-mixed")
