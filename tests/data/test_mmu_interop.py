"""astroembed's tiles read by the Multimodal Universe's reading logic give MMU's meaning of every column.

``mmu_generate_examples`` follows ``_generate_examples`` of MultimodalUniverse/MultimodalUniverse @
2dcff3dd5fb4d5160024bb8c1d8c05ac85676de9: scripts/hsc/hsc.py for images (one dict per band, mask per band) and
scripts/desi/desi.py for spectra (rows as stored: spectrum_mask True = bad pixel). It is the logic of those
builders, reduced to the columns astroembed writes, not astroembed code.
"""

import h5py
import numpy as np
import pytest

from astroembed.data.mmu import MMUSurvey, MMUWriter, find_tiles, write_survey
from astroembed.data.records import Galaxy, Image, Photometry, Spectrum


def mmu_generate_examples(file):
    """MMU's ``_generate_examples`` (hsc.py image part, desi.py spectrum part) on one tile."""
    with h5py.File(file, "r") as data:
        keys = data["object_id"][:]
        sort_index = np.argsort(data["object_id"][:])
        sorted_ids = data["object_id"][:][sort_index]
        for k in keys:
            i = sort_index[np.searchsorted(sorted_ids, k)]
            example = {}
            if "image_array" in data:
                example["image"] = [{"band": data["image_band"][i][j].decode("utf-8"),
                                     "flux": data["image_array"][i][j], "ivar": data["image_ivar"][i][j],
                                     "mask": data["image_mask"][i][j], "psf_fwhm": data["image_psf_fwhm"][i][j],
                                     "scale": data["image_scale"][i][j]}
                                    for j in range(data["image_array"].shape[1])]
            if "spectrum_flux" in data:
                example["spectrum"] = {"flux": data["spectrum_flux"][i], "ivar": data["spectrum_ivar"][i],
                                       "lsf_sigma": data["spectrum_lsf_sigma"][i],
                                       "lambda": data["spectrum_lambda"][i], "mask": data["spectrum_mask"][i]}
            example["object_id"] = str(data["object_id"][i])
            yield str(data["object_id"][i]), example


def galaxy_from_mmu_example(key, example, ra, dec):
    """Back to a record, reading the example with MMU's meaning: spectrum mask True = bad, lambda -1 = padding."""
    g = Galaxy(key, ra, dec)
    if "image" in example:
        bands = example["image"]
        g.image = Image(np.stack([b["flux"] for b in bands]), tuple(b["band"] for b in bands),
                        ivar=np.stack([b["ivar"] for b in bands]), mask=np.stack([b["mask"] for b in bands]),
                        psf_fwhm=[b["psf_fwhm"] for b in bands], pixel_scale=float(bands[0]["scale"]))
    if "spectrum" in example:
        sp = example["spectrum"]
        keep = sp["lambda"] > 0
        g.spectrum = Spectrum(sp["flux"][keep], sp["lambda"][keep], ivar=sp["ivar"][keep], mask=~sp["mask"][keep],
                              lsf_sigma=sp["lsf_sigma"][keep])
    g.validate()
    return g


def make_galaxies(n=12, seed=0, ids=None):
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        length = 20 + 7 * (i % 3)  # ragged spectra: padded when written
        image_mask = rng.random((2, 6, 6)) > 0.1
        spectrum_mask = rng.random(length) > 0.2
        out.append(Galaxy(
            ids[i] if ids else str(39627000000000000 + i), float(rng.uniform(150, 151)), float(rng.uniform(2, 3)),
            image=Image(rng.normal(size=(2, 6, 6)).astype(np.float32), ("des-g", "des-r"),
                        ivar=rng.uniform(0.5, 2, (2, 6, 6)).astype(np.float32), mask=image_mask,
                        psf_fwhm=rng.uniform(1, 2, 2), pixel_scale=0.262),
            spectrum=Spectrum(rng.normal(size=length).astype(np.float32), 3600 + 0.8 * np.arange(length),
                              ivar=rng.uniform(0.1, 3, length), mask=spectrum_mask,
                              lsf_sigma=rng.uniform(0.5, 1, length)),
            photometry=Photometry(("g", "r"), rng.uniform(1, 10, 2), rng.uniform(0.1, 1, 2)),
            labels={"Z": float(rng.uniform(0, 1)), "SPECTYPE": ["GALAXY", "QSO"][i % 2], "ZWARN": i % 3}))
    return out


