"""Photometry preprocessing: arcsinh magnitudes against Lupton et al.'s formula written out in NumPy, the
softening fitted as 1.042 x the median flux error, bands matched by name, missing bands masked."""

import math

import numpy as np
import pytest
import torch

from astroembed.data.records import InvalidDataError
from astroembed.preprocess.photometry import (PhotometryPreprocessConfig, arcsinh_magnitude, band_columns,
                                              fit_photometry_preprocess, prepare_photometry)


def lupton(f_nmgy: float, b_nmgy: float) -> float:
    """Lupton et al. (1999) eq. 2 in maggies (f / f0, b dimensionless), by hand."""
    x, b = f_nmgy * 1e-9, b_nmgy * 1e-9
    return -2.5 / math.log(10) * (math.asinh(x / (2 * b)) + math.log(b))


@pytest.mark.parametrize("flux", [-0.3, 0.0, 0.05, 1.0, 37.0, 5000.0])
@pytest.mark.parametrize("b", [0.09, 0.74])
def test_arcsinh_magnitude_is_luptons_in_nanomaggies(flux, b):
    assert float(arcsinh_magnitude(np.array(flux), b)) == pytest.approx(lupton(flux, b), abs=1e-9)
    got = arcsinh_magnitude(torch.tensor([flux], dtype=torch.float64), [b])
    assert float(got[0]) == pytest.approx(lupton(flux, b), abs=1e-9)


def test_bright_sources_get_their_ab_magnitude_and_negative_fluxes_stay_finite():
    assert float(arcsinh_magnitude(np.array(1000.0), 0.1)) == pytest.approx(22.5 - 2.5 * 3, abs=1e-6)
    assert np.isfinite(arcsinh_magnitude(np.array([-5.0, 0.0]), 0.1)).all()


def test_fit_sets_softening_from_the_median_error_and_standardises():
    rng = np.random.default_rng(0)
    flux = rng.lognormal(2, 1, (200, 2))
    sigma = np.stack([np.full(200, 0.2), rng.uniform(0.5, 1.5, 200)], 1)
    ivar = 1 / sigma ** 2
    ivar[:10, 1] = 0  # missing values do not count
    pre = fit_photometry_preprocess(flux, ivar, ("g", "r"))
    assert pre.softening[0] == pytest.approx(1.042 * 0.2)
    assert pre.softening[1] == pytest.approx(1.042 * np.median(sigma[10:, 1]))
    m = np.array([lupton(f, pre.softening[0]) for f in flux[:, 0]])
    assert pre.center[0] == pytest.approx(np.median(m))
    assert pre.scale[0] == pytest.approx(1.4826 * np.median(np.abs(m - np.median(m))))
    assert PhotometryPreprocessConfig.from_dict(pre.to_dict()) == pre
    with pytest.raises(InvalidDataError, match="'r'"):
        fit_photometry_preprocess(flux, np.stack([ivar[:, 0], np.zeros(200)], 1), ("g", "r"))


def test_bands_are_matched_by_name_and_unknown_or_missing_ones_masked():
    pre = PhotometryPreprocessConfig(bands=("g", "r", "z"), softening=(0.1, 0.1, 0.2), center=(20, 19.5, 19),
                                     scale=(1, 1, 1))
    # input in another order, with a band the model lacks (W1) and without z
    out = prepare_photometry([[10.0, 5.0, 99.0]], [[4.0, 1.0, 1.0]], ("r", "g", "W1"), pre)
    mask, values = out["mask"][0], out["values"][0]
    assert mask.tolist() == [True, True, False]
    assert values[2].tolist() == [0.0, 0.0]
    assert float(values[0, 0]) == pytest.approx(lupton(5.0, 0.1) - 20, rel=1e-5)   # g is the second column
    assert float(values[1, 0]) == pytest.approx(lupton(10.0, 0.1) - 19.5, rel=1e-5)
    sigma_m = 2.5 / math.log(10) * 0.5 / math.sqrt(10.0 ** 2 + 4 * 0.1 ** 2)  # r: sigma_f = 1/sqrt(4)
    assert float(values[1, 1]) == pytest.approx(math.log10(sigma_m), rel=1e-5)
    bad = prepare_photometry([[np.nan, 5.0, 1.0], [1.0, 2.0, 3.0]], [[1, 1, 1], [1, 0, 1]], None, pre)
    assert bad["mask"].tolist() == [[False, True, True], [True, False, True]]
    assert torch.isfinite(bad["values"]).all()


def test_band_names_that_cannot_be_used_name_the_field():
    with pytest.raises(InvalidDataError, match="more than once.*photometry_band|photometry_band"):
        band_columns(("g", "g", "r"), ("g", "r"))
    with pytest.raises(InvalidDataError, match="none of the bands"):
        band_columns(("W1", "W2"), ("g", "r"))
    assert band_columns(("z", "g"), ("g", "r", "z")).tolist() == [1, -1, 0]
