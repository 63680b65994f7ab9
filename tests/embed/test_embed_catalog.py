"""Single-process catalogue embedding: values equal the model applied directly, every object once, metadata,
resuming (finished parts untouched), a SIGKILLed run resumed to the same bytes, model mismatch, spectra."""

import json
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

import astroembed
from astroembed.data.healpix import healpix_index
from astroembed.data.mmu import write_survey
from astroembed.data.records import Galaxy, InvalidDataError, Photometry, Spectrum
from astroembed.embed import EmbedConfig, embed_catalog, read_embeddings, read_metadata
from astroembed.embed.catalog import embed_tile, resolve_modality, run_metadata
from astroembed.embed.plan import plan_tiles
from astroembed.inference import load
from astroembed.models.io import content_hash


def parts(out: Path) -> list[Path]:
    return sorted(out.glob("healpix_*/part-0.parquet"))


LS_SCALES = {"g": 6.0, "r": 3.4, "z": 2.2}  # the Legacy Surveys viewer's per-band scales, softening 20


def independent_image_forward(model_dir: Path, flux: np.ndarray) -> np.ndarray:
    """The saved network applied by hand: weights from the safetensors file into a freshly built encoder,
    the documented input (centre crop, then arcsinh(20 s_b flux) / sqrt(20) per band) written out in
    numpy. Nothing of astroembed.inference or the preprocessing module is used, so a fault there shows."""
    import torch
    from safetensors.torch import load_file

    from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder

    config = json.loads((model_dir / "config.json").read_text())
    encoder = build_image_encoder(ImageEncoderConfig.from_dict(config["model"]))
    encoder.load_state_dict(load_file(model_dir / "model.safetensors"))
    crop = config["preprocessing"]["crop_size"]
    top = (flux.shape[-1] - crop) // 2
    scales = np.array([LS_SCALES[b] for b in config["bands"]])[None, :, None, None]
    x = np.arcsinh(20.0 * scales * flux[..., top:top + crop, top:top + crop].astype(np.float64)) / np.sqrt(20.0)
    with torch.no_grad():
        return encoder.eval()(torch.from_numpy(x.astype(np.float32))).numpy()


def test_embeddings_equal_the_model_applied_directly(embed_inputs, reference_run):
    data, galaxies, model, _ = embed_inputs
    ids, ra, dec, vectors = read_embeddings(reference_run, "image")

    with_image = sorted((g for g in galaxies if g.image is not None), key=lambda g: g.object_id)
    assert ids.tolist() == [g.object_id for g in with_image]  # every object with an image, once, sorted
    embedder = load(model, device="cpu", precision="32-true")  # the exact fp32 reference
    expected = independent_image_forward(model, np.stack([g.image.flux for g in with_image]))
    assert vectors.dtype == np.float32 and vectors.shape == (len(with_image), embedder.embed_dim)
    # Batches differ (16 per tile here, all at once there), so allow float32 round-off only.
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(ra, [g.ra for g in with_image])
    np.testing.assert_array_equal(dec, [g.dec for g in with_image])

    # One part per input tile, with its objects only and the documented schema and metadata.
    tiles = sorted(data.glob("healpix=*"))
    # Tile folders healpix=<N> of the input become healpix_<N> (not hive-style: see test_catalog_readers.py).
    assert [p.parent.name for p in parts(reference_run)] == [t.name.replace("=", "_") for t in tiles]
    n_skipped = 0
    for part in parts(reference_run):
        table = pq.read_table(part)
        assert table.schema.field("embedding_image").type == pa.list_(pa.float32(), embedder.embed_dim)
        assert table.schema.field("object_id").type == pa.string()
        hp = int(part.parent.name.split("_")[1])
        np.testing.assert_array_equal(table.column("healpix").to_numpy(), hp)
        np.testing.assert_array_equal(healpix_index(table.column("ra").to_numpy(),
                                                    table.column("dec").to_numpy()), hp)
        meta = {k.decode(): v.decode() for k, v in table.schema.metadata.items()}
        assert meta["model_hash"] == content_hash(model) and meta["modality"] == "image"
        assert meta["model_name"] == "model_a" and meta["embed_dim"] == str(embedder.embed_dim)
        assert meta["astroembed_version"] == astroembed.__version__
        assert Path(meta["source_tile"]) == (data / f"healpix={hp}" / "001-of-001.hdf5").resolve()
        n_skipped += int(meta["n_skipped"])
    assert n_skipped == sum(g.image is None for g in galaxies) > 0

    summary = read_metadata(reference_run)
    assert summary["model_hash"] == content_hash(model) and summary["n_skipped"] == n_skipped
    manifest = json.loads((reference_run / "_manifest.json").read_text())
    assert manifest["n_rows"] == len(with_image) and manifest["n_skipped"] == n_skipped


