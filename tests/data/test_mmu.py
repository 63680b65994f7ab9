"""The Multimodal Universe layout: lossless round trip, padding, atomic writes, malformed files."""

import h5py
import numpy as np
import pytest
import torch

from astroembed.data.dataset import MMUDataset
from astroembed.data.healpix import healpix_index
from astroembed.data.info import summarize
from astroembed.data.mmu import MMUSurvey, MMUWriter, find_tiles, write_survey
from astroembed.data.records import Galaxy, Image, InvalidDataError, Photometry, Spectrum


def make_galaxies(n=40, seed=0, image_shape=(3, 8, 8)):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = 30 + (i % 3) * 5  # ragged spectra -> padded SDSS-style
        ivar = rng.uniform(0.5, 2, image_shape).astype(np.float32)
        out.append(Galaxy(
            object_id=f"obj-{i:03d}", ra=float(rng.uniform(0, 360)), dec=float(rng.uniform(-60, 60)),
            image=Image(rng.normal(size=image_shape).astype(np.float32), ("g", "r", "z"), ivar=ivar,
                        mask=rng.random(image_shape) > 0.05, psf_fwhm=rng.uniform(1, 2, 3), pixel_scale=0.262),
            spectrum=Spectrum(rng.normal(size=length).astype(np.float32),
                              np.sort(rng.uniform(3600, 9800, length)), ivar=rng.uniform(0, 3, length),
                              lsf_sigma=rng.uniform(0.5, 1, length)),
            photometry=Photometry(("u", "g", "r", "i", "z"), rng.uniform(1, 100, 5), rng.uniform(0.1, 1, 5)),
            labels={"redshift": float(rng.uniform(0, 0.5)), "morphology": ["spiral", "elliptical"][i % 2],
                    "n_spiral_arms": int(i % 4)}))
    return out


@pytest.fixture
def survey_dir(tmp_path):
    galaxies = make_galaxies()
    write_survey(galaxies, tmp_path, "toy")
    return tmp_path / "toy" / "default", galaxies


def test_hive_layout_one_file_per_healpix_tile(survey_dir):
    path, galaxies = survey_dir
    tiles = find_tiles(path)
    expected = set(healpix_index([g.ra for g in galaxies], [g.dec for g in galaxies]).tolist())
    assert {int(t.parent.name.split("=")[1]) for t in tiles} == expected
    assert all(t.name == "001-of-001.hdf5" for t in tiles)
    for t in tiles:
        with h5py.File(t, "r") as f:
            tile = int(t.parent.name.split("=")[1])
            assert np.all(f["healpix"][:] == tile)
            assert np.all(healpix_index(f["ra"][:], f["dec"][:]) == tile)
            assert f["image_array"].ndim == 4 and f["spectrum_flux"].ndim == 2


def test_round_trip_is_lossless(survey_dir):
    path, galaxies = survey_dir
    survey = MMUSurvey(path)
    assert len(survey) == len(galaxies)
    for original in galaxies:
        back = survey.get(original.object_id)
        assert (back.ra, back.dec) == (original.ra, original.dec)
        for field in ("flux", "ivar", "mask", "psf_fwhm"):
            np.testing.assert_array_equal(getattr(back.image, field), getattr(original.image, field))
        assert back.image.bands == original.image.bands and back.image.pixel_scale == original.image.pixel_scale
        for field in ("flux", "ivar", "mask", "wavelength", "lsf_sigma"):
            np.testing.assert_array_equal(getattr(back.spectrum, field), getattr(original.spectrum, field))
        np.testing.assert_array_equal(back.photometry.flux, original.photometry.flux)
        assert back.labels == original.labels


def test_padding_written_as_minus_one_and_dropped_on_read(survey_dir):
    path, galaxies = survey_dir
    tile = find_tiles(path)[0]
    with h5py.File(tile, "r") as f:
        width = f["spectrum_lambda"].shape[1]
        ids = [i.decode() for i in f["object_id"][:]]
        lam = f["spectrum_lambda"][:]
    for oid, row in zip(ids, lam):
        n = len(next(g for g in galaxies if g.object_id == oid).spectrum)
        assert np.all(row[n:] == -1) and np.all(row[:n] > 0) and width >= n


