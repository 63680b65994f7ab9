"""Tiles written the way the Multimodal Universe writes them read with MMU's meaning of every column.

The tiles in ../shared/data/mmu_style follow MultimodalUniverse/MultimodalUniverse @ 2dcff3dd,
scripts/<survey>/build_parent_sample.py. References below are computed from the raw HDF5 columns by hand,
not through astroembed's conventions module.
"""

import shutil

import h5py
import numpy as np
import pytest

from astroembed.data.crossmatch import join_surveys
from astroembed.data.dataset import MMUDataset
from astroembed.data.mmu import MMUSurvey, write_survey
from astroembed.data.records import Galaxy, InvalidDataError, Photometry, Spectrum

TILE = "healpix=373/001-of-001.hdf5"
CONFIGS = {"legacysurvey": "dr10_south_21", "hsc": "pdr3_dud_22.5", "desi": "dr1_main", "sdss": "sdss"}


@pytest.fixture(scope="module")
def mmu(shared_data):
    root = shared_data / "mmu_style"
    if not root.is_dir():
        pytest.skip(f"MMU-style tiles not found at {root}")
    return root


def raw(root, survey):
    with h5py.File(root / survey / CONFIGS[survey] / TILE, "r") as f:
        return {k: f[k][:] for k in f.keys()}


def copy_tile(root, survey, dest, as_survey=None):
    """A writable copy of one tile, in the hive layout under survey folder ``as_survey``."""
    target = dest / (as_survey or survey) / CONFIGS[survey] / TILE
    target.parent.mkdir(parents=True)
    shutil.copy(root / survey / CONFIGS[survey] / TILE, target)
    target.chmod(0o644)
    return target


def test_desi_spectrum_mask_true_is_bad_and_lsf_pixels_become_angstrom(mmu):
    cols = raw(mmu, "desi")
    survey = MMUSurvey(mmu / "desi")
    dataset = MMUDataset(mmu / "desi", modalities=("spectrum",))
    for i in range(len(survey)):
        g = survey.galaxy(i)
        # MMU: spectrum_mask = (mask > 0) | (ivar < 1e-6), True = bad. Good pixels = the others.
        expected_good = ~cols["spectrum_mask"][i]
        np.testing.assert_array_equal(g.spectrum.mask, expected_good)
        assert g.spectrum.mask.sum() == 7781 - cols["spectrum_mask"][i].sum() > 7700
        np.testing.assert_array_equal(dataset[i]["spectrum_mask"], expected_good)
        # DESI's grid is linear, 0.8 A per pixel: sigma_A = sigma_pix * 0.8 (to the float32 lambdas' 1e-3).
        np.testing.assert_allclose(g.spectrum.lsf_sigma, cols["spectrum_lsf_sigma"][i] * 0.8, rtol=1e-3)
        np.testing.assert_allclose(dataset[i]["spectrum_lsf_sigma"], cols["spectrum_lsf_sigma"][i] * 0.8,
                                   rtol=1e-3)
        assert str(cols["object_id"][i]) == g.object_id


def test_sdss_padding_lsf_and_spectrophotometry(mmu):
    cols = raw(mmu, "sdss")
    survey = MMUSurvey(mmu / "sdss")
    dataset = MMUDataset(mmu / "sdss", modalities=("spectrum", "photometry"))
    assert (cols["spectrum_lambda"] < 0).any()  # the tile has MMU-style padding to read
    for i in range(len(survey)):
        g, sample = survey.galaxy(i), dataset[i]
        n = int((cols["spectrum_lambda"][i] > 0).sum())
        assert len(g.spectrum) == n
        np.testing.assert_array_equal(g.spectrum.mask, ~cols["spectrum_mask"][i][:n])
        assert not sample["spectrum_mask"][n:].any()  # padding (stored mask True, flux edge-copied) unusable
        lam = cols["spectrum_lambda"][i][:n].astype(np.float64)
        # log-linear grid, 1e-4 dex: a pixel is lambda * ln(10) * 1e-4 Angstrom wide.
        np.testing.assert_allclose(g.spectrum.lsf_sigma, cols["spectrum_lsf_sigma"][i][:n] * lam * np.log(10) * 1e-4,
                                   rtol=2e-3)
        assert g.photometry.bands == tuple("ugriz")
        np.testing.assert_allclose(g.photometry.flux, cols["SPECTROFLUX"][i])
        np.testing.assert_allclose(sample["photometry_flux"], cols["SPECTROFLUX"][i])


