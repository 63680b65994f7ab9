"""The photometry encoder and its embedder: a masked band has no influence whatever value it holds; the
export loads through the registry and embeds exactly like the network on prepare_photometry output;
bands are matched by name; bad input fails naming the field and the object."""

import numpy as np
import pytest
import torch

import astroembed
from astroembed.data.records import InvalidDataError
from astroembed.models.photometry_encoder import PhotometryEncoder, PhotometryEncoderConfig
from astroembed.preprocess.photometry import fit_photometry_preprocess, prepare_photometry
from astroembed.train.photometry import export_photometry_encoder

BANDS = ("u", "g", "r", "i", "z")


def catalogue(n=40, seed=0):
    rng = np.random.default_rng(seed)
    flux = rng.lognormal(2, 0.8, (n, 5)) * np.linspace(0.3, 1.5, 5)
    ivar = 1 / (0.05 * flux + 0.1) ** 2
    return flux.astype(np.float32), ivar.astype(np.float32)


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    flux, ivar = catalogue(200)
    pre = fit_photometry_preprocess(flux, ivar, BANDS)
    encoder = PhotometryEncoder(PhotometryEncoderConfig(n_bands=5, dim=16, depth=1, num_heads=2)).eval()
    path = export_photometry_encoder(encoder, pre, tmp_path_factory.mktemp("phot") / "model")
    return path, encoder, pre


def test_a_masked_band_has_no_influence(exported):
    _, encoder, pre = exported
    flux, ivar = catalogue(8, seed=1)
    batch = prepare_photometry(flux, ivar, None, pre)
    batch["mask"][:, 1] = False
    with torch.no_grad():
        a = encoder(batch)
        batch["values"][:, 1] = torch.randn(8, 2) * 100
        b = encoder(batch)
        # ... and the embedding of a subset equals that of the same galaxy with the other bands masked
        only = {"values": batch["values"].clone(), "mask": batch["mask"].clone()}
        only["mask"][:, 3:] = False
        c = encoder(only)
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


def test_export_embeds_like_the_network_and_matches_bands_by_name(exported):
    path, encoder, pre = exported
    flux, ivar = catalogue(7, seed=2)
    model = astroembed.load(path, precision="32-true")
    assert model.modality == "photometry" and model.photometry_bands == BANDS
    got = model.embed_photometry(flux, ivar, batch_size=3)
    with torch.no_grad():
        want = encoder(prepare_photometry(flux, ivar, None, pre)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    order = [4, 2, 0, 1, 3]
    np.testing.assert_allclose(model.embed_photometry(flux[:, order], ivar[:, order], bands=[BANDS[i] for i in order]),
                               want, rtol=1e-5, atol=1e-6)
    # g, r, z only (Legacy-like): the missing u and i are masked, the same as ivar 0 in those columns
    masked = ivar.copy()
    masked[:, [0, 3]] = 0
    np.testing.assert_allclose(model.embed_photometry(flux[:, [1, 2, 4]], ivar[:, [1, 2, 4]], bands=("g", "r", "z")),
                               model.embed_photometry(flux, masked), rtol=1e-5, atol=1e-6)
    assert model.embed_photometry(flux[0], ivar[0]).shape == (1, 16)
    assert model.embed_photometry(np.zeros((0, 5))).shape == (0, 16)


def test_bad_photometry_names_the_field_and_object(exported):
    model = astroembed.load(exported[0])
    flux, ivar = catalogue(3)
    with pytest.raises(InvalidDataError, match="photometry_band"):
        model.embed_photometry(flux[:, :4], ivar[:, :4])  # 4 columns, no band names: not the model's 5
    with pytest.raises(InvalidDataError, match="photometry_ivar"):
        model.embed_photometry(flux, ivar[:, :4], bands=BANDS)
    negative = ivar.copy()
    negative[1, 2] = -1
    with pytest.raises(InvalidDataError, match="gal-b.*photometry_ivar|photometry_ivar.*gal-b"):
        model.embed_photometry(flux, negative, object_ids=["gal-a", "gal-b", "gal-c"])
    empty = ivar.copy()
    empty[2] = 0
    with pytest.raises(InvalidDataError, match="#2 of the input"):
        model.embed_photometry(flux, empty)
    with pytest.raises(InvalidDataError, match="none of the bands"):
        model.embed_photometry(flux[:, :2], ivar[:, :2], bands=("W1", "W2"))
    with pytest.raises(InvalidDataError, match="photometry_flux"):
        model.embed_photometry(np.zeros((2, 5, 1)))
