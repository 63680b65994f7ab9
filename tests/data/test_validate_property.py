"""Property: a valid small survey, corrupted in a random way, is either read correctly or refused with an
InvalidDataError naming the file, the object and the field, by every read path: `info` (summarize),
`embed` (embed_catalog, image and spectrum), `index` / `search` (build_index, CatalogSearch) and the
Python API (MMUSurvey records through astroembed.load(...).embed / embed_spectrum). Never another
exception type, and never a result that differs from the clean survey's where the data did not change.
"""

import shutil
from dataclasses import dataclass, field

import h5py
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import astroembed
from astroembed.preprocess.image import PreprocessConfig
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig
from astroembed.data.info import summarize
from astroembed.data.mmu import MMUSurvey, find_tiles, write_survey
from astroembed.data.records import Galaxy, Image, InvalidDataError, Spectrum
from astroembed.embed import EmbedConfig, embed_catalog, read_embeddings
from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.models.io import save_model
from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
from astroembed.search.catalog_search import CatalogSearch, build_index
from astroembed.train.spectrum import export_spectrum_encoder

BANDS = ("g", "r", "z")
N_PER_TILE = 6
PRE = SpectrumPreprocessConfig(wave_min=3800, wave_max=9800, wave_step=10.0)


def galaxies():
    """Two HEALPix tiles of objects with a g,r,z image and a spectrum (some shorter: padded on write)."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:32, :32] - 15.5
    out = []
    for i in range(2 * N_PER_TILE):
        ra = (150.2 if i < N_PER_TILE else 170.2) + 0.01 * (i % N_PER_TILE)
        profile = np.exp(-0.5 * (xx ** 2 + yy ** 2) / rng.uniform(1.5, 5) ** 2)
        flux = (rng.uniform(0.5, 2, (3, 1, 1)) * profile + rng.normal(0, 0.02, (3, 32, 32))).astype(np.float32)
        wave = np.arange(3700.0, 9900.0 if i % 3 else 8000.0, 10.0)
        spec = (5 + 2 * np.sin(wave / rng.uniform(500, 900)) + rng.normal(0, 0.1, wave.size)).astype(np.float32)
        out.append(Galaxy(f"obj-{i:02d}", ra, 1.0 + 0.01 * (i % N_PER_TILE),
                          image=Image(flux, BANDS, ivar=np.full(flux.shape, 2500.0, np.float32),
                                      psf_fwhm=[1.3, 1.2, 1.1], pixel_scale=0.262),
                          spectrum=Spectrum(spec, wave, ivar=np.full(wave.size, 4.0, np.float32))))
    return out


@dataclass
class Clean:
    survey: object
    image_model: object
    spectrum_model: object
    reference: dict = field(default_factory=dict)  # modality -> {object id: embedding}
    info: dict = field(default_factory=dict)


@pytest.fixture(scope="module")
def clean(tmp_path_factory):
    root = tmp_path_factory.mktemp("validate_property")
    write_survey(galaxies(), root / "survey", "clean")
    torch.manual_seed(0)
    cfg = ImageEncoderConfig(arch="small_cnn", in_channels=3, image_size=28, widths=(8, 16, 16, 32))
    encoder = build_image_encoder(cfg)
    image_model = save_model(encoder, {"model_type": "image_encoder", "modality": "image", "model": cfg.to_dict(),
                                       "preprocessing": PreprocessConfig(crop_size=28).to_dict(),
                                       "bands": list(BANDS), "embed_dim": int(encoder.embed_dim)}, root / "image")
    spectrum = SpectrumTransformer(SpectrumTransformerConfig.for_preprocess(PRE, dim=16, depth=1, num_heads=2))
    spectrum_model = export_spectrum_encoder(spectrum, PRE, root / "spectrum" / "model")
    state = Clean(root / "survey" / "clean" / "default", image_model, spectrum_model)
    assert len(find_tiles(state.survey)) == 2
    for modality, model in (("image", image_model), ("spectrum", spectrum_model)):
        out = embed_catalog(EmbedConfig(model=str(model), data=str(state.survey), out=str(root / modality),
                                        device="cpu", modality=modality), progress=False)
        ids, _, _, vectors = read_embeddings(out)
        state.reference[modality] = dict(zip(ids.tolist(), vectors))
    state.info = summarize(state.survey)
    return state


# ------------------------------------------------------------------------------------------- corruptions

@dataclass
class Corruption:
    kind: str
    tile: str
    row_id: str | None  # the object a row-level corruption touched (its id after the corruption)
    refused_by: frozenset  # the paths that must refuse it; every other path must read it correctly
    affected: set = field(default_factory=set)  # ids whose embeddings may legitimately change


ALL = frozenset({"info", "embed image", "embed spectrum", "api"})
IMAGE_ROWS = frozenset({"info", "embed image", "api"})      # paths that read image rows
SPECTRUM_ROWS = frozenset({"info", "embed spectrum", "api"})  # paths that read spectrum rows


def _replace(f, name, values):
    del f[name]
    f.create_dataset(name, data=values)


def _real(f, row):
    return int(np.sum(f["spectrum_lambda"][row] > 0))


def corrupt(f, kind: str, row: int, draw: float, other_id: str) -> tuple[str | None, frozenset, set]:
    """Apply ``kind`` to row ``row`` of the open tile; returns (row id, paths that must refuse it,
    affected ids). A tile's structure and ids are checked by every path, its rows by those that read them."""
    oid = f["object_id"][row].decode()
    n = f["object_id"].shape[0]
    structural = {"drop_ra": "ra", "drop_object_id": "object_id", "drop_image_band": "image_band",
                  "drop_spectrum_lambda": "spectrum_lambda", "drop_dec": "dec"}
    if kind in structural:
        del f[structural[kind]]
        return None, ALL, set()
    if kind.startswith("truncate_"):
        name = kind[len("truncate_"):]
        _replace(f, name, f[name][: n - 1])
        return None, ALL, set()
    if kind == "one_d_lambda":
        _replace(f, "spectrum_lambda", f["spectrum_lambda"][0])
        return None, ALL, set()
    if kind == "drop_plane":
        _replace(f, "image_array", f["image_array"][:, :2])
        return None, ALL, set()
    values = {"ra_out": ("ra", [400.0, -1.0, np.inf]), "dec_out": ("dec", [95.0, -91.0, -np.inf]),
              "half_position": ("ra", [np.nan])}
    if kind in values:
        name, choices = values[kind]
        column = f[name][:]
        column[row] = choices[int(draw * len(choices)) % len(choices)]
        _replace(f, name, column)
        return oid, ALL, set()
    if kind in ("empty_id", "duplicate_id"):
        ids = f["object_id"][:]
        ids[row] = b"" if kind == "empty_id" else other_id.encode()
        _replace(f, "object_id", ids)
        return (None if kind == "empty_id" else other_id), ALL, set()
    if kind == "neg_image_ivar":
        f["image_ivar"][row, int(draw * 3) % 3, 5, 7] = -(1.0 + draw)
        return oid, IMAGE_ROWS, set()
    if kind == "neg_spectrum_ivar":
        k = int(draw * _real(f, row)) % _real(f, row)
        f["spectrum_ivar"][row, k] = -(1.0 + draw)
        return oid, SPECTRUM_ROWS, set()
    if kind == "blank_band":
        bands = f["image_band"][row]
        bands[int(draw * 3) % 3] = b""
        f["image_band"][row] = bands
        return oid, IMAGE_ROWS, set()
    if kind in ("unordered_lambda", "nan_lambda"):
        wave = f["spectrum_lambda"][row]
        k = 1 + int(draw * (_real(f, row) - 2))
        if kind == "nan_lambda":
            wave[k] = np.nan
        else:
            wave[k], wave[k + 1] = wave[k + 1], wave[k]
        f["spectrum_lambda"][row] = wave
        return oid, SPECTRUM_ROWS, set()
    if kind == "other_bands":  # u,g,r cutouts: valid data, not what the g,r,z model was trained on
        _replace(f, "image_band", np.array([[b"u", b"g", b"r"]] * n))
        return None, frozenset({"embed image", "api"}), set()
    if kind == "wavelength_unit":  # nm, micron or log10(Angstrom): valid data, wrong for the model
        wave = f["spectrum_lambda"][row]
        real = wave > 0
        convert = [lambda w: w / 10, lambda w: w / 1e4, np.log10][int(draw * 3) % 3]
        wave[real] = convert(wave[real])
        f["spectrum_lambda"][row] = wave
        return oid, frozenset({"embed spectrum", "api"}), set()
    if kind == "nan_flux":  # documented masking: the object still embeds, the others do not change
        column = ["image_array", "spectrum_flux"][int(draw * 2) % 2]
        f[column][row, 0] = np.nan
        return oid, frozenset(), {oid}
    if kind == "zero_ivar":  # ivar 0 = no information: masked, valid
        f["spectrum_ivar"][row, : _real(f, row) // 2] = 0.0
        return oid, frozenset(), {oid}
    if kind == "reordered_bands":  # planes and names in another order: picked by name, same embeddings
        order = [2, 0, 1]
        _replace(f, "image_array", f["image_array"][:][:, order])
        _replace(f, "image_ivar", f["image_ivar"][:][:, order])
        _replace(f, "image_mask", f["image_mask"][:][:, order])
        _replace(f, "image_band", f["image_band"][:][:, order])
        return None, frozenset(), set()
    raise AssertionError(kind)


KINDS = ["drop_ra", "drop_dec", "drop_object_id", "drop_image_band", "drop_spectrum_lambda", "truncate_ra",
         "truncate_image_array", "truncate_spectrum_ivar", "truncate_image_band", "one_d_lambda", "drop_plane",
         "ra_out", "dec_out", "half_position", "empty_id", "duplicate_id", "neg_image_ivar", "neg_spectrum_ivar",
         "blank_band", "unordered_lambda", "nan_lambda", "other_bands", "wavelength_unit", "nan_flux",
         "zero_ivar", "reordered_bands"]


# ------------------------------------------------------------------------------------------- the paths

def run_info(path, clean):
    summary = summarize(path)
    assert summary["n_objects"] == clean.info["n_objects"]
    assert summary["modalities"] == clean.info["modalities"]


def run_embed(path, clean, out, modality, affected):
    model = clean.image_model if modality == "image" else clean.spectrum_model
    embed_catalog(EmbedConfig(model=str(model), data=str(path), out=str(out), device="cpu", modality=modality),
                  progress=False)
    ids, _, _, vectors = read_embeddings(out)
    assert sorted(ids.tolist()) == sorted(clean.reference[modality])
    check_vectors(dict(zip(ids.tolist(), vectors)), clean.reference[modality], affected)
    if modality == "image":  # index and search over what was embedded
        index = build_index([out], out.parent / f"index_{modality}")
        hits = CatalogSearch(index).search(object_id=str(ids[0]), k=3)
        assert len(hits) == 3 and all(h.object_id in clean.reference[modality] for h in hits)
        assert [h.similarity for h in hits] == sorted((h.similarity for h in hits), reverse=True)


def run_api(path, clean, affected):
    survey = MMUSurvey(path)
    image_model, spectrum_model = astroembed.load(clean.image_model), astroembed.load(clean.spectrum_model)
    got = {"image": {}, "spectrum": {}}
    for i in range(len(survey)):
        source = str(survey.tiles[survey._file_index[i]])
        g = survey[i]
        got["image"][g.object_id] = image_model.embed(g.image.flux, bands=g.image.bands, object_ids=[g.object_id],
                                                      source=source)[0]
        got["spectrum"][g.object_id] = spectrum_model.embed_spectrum([g.spectrum], object_ids=[g.object_id],
                                                                     source=source)[0]
    for modality in got:
        check_vectors(got[modality], clean.reference[modality], affected)


def check_vectors(got: dict, reference: dict, affected: set):
    assert set(got) == set(reference)
    for oid, vector in got.items():
        assert np.isfinite(vector).all(), oid
        if oid not in affected:
            np.testing.assert_allclose(vector, reference[oid], rtol=1e-4, atol=1e-5, err_msg=oid)


def outcome(fn, *args):
    """None on success, else the InvalidDataError; any other exception fails the test."""
    try:
        fn(*args)
    except InvalidDataError as exc:
        return exc
    return None


# Every kind of corruption is tried (parametrised); hypothesis draws where and how much. No shrinking: an
# example costs a second (four embedding runs), and the failure report already names kind, tile and row.
@pytest.mark.slow  # ~100 s on 2 busy cores: 26 kinds x 2 examples x (info, 2 embeddings, index, API)
@pytest.mark.parametrize("kind", KINDS)
@settings(max_examples=2, phases=[Phase.explicit, Phase.reuse, Phase.generate],
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(tile=st.integers(0, 1), row=st.integers(0, N_PER_TILE - 1), draw=st.floats(0, 1, exclude_max=True))
def test_every_path_reads_a_corrupted_survey_correctly_or_names_file_object_and_field(
        clean, tmp_path_factory, kind, tile, row, draw):
    work = tmp_path_factory.mktemp("corrupt")
    path = work / "survey"
    shutil.copytree(clean.survey, path)
    tiles = find_tiles(path)
    with h5py.File(tiles[1 - tile], "r") as f:
        other_id = f["object_id"][0].decode()
    with h5py.File(tiles[tile], "r+") as f:
        row_id, refused_by, affected = corrupt(f, kind, row % f["object_id"].shape[0], draw, other_id)
    c = Corruption(kind, str(tiles[tile]), row_id, refused_by, affected)

    results = {"info": outcome(run_info, path, clean),
               "embed image": outcome(run_embed, path, clean, work / "image", "image", c.affected),
               "embed spectrum": outcome(run_embed, path, clean, work / "spectrum", "spectrum", c.affected),
               "api": outcome(run_api, path, clean, c.affected)}
    refused = {name for name, err in results.items() if err is not None}
    assert refused == c.refused_by, f"{kind}: refused by {sorted(refused)}, expected {sorted(c.refused_by)}: {results}"
    for name in refused:
        err = results[name]
        assert err.field, f"{name}: no field in {err}"
        assert err.source and str(tiles[tile]) in str(err), f"{name}: {err} does not name {tiles[tile]}"
        if c.row_id is not None:
            assert err.object_id == c.row_id, f"{name}: {err} does not name object {c.row_id}"