def test_reader_processes_give_identical_bytes(embed_inputs, reference_run, tmp_path):
    data, _, model, _ = embed_inputs
    out = embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "emb"), device="cpu",
                                    precision="32-true", batch_size=16, num_workers=1), progress=True)
    for got, want in zip(read_embeddings(out), read_embeddings(reference_run)):
        np.testing.assert_array_equal(got, want)


def test_rerun_skips_finished_tiles_and_other_model_is_an_error(embed_inputs, tmp_path):
    data, galaxies, model, other = embed_inputs
    config = EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "emb"), device="cpu", batch_size=32)
    out = embed_catalog(config, progress=False)
    before = {p: p.stat().st_mtime_ns for p in parts(out)}
    first = read_embeddings(out)
    time.sleep(0.01)
    embed_catalog(config, progress=False)
    assert {p: p.stat().st_mtime_ns for p in parts(out)} == before
    for got, want in zip(read_embeddings(out), first):
        np.testing.assert_array_equal(got, want)

    with pytest.raises(InvalidDataError, match=r"model_hash.*overwrite=True") as err:
        embed_catalog(EmbedConfig(model=str(other), data=str(data), out=str(out), device="cpu"), progress=False)
    assert "part-0.parquet" in str(err.value)  # names the file
    assert {p: p.stat().st_mtime_ns for p in parts(out)} == before

    embed_catalog(EmbedConfig(model=str(other), data=str(data), out=str(out), device="cpu", overwrite=True),
                  progress=False)
    assert read_metadata(out)["model_hash"] == content_hash(other)
    ids, _, _, vectors = read_embeddings(out)
    np.testing.assert_array_equal(ids, first[0])
    assert not np.allclose(vectors, first[3])


CRASH_SCRIPT = """
import sys, time
import torch
torch.set_num_threads(1)
import astroembed.inference as inference
from astroembed.embed import EmbedConfig, embed_catalog

embed = inference.ImageEmbedder.embed
def slow_embed(self, images, batch_size=256):  # slow enough that the kill lands mid-run
    time.sleep(0.04)
    return embed(self, images, batch_size)
inference.ImageEmbedder.embed = slow_embed
embed_catalog(EmbedConfig(model=sys.argv[1], data=sys.argv[2], out=sys.argv[3], device="cpu", batch_size=16,
                          precision="32-true"), progress=False)
"""


def test_sigkill_then_rerun_gives_the_uninterrupted_result(embed_inputs, reference_run, tmp_path):
    data, _, model, _ = embed_inputs
    out = tmp_path / "emb"
    script = tmp_path / "crash.py"
    script.write_text(CRASH_SCRIPT)
    seed = random.randrange(1 << 30)
    delay = random.Random(seed).uniform(0.0, 0.15)
    proc = subprocess.Popen([sys.executable, str(script), str(model), str(data), str(out)])
    try:
        deadline = time.monotonic() + 40
        while not parts(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL, f"the run finished before the kill (seed {seed})"
    n_tiles = len(parts(reference_run))
    assert 0 < len(parts(out)) < n_tiles, f"seed {seed}: {len(parts(out))} of {n_tiles} parts"
    # A killed run may also die inside a write: plant such leftovers, in a done and an unfinished tile.
    for folder in (parts(out)[0].parent, out / sorted(p.parent.name for p in parts(reference_run))[-1]):
        folder.mkdir(parents=True, exist_ok=True)
        (folder / ".part-0.parquet.0123456789abcdef.tmp").write_bytes(b"PAR1 half a file")
    done_before = {p: p.stat().st_mtime_ns for p in parts(out)}

    embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(out), device="cpu", batch_size=16,
                              precision="32-true"), progress=False)  # one torch thread, fp32, as the reference
    assert all(p.stat().st_mtime_ns == t for p, t in done_before.items())  # finished parts were kept
    assert not list(out.rglob("*.tmp"))
    ids, ra, dec, vectors = read_embeddings(out)
    ref = read_embeddings(reference_run)
    assert len(set(ids.tolist())) == len(ids)
    for got, want in zip((ids, ra, dec, vectors), ref):
        np.testing.assert_array_equal(got, want)