def test_written_columns_have_mmu_dtypes_polarity_and_padding(tmp_path):
    galaxies = make_galaxies()
    with MMUWriter(tmp_path, "ours", buffer_size=2) as writer:  # later batches widen the spectrum columns
        writer.add(galaxies)
    by_id = {g.object_id: g for g in galaxies}
    for tile in find_tiles(tmp_path / "ours"):
        with h5py.File(tile, "r") as f:
            assert f["object_id"].dtype == np.int64  # decimal ids: int64 like DESI's TARGETID
            assert h5py.check_string_dtype(f["image_band"].dtype).length is not None  # fixed-length UTF-8
            assert h5py.check_string_dtype(f["SPECTYPE"].dtype).length is not None
            width = f["spectrum_flux"].shape[1]
            for row, oid in enumerate(f["object_id"][:]):
                sp = by_id[str(oid)].spectrum
                n = len(sp)
                np.testing.assert_array_equal(f["spectrum_mask"][row, :n], ~sp.mask)  # True = bad
                # SDSS-style padding (scripts/sdss/build_parent_sample.py): lambda -1, flux and lsf from the edge,
                # ivar 0, mask True.
                assert np.all(f["spectrum_lambda"][row, n:] == -1) and np.all(f["spectrum_ivar"][row, n:] == 0)
                assert np.all(f["spectrum_mask"][row, n:])
                np.testing.assert_array_equal(f["spectrum_flux"][row, n:], np.full(width - n, sp.flux[-1]))
                np.testing.assert_array_equal(f["spectrum_lsf_sigma"][row, n:], np.full(width - n, sp.lsf_sigma[-1]))
            assert "astroembed_conventions" in f.attrs


def test_text_ids_are_fixed_length_utf8(tmp_path):
    galaxies = make_galaxies(3, ids=["1234p056-0", "1234p056-1", "ngc-é"])
    paths = write_survey(galaxies, tmp_path, "ours")
    for path in paths:
        with h5py.File(path, "r") as f:
            info = h5py.check_string_dtype(f["object_id"].dtype)
            stored = [v.decode("utf-8") for v in f["object_id"][:]]
            assert info.encoding == "utf-8" and info.length == max(len(v.encode()) for v in stored)
    assert sorted(MMUSurvey(tmp_path / "ours").object_ids) == sorted(g.object_id for g in galaxies)


def test_round_trip_through_mmu_reading_logic_loses_nothing(tmp_path):
    galaxies = make_galaxies()
    write_survey(galaxies, tmp_path, "ours")
    survey = MMUSurvey(tmp_path / "ours")
    seen = 0
    for tile in find_tiles(tmp_path / "ours"):
        for key, example in mmu_generate_examples(tile):
            original = survey.get(key)  # ids come back as MMU's readers print them
            back = galaxy_from_mmu_example(key, example, original.ra, original.dec)
            source = next(g for g in galaxies if g.object_id == key)
            for field in ("flux", "ivar", "mask", "psf_fwhm"):
                np.testing.assert_array_equal(getattr(back.image, field), getattr(source.image, field))
            assert back.image.bands == source.image.bands
            for field in ("flux", "ivar", "mask", "wavelength", "lsf_sigma"):
                np.testing.assert_array_equal(getattr(back.spectrum, field), getattr(source.spectrum, field))
            # and astroembed's own reader agrees with MMU's logic
            np.testing.assert_array_equal(original.spectrum.mask, back.spectrum.mask)
            seen += 1
    assert seen == len(galaxies)


def test_datasets_load_dataset_reads_our_survey_with_mmu_polarity(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    if int(datasets.__version__.split(".")[0]) >= 4:
        pytest.skip("datasets >= 4 no longer runs loading scripts (MMU's included)")
    monkeypatch.setattr(datasets.config, "HF_MODULES_CACHE", tmp_path / "modules")  # not in ~/.cache
    galaxies = make_galaxies()
    write_survey(galaxies, tmp_path / "root", "ours")
    assert (tmp_path / "root" / "ours" / "ours.py").is_file()
    loaded = datasets.load_dataset(str(tmp_path / "root" / "ours"), "default", trust_remote_code=True,
                                   cache_dir=str(tmp_path / "cache"), split="train")
    assert len(loaded) == len(galaxies)
    by_id = {g.object_id: g for g in galaxies}
    for row in loaded.with_format("numpy"):
        g = by_id[row["object_id"]]
        n = len(g.spectrum)
        mask = np.asarray(row["spectrum"]["mask"])
        np.testing.assert_array_equal(mask[:n], ~g.spectrum.mask)  # MMU's polarity: True = bad pixel
        assert mask[n:].all()
        np.testing.assert_array_equal(np.asarray(row["spectrum"]["flux"])[:n], g.spectrum.flux)
        np.testing.assert_array_equal(np.stack(row["image"]["flux"]), g.image.flux)
        np.testing.assert_array_equal(np.stack(row["image"]["mask"]), g.image.mask)
        assert list(row["image"]["band"]) == list(g.image.bands)
        np.testing.assert_allclose(row["photometry"]["flux"], g.photometry.flux)
        assert row["SPECTYPE"] == g.labels["SPECTYPE"] and row["ZWARN"] == g.labels["ZWARN"]
        assert row["Z"] == pytest.approx(g.labels["Z"])


def test_a_loading_script_astroembed_did_not_write_is_kept(tmp_path):
    folder = tmp_path / "desi"
    folder.mkdir()
    (folder / "desi.py").write_text("# MMU's own DESI loading script\n")
    write_survey(make_galaxies(2), tmp_path, "desi")
    assert (folder / "desi.py").read_text() == "# MMU's own DESI loading script\n"
    write_survey(make_galaxies(2), tmp_path, "ours")
    assert "Written by astroembed" in (tmp_path / "ours" / "ours.py").read_text()