def test_unknown_object_id_names_it(survey_dir):
    path, _ = survey_dir
    with pytest.raises(InvalidDataError, match="object nope.*unknown object id"):
        MMUSurvey(path).get("nope")


def test_writer_rejects_duplicated_ids_and_mixed_image_shapes(tmp_path):
    galaxies = make_galaxies(3)
    with pytest.raises(InvalidDataError, match="object obj-000.*duplicated"):
        write_survey(galaxies + [galaxies[0]], tmp_path, "dup")
    other = make_galaxies(1, seed=1, image_shape=(3, 4, 4))[0]
    other.object_id = "other"
    with pytest.raises(InvalidDataError, match="object other.*image_array.*one image shape"):
        write_survey(make_galaxies(2) + [other], tmp_path, "mixed")


def test_crash_while_writing_leaves_no_partial_tile(tmp_path):
    galaxies = make_galaxies(10)
    with pytest.raises(RuntimeError):
        with MMUWriter(tmp_path, "crash", buffer_size=2) as writer:
            writer.add(galaxies)
            raise RuntimeError("killed")
    assert not list(tmp_path.rglob("*.hdf5")) and not list(tmp_path.rglob("*.tmp"))


def test_labels_missing_in_some_rows_read_as_missing(tmp_path):
    g1, g2 = make_galaxies(2)
    g1.ra, g1.dec, g2.ra, g2.dec = 10.0, 10.0, 10.0001, 10.0
    del g2.labels["redshift"], g2.labels["morphology"]
    write_survey([g1, g2], tmp_path, "partial")
    survey = MMUSurvey(tmp_path)
    assert "redshift" not in survey.get(g2.object_id).labels or np.isnan(survey.get(g2.object_id).labels["redshift"])
    labels = survey.labels(["redshift"])["redshift"]
    assert np.isnan(labels).sum() == 1


@pytest.mark.parametrize("damage,field", [
    ("empty", None), ("truncated", None), ("drop_object_id", "object_id"),
    ("short_column", "image_array"), ("negative_ivar", "image_ivar"), ("nan_pixels", None)])
def test_malformed_tiles_give_named_errors_or_masking(survey_dir, damage, field):
    path, _ = survey_dir
    tile = find_tiles(path)[0]
    if damage == "empty":
        tile.write_bytes(b"")
    elif damage == "truncated":
        tile.write_bytes(tile.read_bytes()[:2000])
    else:
        with h5py.File(tile, "a") as f:
            if damage == "drop_object_id":
                del f["object_id"]
            elif damage == "short_column":
                data = f["image_array"][:-1]
                del f["image_array"]
                f["image_array"] = data
            elif damage == "negative_ivar":
                f["image_ivar"][0, 0, 0, 0] = -1.0
            elif damage == "nan_pixels":
                f["image_array"][0, 0, :2, :2] = np.nan
    if damage in ("negative_ivar", "nan_pixels"):
        survey = MMUSurvey(tile)
        if damage == "negative_ivar":
            with pytest.raises(InvalidDataError) as info:
                survey.galaxy(0)
            assert str(tile) in str(info.value) and survey.object_ids[0] in str(info.value)
            assert "image_ivar" in str(info.value)
        else:
            g = survey.galaxy(0)
            assert not g.image.mask[0, :2, :2].any() and np.all(g.image.flux[0, :2, :2] == 0)
            sample = MMUDataset(tile)[0]
            assert not sample["image_mask"][0, :2, :2].any() and np.isfinite(sample["image"]).all()
        return
    with pytest.raises(InvalidDataError) as info:
        MMUSurvey(tile)
    assert str(tile) in str(info.value)
    if field:
        assert field in str(info.value)


def test_missing_folder_and_folder_without_tiles(tmp_path):
    with pytest.raises(InvalidDataError, match="no such file"):
        MMUSurvey(tmp_path / "absent")
    with pytest.raises(InvalidDataError, match="no HDF5 tiles"):
        MMUSurvey(tmp_path)


