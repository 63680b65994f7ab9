"""The built-in survey simulator: reproducible, traceable to real SDSS rows, physically consistent.

Everything here uses data shipped inside pip packages (kcorrect's 10,000 SDSS galaxies, speclite's
filters), so these tests never skip.
"""

from __future__ import annotations

from importlib.resources import files

import numpy as np
import pytest
from astropy.io import fits
from scipy.ndimage import median_filter
from scipy.stats import pearsonr, spearmanr

from astroembed.data.render import composite_half_light_radius, render_galaxy
from astroembed.data.sed import DESI_WAVE, SED_WAVE, SF11_DECAM, band_maggies, mw_transmission
from astroembed.data.simulate import (galaxy_rng, recipe_for_row, select_rows, simulate_galaxies,
                                      simulate_survey)

GST_FITS = files("kcorrect") / "data" / "test" / "gst_tests_small.fits"


@pytest.fixture(scope="module")
def sample():
    """120 galaxies rendered on two processes (the public path)."""
    return simulate_galaxies(120, seed=3, workers=2)


@pytest.fixture(scope="module")
def with_truth():
    """60 galaxies rendered in-process with their noise-free spectra and component sizes."""
    return [render_galaxy(recipe_for_row(r), galaxy_rng(5, r), return_truth=True)
            for r in select_rows(60, seed=5)]


def _arrays(g):
    return (g.image.flux, g.image.ivar, g.image.mask, g.image.psf_fwhm, g.spectrum.flux,
            g.spectrum.ivar, g.spectrum.lsf_sigma, g.photometry.flux)


# ------------------------------------------------------------------------------------------ determinism

def test_same_seed_same_galaxies_whatever_the_number_of_workers():
    one = simulate_galaxies(16, seed=11, workers=1, image_size=48)
    two = simulate_galaxies(16, seed=11, workers=2, image_size=48)
    assert [g.object_id for g in one] == [g.object_id for g in two]
    for a, b in zip(one, two):
        for x, y in zip(_arrays(a), _arrays(b)):
            np.testing.assert_array_equal(x, y)
        assert a.labels == b.labels
    # A smaller n is a prefix of a larger one (per-galaxy seeds depend on the row, not on n).
    prefix = simulate_galaxies(5, seed=11, workers=1, image_size=48)
    for a, b in zip(prefix, one):
        np.testing.assert_array_equal(a.image.flux, b.image.flux)
        np.testing.assert_array_equal(a.spectrum.flux, b.spectrum.flux)


def test_different_seed_gives_different_galaxies_and_noise():
    a = simulate_galaxies(6, seed=1, workers=1, image_size=32)
    b = simulate_galaxies(6, seed=2, workers=1, image_size=32)
    assert {g.object_id for g in a} != {g.object_id for g in b}
    # The same row under two seeds: same physics, different morphology draw and noise.
    row = int(select_rows(1, seed=1)[0])
    g1 = render_galaxy(recipe_for_row(row), galaxy_rng(1, row), image_size=32)
    g2 = render_galaxy(recipe_for_row(row), galaxy_rng(2, row), image_size=32)
    assert g1.labels["redshift"] == g2.labels["redshift"]
    assert not np.array_equal(g1.image.flux, g2.image.flux)
    assert not np.array_equal(g1.spectrum.flux, g2.spectrum.flux)


def test_any_n_up_to_the_catalogue_size():
    assert len(set(select_rows(10_000, seed=0))) == 10_000
    with pytest.raises(ValueError, match="between 0 and 10000"):
        select_rows(10_001)
    with pytest.raises(ValueError):
        simulate_galaxies(3, workers=0)
    assert simulate_galaxies(0) == []


# --------------------------------------------------------------------------------- records and labels

def test_records_trace_back_to_the_real_sdss_rows(sample):
    with fits.open(str(GST_FITS)) as hdul:
        table = hdul[1].data
        for g in sample:
            row = g.labels["sdss_row"]
            assert g.object_id == f"sdss-gst-{row:05d}"
            assert g.ra == table["RA"][row] and g.dec == table["DEC"][row]
            assert g.labels["redshift"] == pytest.approx(float(table["Z"][row]), rel=1e-6)
            np.testing.assert_array_equal(g.photometry.flux, table["MODELFLUX"][row])
            np.testing.assert_array_equal(g.photometry.ivar, table["MODELFLUX_IVAR"][row])
            assert g.labels["ebv"] == pytest.approx(table["EXTINCTION"][row][2] / 2.751, rel=1e-5)
    assert len({g.object_id for g in sample}) == len(sample)