def test_changed_tile_is_an_error_not_a_silent_skip(embed_inputs, tmp_path):
    _, galaxies, model, _ = embed_inputs
    write_survey(galaxies, tmp_path / "s", "blobs")
    config = EmbedConfig(model=str(model), data=str(tmp_path / "s" / "blobs" / "default"), out=str(tmp_path / "emb"),
                         device="cpu")
    embed_catalog(config, progress=False)
    # The survey is rewritten in place with fewer objects: its parts no longer describe it. (Writing
    # into an existing survey appends, so the old one is removed first.)
    shutil.rmtree(tmp_path / "s")
    write_survey(galaxies[:-10], tmp_path / "s", "blobs")
    with pytest.raises(InvalidDataError, match="source_rows"):
        embed_catalog(config, progress=False)
    # ... and moved elsewhere, the parts name another source tile.
    write_survey(galaxies, tmp_path / "t", "blobs")
    moved = EmbedConfig(model=str(model), data=str(tmp_path / "t" / "blobs" / "default"), out=config.out,
                        device="cpu")
    with pytest.raises(InvalidDataError, match="source_tile"):
        embed_catalog(moved, progress=False)


class SpectrumStatistics:
    """Stand-in spectrum embedder: simple statistics of the unpadded, unmasked pixels."""

    modality = "spectrum"
    embed_dim = 3
    name = "stats"
    content_hash = "0" * 64

    def embed_spectrum(self, flux, ivar, wavelength, mask=None):
        keep = (wavelength > 0) & mask
        return np.stack([np.where(keep, flux, 0).sum(1), keep.sum(1), np.where(keep, wavelength, 0).max(1)],
                        axis=1).astype(np.float32)


def test_spectra_skip_padding_only_rows(tmp_path):
    rng = np.random.default_rng(3)
    galaxies = []
    for i in range(30):
        n = int(rng.integers(20, 60))
        spectrum = Spectrum(flux=rng.normal(1, 0.1, n).astype(np.float32),
                            wavelength=np.linspace(4000, 4000 + 10 * n, n), ivar=np.ones(n, np.float32))
        galaxies.append(Galaxy(f"s{i:02d}", 150.0 + 0.01 * i, 1.0,
                               spectrum=spectrum if i % 7 else None,
                               photometry=None if i % 7 else Photometry(("g",), np.ones(1, np.float32))))
    write_survey(galaxies, tmp_path / "s", "spec")
    data = tmp_path / "s" / "spec" / "default"
    jobs = plan_tiles(data, tmp_path / "emb")
    embedder = SpectrumStatistics()
    modality = resolve_modality(embedder, "auto", jobs)
    assert modality == "spectrum"
    with pytest.raises(ValueError, match="embeds"):
        resolve_modality(embedder, "image", jobs)
    meta = run_metadata(embedder, modality)
    total = (0, 0)
    for job in jobs:
        rows, skipped = embed_tile(embedder, job, modality, batch_size=4, meta=meta)
        total = (total[0] + rows, total[1] + skipped)
    assert total == (sum(g.spectrum is not None for g in galaxies), sum(g.spectrum is None for g in galaxies))
    ids, _, _, vectors = read_embeddings(tmp_path / "emb", "spectrum")
    with_spectrum = [g for g in galaxies if g.spectrum is not None]
    assert ids.tolist() == [g.object_id for g in with_spectrum]
    expected = [[g.spectrum.flux.sum(), len(g.spectrum.flux), g.spectrum.wavelength.max()] for g in with_spectrum]
    np.testing.assert_allclose(vectors, expected, rtol=1e-5)