def test_dataset_is_lazy_and_safe_under_worker_processes(survey_dir):
    path, galaxies = survey_dir
    dataset = MMUDataset(path, modalities=("image", "spectrum"), labels=("redshift",))
    assert not dataset.survey._handles  # nothing opened up front
    loader = torch.utils.data.DataLoader(dataset, batch_size=8, num_workers=2, shuffle=True)
    seen = {}
    for batch in loader:
        assert batch["image"].shape[1:] == (3, 8, 8)
        assert batch["spectrum_flux"].shape[1] == dataset.spectrum_length == 40
        for oid, z, flux in zip(batch["object_id"], batch["redshift"], batch["image"]):
            seen[oid] = (float(z), flux.numpy())
    assert sorted(seen) == sorted(g.object_id for g in galaxies)  # every object once, none duplicated
    for g in galaxies:
        z, flux = seen[g.object_id]
        assert z == pytest.approx(g.labels["redshift"], rel=1e-6)
        np.testing.assert_array_equal(flux, g.image.flux)


def test_dataset_masks_spectrum_padding(survey_dir):
    path, galaxies = survey_dir
    dataset = MMUDataset(path, modalities=("spectrum",))
    for i in range(len(dataset)):
        sample = dataset[i]
        n = len(next(g for g in galaxies if g.object_id == sample["object_id"]).spectrum)
        assert not sample["spectrum_mask"][n:].any() and np.all(sample["spectrum_lambda"][n:] == -1)


def test_dataset_rejects_missing_modality_and_label(tmp_path):
    g = make_galaxies(1)[0]
    g.spectrum = None
    write_survey([g], tmp_path, "images_only")
    with pytest.raises(InvalidDataError, match="spectrum"):
        MMUDataset(tmp_path, modalities=("spectrum",))
    with pytest.raises(InvalidDataError, match="label column.*stellar_mass"):
        MMUDataset(tmp_path, labels=("stellar_mass",))


def test_info_counts_modalities_labels_and_invalid_values(survey_dir):
    path, galaxies = survey_dir
    summary = summarize(path)
    assert summary["n_objects"] == len(galaxies)
    assert summary["modalities"] == {"image": 40, "spectrum": 40, "photometry": 40}
    assert summary["image"]["bands"] == [("g", "r", "z")]
    assert summary["photometry"]["bands"] == sorted({tuple(g.photometry.bands) for g in galaxies})
    assert summary["labels"]["morphology"]["classes"] == ["elliptical", "spiral"]
    zs = [g.labels["redshift"] for g in galaxies]
    assert summary["labels"]["redshift"]["min"] == pytest.approx(min(zs))
    expected_masked = sum(int((~g.image.mask).sum()) for g in galaxies)
    assert summary["invalid"]["image_mask False"] == expected_masked
    assert summary["spectrum"]["wavelength_min"] == pytest.approx(min(g.spectrum.wavelength.min() for g in galaxies))


def test_writer_check_refuses_what_add_would_and_changes_nothing(tmp_path):
    def galaxy(oid, size):
        return Galaxy(oid, 150.0, 2.0, image=Image(np.ones((3, size, size), np.float32), ("g", "r", "z")))

    with MMUWriter(tmp_path, survey="s", source="first.fits") as writer:
        writer.check([galaxy("a", 8), galaxy("b", 8)])
        writer.check([galaxy("c", 16)])  # check alone fixes no image shape: a 16-pixel survey is still possible
        writer.add([galaxy("a", 8)])
        with pytest.raises(InvalidDataError, match="object a.*duplicated object id"):
            writer.check([galaxy("z", 8), galaxy("a", 8)])
        with pytest.raises(InvalidDataError, match="object y.*image shape/bands"):
            writer.check([galaxy("y", 16)])
        with pytest.raises(InvalidDataError, match="object x.*duplicated object id"):
            writer.check([galaxy("x", 8), galaxy("x", 8)])
        writer.add([galaxy("z", 8)])  # nothing above was added
    assert sorted(MMUSurvey(tmp_path / "s").object_ids) == ["a", "z"]