def test_records_are_valid_with_physical_labels(sample):
    for g in sample:
        assert g.validate() == {"image": 0, "spectrum": 0, "photometry": 0}
        assert g.image.flux.shape == (3, 96, 96) and g.image.bands == ("g", "r", "z")
        assert g.image.pixel_scale == pytest.approx(0.262)
        assert np.all((g.image.psf_fwhm >= 0.6) & (g.image.psf_fwhm < 3.5))
        assert np.all(g.image.ivar[g.image.mask] > 0) and np.all(g.image.ivar[~g.image.mask] == 0)
        np.testing.assert_allclose(g.spectrum.wavelength, DESI_WAVE, rtol=1e-7)  # float32 after validate
        assert len(g.spectrum) == 7781 and np.all(g.spectrum.ivar > 0)
        assert np.all((g.spectrum.lsf_sigma > 0.4) & (g.spectrum.lsf_sigma < 1.2))
        lab = g.labels
        assert all(np.isfinite(v) for v in lab.values())
        assert 0.005 < lab["redshift"] < 0.6
        assert 8.0 < lab["log_stellar_mass"] < 12.8
        assert 0.0 < lab["metallicity"] < 0.06
        assert 0.0 <= lab["sfr_300myr_fraction"] <= lab["sfr_1gyr_fraction"] <= 1.0
        assert 0.0 <= lab["ebv"] < 1.0
        assert 0.0 <= lab["bulge_fraction"] <= 1.0
        assert 0.1 < lab["half_light_radius_arcsec"] < 20.0
        assert 0.1 < lab["axis_ratio"] <= 1.0
        assert 0.0 <= lab["position_angle_deg"] < 180.0
    # Brighter SDSS galaxies give higher-S/N spectra (the noise has a source term and a sky floor).
    snr = [np.median(g.spectrum.flux * np.sqrt(g.spectrum.ivar)) for g in sample]
    assert spearmanr(snr, [g.photometry.flux[2] for g in sample])[0] > 0.7


# ------------------------------------------------------------------------------------------- physics

@pytest.mark.parametrize("rest_wave, min_found", [(6564.61, 20),   # H-alpha (vacuum)
                                                  (4862.68, 5),    # H-beta
                                                  (5008.24, 5)])   # [O III]
def test_emission_lines_land_at_one_plus_z_times_rest_wavelength(with_truth, rest_wave, min_found):
    # The kcorrect templates carry nebular lines (on a ~5.6 A rest-frame grid at H-alpha). In the
    # noise-free spectrum, take the strongest continuum-subtracted peak within +-40 A of where the
    # line should be and its flux-weighted centroid over +-8 A.
    found = 0
    for galaxy, truth in with_truth:
        z = galaxy.labels["redshift"]
        expected = rest_wave * (1 + z)
        if expected > DESI_WAVE[-1] - 60:
            continue
        flux = truth["spectrum"]
        resid = flux - median_filter(flux, 201, mode="nearest")
        window = np.flatnonzero(np.abs(DESI_WAVE - expected) < 40)
        peak = window[np.argmax(resid[window])]
        if resid[peak] < 0.2 * (flux[peak] - resid[peak]):  # no line in this galaxy
            continue
        near = np.abs(DESI_WAVE - DESI_WAVE[peak]) <= 8
        weight = np.clip(resid[near], 0, None)
        centroid = np.sum(DESI_WAVE[near] * weight) / np.sum(weight)
        assert centroid / (1 + z) == pytest.approx(rest_wave, abs=1.0), galaxy.object_id
        found += 1
    assert found >= min_found


def test_image_colours_follow_the_real_sdss_colours(sample):
    # Total flux over the stamp in each band (sky noise on it is < 1%), against the real SDSS
    # MODELFLUX colours of the same galaxies (different filters, so compare by correlation).
    img = np.array([np.where(g.image.mask, g.image.flux, 0).sum(axis=(1, 2)) for g in sample])
    sdss = np.array([g.photometry.flux for g in sample])
    ok = np.all(img > 0, axis=1) & np.all(sdss[:, 1:] > 0, axis=1)
    gr_img, rz_img = -2.5 * np.log10(img[ok, 0] / img[ok, 1]), -2.5 * np.log10(img[ok, 1] / img[ok, 2])
    gr_sdss, rz_sdss = (-2.5 * np.log10(sdss[ok, 1] / sdss[ok, 2]),
                        -2.5 * np.log10(sdss[ok, 2] / sdss[ok, 4]))
    assert ok.sum() > 100
    assert pearsonr(gr_img, gr_sdss)[0] > 0.9
    assert pearsonr(rz_img, rz_sdss)[0] > 0.85
    # DECam r is within ~10% of SDSS r for the same galaxy, whatever its colour.
    ratio = np.median(img[ok, 1] / sdss[ok, 2])
    assert 0.9 < ratio < 1.2


