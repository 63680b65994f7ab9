"""The data model's boundary checks: every malformation is an InvalidDataError naming file, object and
field, or the documented masking."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from astroembed.data.records import (Galaxy, Image, InvalidDataError, Photometry, Spectrum,
                                     check_unique_ids)


def image(**kw):
    args = dict(flux=np.ones((3, 8, 8), np.float32), bands=("g", "r", "z"),
                ivar=np.ones((3, 8, 8), np.float32), psf_fwhm=[1.2, 1.1, 1.0], pixel_scale=0.262)
    args.update(kw)
    return Image(**args)


def spectrum(**kw):
    args = dict(flux=np.ones(20), wavelength=np.linspace(4000, 5000, 20), ivar=np.ones(20))
    args.update(kw)
    return Spectrum(**args)


def galaxy(**kw):
    args = dict(object_id="g1", ra=10.0, dec=-5.0, image=image(), spectrum=spectrum())
    args.update(kw)
    return Galaxy(**args)


def assert_names(exc, field, object_id="g1", source="survey.hdf5"):
    message = str(exc)
    assert field in message and object_id in message and source in message, message


MALFORMED = {
    "image_1d": (lambda: galaxy(image=image(flux=np.ones(8))), "image_array"),
    "image_empty": (lambda: galaxy(image=image(flux=np.ones((3, 0, 8)))), "image_array"),
    "band_count": (lambda: galaxy(image=image(bands=("g", "r"))), "image_band"),
    "band_duplicated": (lambda: galaxy(image=image(bands=("g", "g", "z"))), "image_band"),
    "image_ivar_shape": (lambda: galaxy(image=image(ivar=np.ones((3, 4, 4)))), "image_ivar"),
    "image_ivar_negative": (lambda: galaxy(image=image(ivar=-np.ones((3, 8, 8)))), "image_ivar"),
    "image_mask_shape": (lambda: galaxy(image=image(mask=np.ones((2, 8, 8), bool))), "image_mask"),
    "psf_count": (lambda: galaxy(image=image(psf_fwhm=[1.0, 1.0])), "image_psf_fwhm"),
    "psf_negative": (lambda: galaxy(image=image(psf_fwhm=[1.0, -1.0, 1.0])), "image_psf_fwhm"),
    "pixel_scale_negative": (lambda: galaxy(image=image(pixel_scale=-0.2)), "image_scale"),
    "wave_decreasing": (lambda: galaxy(spectrum=spectrum(wavelength=np.linspace(5000, 4000, 20))),
                        "spectrum_lambda"),
    "wave_repeated": (lambda: galaxy(spectrum=spectrum(wavelength=np.r_[np.arange(19.0) + 4000, 4018.0])),
                      "spectrum_lambda"),
    "wave_negative": (lambda: galaxy(spectrum=spectrum(wavelength=np.linspace(-10, 5000, 20))),
                      "spectrum_lambda"),
    "wave_nan": (lambda: galaxy(spectrum=spectrum(wavelength=np.r_[np.nan, np.linspace(4000, 5000, 19)])),
                 "spectrum_lambda"),
    "wave_length": (lambda: galaxy(spectrum=spectrum(wavelength=np.linspace(4000, 5000, 19))),
                    "spectrum_lambda"),
    "spectrum_ivar_negative": (lambda: galaxy(spectrum=spectrum(ivar=-np.ones(20))), "spectrum_ivar"),
    "spectrum_empty": (lambda: galaxy(spectrum=spectrum(flux=np.ones(0), wavelength=np.ones(0),
                                                        ivar=np.ones(0))), "spectrum_flux"),
    "spectrum_2d": (lambda: galaxy(spectrum=spectrum(flux=np.ones((2, 10)))), "spectrum_flux"),
    "flux_not_numbers": (lambda: galaxy(spectrum=spectrum(flux=["a"] * 20)), "spectrum_flux"),
    "lsf_shape": (lambda: galaxy(spectrum=spectrum(lsf_sigma=np.ones(3))), "spectrum_lsf_sigma"),
    "ra_out_of_range": (lambda: galaxy(ra=400.0), "ra"),
    "dec_infinite": (lambda: galaxy(dec=np.inf), "dec"),
    "ra_only_nan": (lambda: galaxy(ra=np.nan), "ra"),
    "photometry_bands": (lambda: galaxy(photometry=Photometry(("g",), [1.0, 2.0])), "photometry_band"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_records_raise_naming_file_object_and_field(name):
    make, field = MALFORMED[name]
    with pytest.raises(InvalidDataError) as info:
        make().validate(source="survey.hdf5")
    assert_names(info.value, field)
    assert isinstance(info.value, ValueError)


def test_empty_object_id_is_an_error():
    with pytest.raises(InvalidDataError, match="object_id"):
        galaxy(object_id="  ").validate(source="survey.hdf5")


def test_nan_and_inf_pixels_are_masked_and_counted():
    flux = np.ones((3, 8, 8), np.float32)
    flux[0, 1, 1], flux[2, 3, 3] = np.nan, np.inf
    ivar = np.ones((3, 8, 8), np.float32)
    ivar[1, 0, 0] = np.nan
    g = galaxy(image=image(flux=flux, ivar=ivar))
    counts = g.validate()
    assert counts["image"] == 3
    im = g.image
    for idx in [(0, 1, 1), (2, 3, 3), (1, 0, 0)]:
        assert im.flux[idx] == 0 and im.ivar[idx] == 0 and not im.mask[idx]
    assert im.mask.sum() == 3 * 64 - 3
    assert np.all(np.isfinite(im.flux)) and np.all(np.isfinite(im.ivar))


def test_zero_ivar_is_masked_not_an_error():
    ivar = np.ones(20)
    ivar[5:8] = 0
    g = galaxy(spectrum=spectrum(ivar=ivar))
    assert g.validate()["spectrum"] == 0
    assert not g.spectrum.mask[5:8].any() and g.spectrum.mask.sum() == 17


def test_unknown_position_is_allowed_as_nan_pair():
    g = galaxy(ra=np.nan, dec=np.nan)
    g.validate()
    assert not g.has_position


def test_duplicated_ids_are_rejected():
    check_unique_ids(["a", "b"])
    with pytest.raises(InvalidDataError, match="duplicated object ids.*'a'"):
        check_unique_ids(["a", "b", "a"], source="cat.csv")


finite = st.floats(-1e6, 1e6, width=32)
anything = st.floats(width=32, allow_nan=True, allow_infinity=True)


@settings(max_examples=60, deadline=None)
@given(flux=hnp.arrays(np.float32, hnp.array_shapes(min_dims=0, max_dims=4, max_side=6), elements=anything),
       n_bands=st.integers(0, 5))
def test_any_image_array_gives_a_clean_record_or_a_named_error(flux, n_bands):
    g = galaxy(image=Image(flux=flux, bands=tuple("ugriz"[:n_bands])))
    try:
        counts = g.validate(source="x.hdf5")
    except InvalidDataError as exc:
        assert "x.hdf5" in str(exc) and "g1" in str(exc)
        return
    im = g.image
    assert im.flux.ndim == 3 and im.flux.shape[0] == n_bands
    assert np.all(np.isfinite(im.flux))
    assert counts["image"] == int(np.sum(~np.isfinite(flux)))
    assert np.array_equal(im.mask, np.isfinite(flux))


@settings(max_examples=60, deadline=None)
@given(wave=hnp.arrays(np.float64, st.integers(0, 12), elements=st.floats(-10, 1e4) | st.just(np.nan)),
       ivar=hnp.arrays(np.float32, 12, elements=st.floats(-1, 10, width=32) | st.just(np.nan)))
def test_any_spectrum_gives_a_clean_record_or_a_named_error(wave, ivar):
    n = len(wave)
    g = galaxy(spectrum=Spectrum(flux=np.ones(n), wavelength=wave, ivar=ivar[:n]))
    try:
        g.validate(source="x.fits")
    except InvalidDataError as exc:
        assert "x.fits" in str(exc) and "g1" in str(exc) and "spectrum_" in str(exc)
        return
    sp = g.spectrum
    assert np.all(np.diff(sp.wavelength) > 0) and np.all(sp.wavelength > 0)
    assert np.all(sp.ivar >= 0) and np.all(np.isfinite(sp.ivar))
    assert not np.any(sp.mask & (sp.ivar == 0))