def test_legacysurvey_per_object_mask_is_broadcast_in_both_readers(mmu):
    cols = raw(mmu, "legacysurvey")
    survey = MMUSurvey(mmu / "legacysurvey")
    dataset = MMUDataset(mmu / "legacysurvey", modalities=("image", "photometry"))
    assert cols["image_mask"].ndim == 3  # (N, H, W): one mask for every band
    for i in range(len(survey)):
        g, sample = survey.galaxy(i), dataset[i]
        expected = np.repeat(cols["image_mask"][i][None], 4, axis=0) & (cols["image_ivar"][i] > 0)
        np.testing.assert_array_equal(g.image.mask, expected)
        np.testing.assert_array_equal(sample["image_mask"], expected)
        assert g.image.bands == ("des-g", "des-r", "des-i", "des-z")
        assert g.object_id == cols["object_id"][i].decode()
        assert g.photometry.bands == ("g", "r", "i", "z", "W1", "W2", "W3", "W4")
        np.testing.assert_allclose(g.photometry.flux, [cols[f"FLUX_{b}"][i] for b in
                                                       ("G", "R", "I", "Z", "W1", "W2", "W3", "W4")])
        assert g.labels["TYPE"] == cols["TYPE"][i].decode() and g.labels["EBV"] == pytest.approx(cols["EBV"][i])
    for array_column in ("image_rgb", "blobmodel", "object_mask", "catalog_FLUX_G"):
        assert array_column in survey.array_columns and array_column not in survey.label_columns
        assert array_column not in survey.galaxy(0).labels
    np.testing.assert_array_equal(survey.arrays(1)["image_rgb"], cols["image_rgb"][1])


def test_hsc_magnitudes_become_nanomaggies_and_zero_psf_is_unknown(mmu, tmp_path):
    cols = raw(mmu, "hsc")
    tile = copy_tile(mmu, "hsc", tmp_path)
    with h5py.File(tile, "a") as f:  # what MMU's nan_to_num makes of a missing PSF moment, and of var = 0
        f["image_psf_fwhm"][0, 2] = 0.0
        f["image_ivar"][0, 1, 5, 7] = np.nan_to_num(np.float32(np.inf))  # 1 / var for var = 0
    survey = MMUSurvey(tile)
    g, sample = survey.galaxy(0), MMUDataset(tile)[0]
    assert np.isnan(g.image.psf_fwhm[2]) and np.all(g.image.psf_fwhm[[0, 1, 3, 4]] > 0)
    assert np.isnan(sample["psf_fwhm"][2])
    assert g.image.ivar[1, 5, 7] == 0 == sample["image_ivar"][1, 5, 7]
    assert not g.image.mask[1, 5, 7] and not sample["image_mask"][1, 5, 7]
    assert g.image.mask.shape == (5, 160, 160)
    expected = cols["image_mask"][0] & (cols["image_ivar"][0] > 0)
    expected[1, 5, 7] = False
    np.testing.assert_array_equal(g.image.mask, expected)
    # AB magnitude m -> 10**((22.5 - m) / 2.5) nanomaggies (m = 22.5 is 1 nanomaggy).
    mags = np.array([cols[f"{b}_cmodel_mag"][0] for b in "grizy"], np.float64)
    np.testing.assert_allclose(g.photometry.flux, 10 ** ((22.5 - mags) / 2.5), rtol=1e-6)
    assert g.photometry.bands == tuple("grizy")


def test_unknown_origin_needs_the_polarity_option(mmu, tmp_path):
    tile = copy_tile(mmu, "desi", tmp_path, as_survey="someone_elses")
    survey = MMUSurvey(tile.parents[2])
    with pytest.raises(InvalidDataError, match=r"field 'spectrum_mask'.*spectrum_mask='bad' or 'good'"):
        survey.galaxy(0)
    stored = raw(mmu, "desi")["spectrum_mask"][0]
    as_bad = MMUSurvey(tile.parents[2], spectrum_mask="bad").galaxy(0)
    np.testing.assert_array_equal(as_bad.spectrum.mask, ~stored)
    assert np.isnan(as_bad.spectrum.lsf_sigma).all()  # unit unknown: not guessed
    as_good = MMUSurvey(tile.parents[2], spectrum_mask="good", lsf_sigma_unit="pixel").galaxy(0)
    np.testing.assert_array_equal(as_good.spectrum.mask, stored & (raw(mmu, "desi")["spectrum_ivar"][0] > 0))
    sample = MMUDataset(tile, modalities=("spectrum",), spectrum_mask="bad")[0]
    np.testing.assert_array_equal(sample["spectrum_mask"], ~stored)
    with pytest.raises(ValueError, match="spectrum_mask must be one of"):
        MMUSurvey(tile, spectrum_mask=True)