def test_spectrum_through_decam_r_matches_the_image_flux(with_truth):
    # Galaxies whose truncated profiles fit well inside the 25" stamp (the image then holds all
    # the light) and without a simulated dead column.
    rng = np.random.default_rng(0)
    pulls = []
    for galaxy, truth in with_truth:
        if truth["bulge_hlr"] > 1.2 or truth["disk_hlr"] > 2.5 or not galaxy.image.mask.all():
            continue
        spec = galaxy.spectrum
        spec_flux = band_maggies("decam2014-r", spec.flux * 1e-17, DESI_WAVE) * 1e9
        noise = rng.standard_normal((64, len(spec))) / np.sqrt(spec.ivar)
        spec_sigma = np.std(band_maggies("decam2014-r", noise * 1e-17, DESI_WAVE) * 1e9)
        image_flux = galaxy.image.flux[1].sum()
        image_sigma = np.sqrt(np.sum(1.0 / galaxy.image.ivar[1]))
        pulls.append((spec_flux - image_flux) / np.hypot(spec_sigma, image_sigma))
    assert len(pulls) >= 8
    assert np.max(np.abs(pulls)) < 4.0


def test_reddening_curve_reproduces_the_sf11_decam_coefficients():
    # Schlafly & Finkbeiner (2011, Table 6) tabulate A_b / E(B-V)_SFD for a 7000 K source; redden a
    # 7000 K blackbody with our curve and measure the extinction through the DECam filters.
    wave_cm = SED_WAVE * 1e-8
    blackbody = 1.0 / wave_cm**5 / np.expm1(6.62607015e-27 * 2.99792458e10
                                              / (wave_cm * 1.380649e-16 * 7000.0))
    ebv = 0.05
    for band, coefficient in SF11_DECAM.items():
        clean = band_maggies(f"decam2014-{band}", blackbody)
        reddened = band_maggies(f"decam2014-{band}", blackbody * mw_transmission(ebv))
        assert -2.5 * np.log10(reddened / clean) / ebv == pytest.approx(coefficient, rel=0.015), band


def test_composite_half_light_radius_matches_galsim_profiles():
    import galsim

    assert composite_half_light_radius(0.0, 1.0, 2.0) == pytest.approx(2.0, rel=1e-6)
    assert composite_half_light_radius(1.0, 1.0, 2.0) == pytest.approx(1.0, rel=1e-6)
    # Reference: integrate GalSim's own surface brightness of the truncated bulge + disk, 2 pi r I(r).
    bulge_fraction, bulge_hlr, disk_hlr = 0.4, 0.8, 2.5
    profile = galsim.Add([
        galsim.DeVaucouleurs(half_light_radius=bulge_hlr, trunc=8 * bulge_hlr).withFlux(bulge_fraction),
        galsim.Sersic(n=1, half_light_radius=disk_hlr, trunc=4 * disk_hlr).withFlux(1 - bulge_fraction)])
    r = np.concatenate([[0.0], np.geomspace(1e-8, 10.0, 20_000)])  # the de Vaucouleurs cusp needs
    integrand = 2 * np.pi * r * np.array([profile.xValue(galsim.PositionD(x, 0.0)) for x in r])  # log steps
    enclosed = np.concatenate([[0.0], np.cumsum(0.5 * (integrand[1:] + integrand[:-1]) * np.diff(r))])
    assert enclosed[-1] == pytest.approx(1.0, abs=2e-3)  # truncated profiles hold all their flux
    reference = np.interp(0.5 * enclosed[-1], enclosed, r)
    assert composite_half_light_radius(bulge_fraction, bulge_hlr, disk_hlr) == pytest.approx(
        reference, rel=2e-3)


def test_image_sizes_follow_the_size_labels(sample):
    # Radius enclosing half the r-band stamp flux (PSF-convolved, so larger than the label) ranks
    # the galaxies like the intrinsic half-light radius does.
    yy, xx = np.indices((96, 96)) - 47.5
    radius = np.hypot(yy, xx).ravel()
    order = np.argsort(radius)
    measured = []
    for g in sample:
        cumulative = np.cumsum(np.where(g.image.mask[1], g.image.flux[1], 0).ravel()[order])
        measured.append(radius[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])])
    labels = [g.labels["half_light_radius_arcsec"] for g in sample]
    assert spearmanr(measured, labels)[0] > 0.8


# ----------------------------------------------------------------------------------------- MMU output

def test_simulate_survey_writes_readable_mmu_tiles(tmp_path):
    from astroembed.data import mmu  # a broken import must fail this test, not skip it

    path = simulate_survey(6, seed=4, out=tmp_path, image_size=32, workers=1)
    assert path == tmp_path / "astroembed_sim" / "default"
    expected = {g.object_id: g for g in simulate_galaxies(6, seed=4, image_size=32, workers=1)}
    survey = mmu.open_survey(path)
    assert sorted(survey.object_ids) == sorted(expected)
    for g in survey:
        ref = expected[g.object_id]
        np.testing.assert_array_equal(g.image.flux, ref.image.flux)
        np.testing.assert_allclose(g.spectrum.flux, ref.spectrum.flux)
        assert g.labels["redshift"] == pytest.approx(ref.labels["redshift"])