def test_bad_config_is_rejected():
    with pytest.raises(ValueError, match="modality"):
        EmbedConfig(model="m", data="d", out="o", modality="radio")
    with pytest.raises(ValueError, match="batch_size"):
        EmbedConfig(model="m", data="d", out="o", batch_size=0)


def test_real_spectrum_model_matches_embedding_each_spectrum_alone(tmp_path):
    """With an exported spectrum transformer, padded MMU rows embed like the unpadded record embedded on
    its own, and spectrum-less rows are skipped."""
    import torch

    from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_spectra
    from astroembed.models.io import load_model
    from astroembed.models.spectrum_transformer import SpectrumTransformer
    from astroembed.train import spectrum as spectrum_training

    rng = np.random.default_rng(0)
    galaxies = []
    for i in range(24):
        n = int(rng.integers(300, 500))
        spectrum = Spectrum(flux=rng.normal(1, 0.1, n).astype(np.float32), wavelength=np.linspace(3800, 9000, n),
                            ivar=np.ones(n, np.float32))
        galaxies.append(Galaxy(f"s{i:02d}", float(rng.uniform(150, 158)), float(rng.uniform(0, 6)),
                               spectrum=spectrum if i % 5 else None,
                               photometry=None if i % 5 else Photometry(("g",), np.ones(1, np.float32))))
    write_survey(galaxies, tmp_path / "s", "spec")
    torch_model = SpectrumTransformer(spectrum_training.SpectrumModelConfig(dim=32, depth=1, num_heads=2))
    model = spectrum_training.export_spectrum_encoder(torch_model, SpectrumPreprocessConfig(), tmp_path / "m")
    out = embed_catalog(EmbedConfig(model=str(model), data=str(tmp_path / "s" / "spec" / "default"),
                                    out=str(tmp_path / "emb"), device="cpu", precision="32-true", batch_size=8),
                        progress=False)
    ids, _, _, vectors = read_embeddings(out)
    keep = sorted((g for g in galaxies if g.spectrum is not None), key=lambda g: g.object_id)
    assert ids.tolist() == [g.object_id for g in keep]
    meta = read_metadata(out)
    assert meta["modality"] == "spectrum" and meta["n_skipped"] == len(galaxies) - len(keep)
    # Independent path: each written record on its own unpadded grid, through prepare_spectra and the
    # network as saved (not the stored-array route embed_catalog and astroembed.load take).
    network, config = load_model(model)
    with torch.no_grad():
        expected = network(prepare_spectra([g.spectrum for g in keep],
                                           SpectrumPreprocessConfig.from_dict(config["preprocessing"]))).numpy()
    np.testing.assert_allclose(vectors, expected, rtol=1e-5, atol=1e-6)


def test_batches_run_on_across_tile_boundaries(embed_inputs, reference_run, tmp_path, monkeypatch):
    """Small tiles still make full batches: the model sees ceil(rows / batch) forward passes, not one
    part-filled pass per tile end, and the embeddings are those of the reference run."""
    import astroembed.inference

    data, galaxies, model, _ = embed_inputs
    sizes = []

    def counting_load(path, device="cpu", precision="auto"):
        embedder = load(path, device=device, precision=precision)
        forward = embedder.embed
        embedder.embed = lambda images: sizes.append(len(images)) or forward(images)
        return embedder

    monkeypatch.setattr(astroembed.inference, "load", counting_load)
    out = embed_catalog(EmbedConfig(model=str(model), data=str(data), out=str(tmp_path / "emb"), device="cpu",
                                    precision="32-true", batch_size=16), progress=False)
    tile_rows = [job.n_rows for job in plan_tiles(data, tmp_path / "emb")]
    assert len(sizes) == -(-len(galaxies) // 16) < sum(-(-n // 16) for n in tile_rows)
    assert sum(sizes) == sum(g.image is not None for g in galaxies)
    for got, want in zip(read_embeddings(out), read_embeddings(reference_run)):
        np.testing.assert_array_equal(got, want)
