"""Built-in baselines read from a survey: asinh magnitudes and PCA of the pixels."""

import numpy as np
import pytest

from astroembed.data.mmu import write_survey
from astroembed.data.records import InvalidDataError, Photometry
from astroembed.evaluate.baselines import asinh_magnitudes, pca_pixels, photometry
from tests.conftest import make_blob_galaxies


def test_asinh_magnitudes_match_pogson_for_bright_objects_and_stay_finite_for_faint_ones():
    flux = np.array([1000.0, 1.0, 0.0, -0.05])  # nanomaggies
    mags = asinh_magnitudes(flux, softening=0.1)
    assert mags[0] == pytest.approx(22.5 - 2.5 * np.log10(1000.0), abs=1e-6)  # 15.0
    assert mags[2] == pytest.approx(22.5 - 2.5 * np.log10(0.1))  # zero flux: m0 - 2.5 log10(b)
    assert np.all(np.isfinite(mags)) and mags[3] > mags[2]


def test_pixel_and_photometry_baselines_from_a_survey(tmp_path):
    galaxies = make_blob_galaxies(n=20)
    for i, g in enumerate(galaxies):
        g.photometry = Photometry(("g", "r"), np.array([10.0 + i, 20.0], np.float32))
    write_survey(galaxies, tmp_path, "blobs")
    path = tmp_path / "blobs" / "default"
    pixels = pca_pixels(path, n_components=5, bin_factor=4)
    assert pixels.X.shape == (20, 3 * 8 * 8) and pixels.transform.n_components == 5
    expected = np.arcsinh(galaxies[0].image.flux.reshape(3, 8, 4, 8, 4).mean((2, 4)) / 0.1).ravel()
    row = list(pixels.object_ids).index(galaxies[0].object_id)
    np.testing.assert_allclose(pixels.X[row], expected, rtol=1e-5)
    phot = photometry(path)
    row = list(phot.object_ids).index(galaxies[3].object_id)
    np.testing.assert_allclose(phot.X[row], asinh_magnitudes(np.array([13.0, 20.0])), rtol=1e-6)
    write_survey(make_blob_galaxies(n=4), tmp_path / "nophot", "blobs")
    with pytest.raises(InvalidDataError, match="photometry_flux"):
        photometry(tmp_path / "nophot" / "blobs" / "default")