def test_tiles_written_by_astroembed_before_the_conventions_keep_their_meaning(tmp_path):
    """An old astroembed tile: variable-length string ids, no attribute, spectrum_mask True = good, and its
    padding style (lambda -1, flux 0, ivar 0, mask False, lsf NaN)."""
    tile = tmp_path / "old" / "default" / TILE
    tile.parent.mkdir(parents=True)
    good = np.array([True, False, True, True])
    with h5py.File(tile, "w") as f:
        f["object_id"] = np.array(["a"], dtype=object).astype(h5py.string_dtype())
        f["ra"], f["dec"], f["healpix"] = [10.0], [10.0], [0]
        f["spectrum_flux"] = np.array([[1.0, 2, 3, 4, 0]], np.float32)
        f["spectrum_ivar"] = np.array([[1.0, 1, 1, 1, 0]], np.float32)
        f["spectrum_lambda"] = np.array([[4000.0, 4001, 4002, 4003, -1]])
        f["spectrum_mask"] = np.append(good, False)[None]
        f["spectrum_lsf_sigma"] = np.array([[0.7, 0.7, 0.7, 0.7, np.nan]], np.float32)
    g = MMUSurvey(tile).galaxy(0)
    np.testing.assert_array_equal(g.spectrum.mask, good)
    np.testing.assert_allclose(g.spectrum.lsf_sigma, 0.7)
    np.testing.assert_array_equal(g.spectrum.flux, [1, 2, 3, 4])
    sample = MMUDataset(tile, modalities=("spectrum",))[0]
    np.testing.assert_array_equal(sample["spectrum_mask"], np.append(good, False))
    assert sample["spectrum_lambda"][-1] == -1 and sample["spectrum_lsf_sigma"][-1] == 0


def test_join_our_survey_with_mmu_parent_samples_fills_each_modality_once(mmu, tmp_path):
    desi, sdss = raw(mmu, "desi"), raw(mmu, "sdss")
    ours = [Galaxy(f"ours-{i}", float(ra) + 0.3 / 3600, float(dec),
                   photometry=Photometry(("g", "r"), [1.0 + i, 2.0], [4.0, 4.0]), labels={"Z": 0.1 * i})
            for i, (ra, dec) in enumerate(zip(desi["ra"], desi["dec"]))]
    ours.append(Galaxy("ours-far", 20.0, -30.0, spectrum=Spectrum(np.ones(5), np.arange(5) + 5000.0)))
    write_survey(ours, tmp_path, "ours")
    partners = [(name, MMUSurvey(mmu / name)) for name in ("legacysurvey", "desi", "sdss")]
    joined = {g.object_id: g for g in join_surveys(MMUSurvey(tmp_path / "ours"), partners)}
    assert len(joined) == 4
    for i in range(3):
        g = joined[f"ours-{i}"]
        assert g.photometry.bands == ("g", "r") and g.photometry.flux[0] == 1.0 + i  # ours, not overwritten
        assert g.labels["photometry_source"] == "self"
        assert g.labels["image_source"] == "legacysurvey" and g.image.shape == (4, 160, 160)
        assert g.labels["spectrum_source"] == "desi" and len(g.spectrum) == 7781  # first partner wins
        np.testing.assert_array_equal(g.spectrum.mask, ~desi["spectrum_mask"][i])
        assert g.labels["desi_id"] == str(desi["object_id"][i]) and g.labels["sdss_id"] == str(sdss["object_id"][i])
        assert g.labels["Z"] == pytest.approx(0.1 * i) and g.labels["desi_Z"] == pytest.approx(desi["Z"][i])
        assert g.labels["desi_separation_arcsec"] == pytest.approx(0.3 * np.cos(np.radians(desi["dec"][i])), rel=1e-3)
    far = joined["ours-far"]
    assert far.image is None and far.labels["spectrum_source"] == "self" and "desi_id" not in far.labels
    # the multimodal records are a survey of their own
    write_survey(joined.values(), tmp_path, "joined")
    back = MMUSurvey(tmp_path / "joined").get("ours-1")
    np.testing.assert_array_equal(back.spectrum.mask, ~desi["spectrum_mask"][1])
    assert back.image.bands == ("des-g", "des-r", "des-i", "des-z") and back.labels["legacysurvey_TYPE"]


def test_catalogue_embedding_reads_spectrum_masks_with_the_tile_polarity(mmu, tmp_path):
    """The embedding runner reads tiles in blocks (embed.tile_reader.read_rows), not through MMUDataset."""
    from astroembed.embed.plan import plan_tiles
    from astroembed.embed.tile_reader import read_rows

    cols = raw(mmu, "sdss")
    job = plan_tiles(mmu / "sdss", tmp_path / "emb")[0]
    with h5py.File(job.tile, "r") as f:
        batch = read_rows(f, job, "spectrum", 0, 3)
    flux, ivar, wavelength, mask = batch["inputs"]
    padding = cols["spectrum_lambda"] < 0
    np.testing.assert_array_equal(mask, ~cols["spectrum_mask"] & ~padding & (cols["spectrum_ivar"] > 0))
