"""A small catalogue with images and spectra in one aligned space, served by the app.

40 blob galaxies (tests/conftest.py) each get a spectrum on the SDSS log-lambda grid with one emission
line and a masked stretch; an untrained but deterministic CLIP-style model (as in
tests/test_inference_spectrum.py) embeds both modalities; ``astroembed index`` builds the index. The
model's weights do not matter here: the tests check the app against the index and the stored vectors.
"""

import io

import numpy as np
import pytest
import torch

from tests.conftest import make_blob_galaxies

pytest.importorskip("fastapi", reason="the web app needs the optional extra astroembed[app]")

SDSS = 10 ** np.arange(3.5786, 3.9640, 1e-4)  # SDSS log-lambda grid, ~3850 pixels
MASKED = slice(1000, 1100)  # every spectrum has these pixels at ivar = 0


def _spectrum(rng):
    from astroembed.data.records import Spectrum

    centre = rng.uniform(4500, 8500)
    flux = 5 + 2 * np.sin(SDSS / 700.0 + rng.uniform(0, 6)) + 20 * np.exp(-0.5 * ((SDSS - centre) / 8) ** 2)
    ivar = np.full(SDSS.shape, 4.0, np.float32)
    ivar[MASKED] = 0
    return Spectrum(flux=flux.astype(np.float32), wavelength=SDSS.copy(), ivar=ivar)


def _aligned_model(path):
    from astroembed.preprocess.image import PreprocessConfig, preprocess
    from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
    from astroembed.models.clip_model import AlignedModel
    from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
    from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
    from astroembed.train.clip import export_aligned_model

    torch.manual_seed(0)
    spec_pre = SpectrumPreprocessConfig(wave_min=3800, wave_max=9800, wave_step=10.0)
    image_cfg = ImageEncoderConfig(arch="small_cnn", widths=(8, 16, 16, 32), in_channels=3)
    spec_cfg = SpectrumTransformerConfig.for_preprocess(spec_pre, dim=32, depth=1, num_heads=4)
    model = AlignedModel(build_image_encoder(image_cfg), SpectrumTransformer(spec_cfg), embed_dim=8,
                         projection_hidden=16,
                         image_config={"model_type": "image_encoder", "model": image_cfg.to_dict()},
                         spectrum_config={"model_type": "spectrum_transformer", "model": spec_cfg.to_dict()})
    image_pre = PreprocessConfig(mode="arcsinh", crop_size=24)
    with torch.no_grad():  # give the heads' running statistics real values, as training would
        model.train()
        features = model.image_encoder(preprocess(torch.randn(32, 3, 32, 32) * 0.1, image_pre, ("g", "r", "z")))
        rng = np.random.default_rng(1)
        specs = [_spectrum(rng) for _ in range(16)]
        flux, ivar = np.stack([s.flux for s in specs]), np.stack([s.ivar for s in specs])
        spectrum_features = model.spectrum_encoder(prepare_batch(flux, ivar, None, SDSS, spec_pre))
        for _ in range(50):  # momentum 0.1: converge, or every untrained embedding points one way
            model.image_head(features)
            model.spectrum_head(spectrum_features)
    model.eval()
    return export_aligned_model(model, {"model_type": "image_encoder", "preprocessing": image_pre.to_dict(),
                                        "bands": ["g", "r", "z"]}, {"preprocessing": spec_pre.to_dict()}, path)


@pytest.fixture(scope="session")
def app_catalogue(tmp_path_factory):
    """dict: index (folder), survey (folder), model, galaxies (records), root (tmp folder)."""
    from astroembed.data.mmu import write_survey
    from astroembed.embed.catalog import EmbedConfig, embed_catalog
    from astroembed.search.catalog_search import build_index

    root = tmp_path_factory.mktemp("app_catalogue")
    galaxies = make_blob_galaxies(n=40)
    rng = np.random.default_rng(0)
    for g in galaxies:
        g.spectrum = _spectrum(rng)
        g.labels["kind"] = "disc" if g.labels["redshift"] < 0.25 else "bulge"
    write_survey(galaxies, root / "survey", "blobs")
    survey = root / "survey" / "blobs" / "default"
    model = _aligned_model(root / "model")
    catalogues = [embed_catalog(EmbedConfig(model=model, data=survey, out=root / f"emb_{m}", modality=m,
                                            device="cpu"), progress=False) for m in ("image", "spectrum")]
    index = build_index(catalogues, root / "index")
    return {"index": index, "survey": survey, "model": model, "galaxies": galaxies, "root": root}


@pytest.fixture(scope="session")
def client(app_catalogue, tmp_path_factory):
    from fastapi.testclient import TestClient

    from astroembed.app.server import create_app
    from astroembed.app.uploads import UploadLimits

    app = create_app(app_catalogue["index"], cache_dir=tmp_path_factory.mktemp("app_cache"),
                     limits=UploadLimits(max_bytes=2 * 1024 * 1024, max_pixels=1024 * 1024))
    with TestClient(app, raise_server_exceptions=False) as test_client:
        yield test_client


def write_cutout(path, galaxy):
    """A Legacy Surveys style FITS cutout (bands in the header, TAN WCS at the galaxy) of a record."""
    from astropy.io import fits
    from astropy.wcs import WCS

    size = galaxy.image.flux.shape[-1]
    wcs = WCS(naxis=2)
    wcs.wcs.ctype = ["RA---TAN", "DEC--TAN"]
    wcs.wcs.crval = [galaxy.ra, galaxy.dec]
    wcs.wcs.crpix = [(size + 1) / 2, (size + 1) / 2]
    wcs.wcs.cdelt = [-0.262 / 3600, 0.262 / 3600]
    header = wcs.to_header()
    header["BANDS"] = "grz"
    fits.PrimaryHDU(galaxy.image.flux, header=header).writeto(path)
    return path


def write_sdss_spectrum(path, galaxy, plate=266, mjd=51630, fiber=1):
    """An SDSS spec-lite FITS file (COADD + SPECOBJ HDUs) holding a record's spectrum."""
    from astropy.io import fits

    s = galaxy.spectrum
    n = len(s.flux)
    coadd = fits.BinTableHDU.from_columns([
        fits.Column("flux", "E", array=s.flux), fits.Column("loglam", "E", array=np.log10(s.wavelength)),
        fits.Column("ivar", "E", array=s.ivar), fits.Column("and_mask", "J", array=np.zeros(n, np.int32)),
        fits.Column("wdisp", "E", array=np.ones(n, np.float32))], name="COADD")
    specobj = fits.BinTableHDU.from_columns([
        fits.Column("PLATE", "J", array=[plate]), fits.Column("MJD", "J", array=[mjd]),
        fits.Column("FIBERID", "J", array=[fiber]), fits.Column("PLUG_RA", "D", array=[galaxy.ra]),
        fits.Column("PLUG_DEC", "D", array=[galaxy.dec]), fits.Column("Z", "E", array=[0.1]),
        fits.Column("CLASS", "6A", array=["GALAXY"]), fits.Column("SUBCLASS", "6A", array=[""])], name="SPECOBJ")
    fits.HDUList([fits.PrimaryHDU(), coadd, specobj]).writeto(path)
    return path


def png_bytes(width, height, colour=(200, 120, 40)):
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), colour).save(out, format="PNG")
    return out.getvalue()
