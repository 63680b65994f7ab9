"""Writing into a survey that exists: every object kept, ids unique across the survey, atomic tile merges."""

import hashlib
import threading

import h5py
import numpy as np
import pytest
from typer.testing import CliRunner

from astroembed.cli import app
from astroembed.data.healpix import healpix_index
from astroembed.data.mmu import MMUSurvey, MMUWriter, find_tiles, tile_path, write_survey
from astroembed.data.records import Galaxy, InvalidDataError, Photometry

from tests.data.test_mmu import make_galaxies


def _same_tile(galaxies, ra=150.0, dec=2.0):
    """Move every galaxy within a few arcsec of (ra, dec): one nside-16 tile, so later writes merge into it."""
    for i, g in enumerate(galaxies):
        g.ra, g.dec = ra + 1e-3 * i, dec
    return galaxies


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_same(back, original):
    np.testing.assert_array_equal(back.image.flux, original.image.flux)
    np.testing.assert_array_equal(back.image.ivar, original.image.ivar)
    np.testing.assert_array_equal(back.spectrum.wavelength, original.spectrum.wavelength)
    np.testing.assert_array_equal(back.spectrum.flux, original.spectrum.flux)
    np.testing.assert_array_equal(back.photometry.flux, original.photometry.flux)
    assert back.labels == original.labels


def test_second_write_into_a_tile_keeps_every_object(tmp_path):
    galaxies = _same_tile(make_galaxies(12))
    # The second batch has longer spectra than any in the tile (the padded width must grow) and a new label.
    for g in galaxies[7:]:
        g.spectrum.flux = np.concatenate([g.spectrum.flux, g.spectrum.flux])
        g.spectrum.ivar = np.concatenate([g.spectrum.ivar, g.spectrum.ivar])
        g.spectrum.lsf_sigma = np.concatenate([g.spectrum.lsf_sigma, g.spectrum.lsf_sigma])
        g.spectrum.mask = None
        g.spectrum.wavelength = np.linspace(3600, 9800, len(g.spectrum.flux))
        g.labels["snr"] = 12.5
    write_survey(galaxies[:7], tmp_path, "toy")
    write_survey(galaxies[7:], tmp_path, "toy")
    assert len(find_tiles(tmp_path / "toy")) == 1
    survey = MMUSurvey(tmp_path / "toy")
    assert sorted(survey.object_ids) == sorted(g.object_id for g in galaxies)
    for g in galaxies:
        back = survey.get(g.object_id)
        g.validate()
        if "snr" not in g.labels:  # rows written before the label existed read it as missing
            assert np.isnan(back.labels.pop("snr"))
        _assert_same(back, g)


def test_an_id_already_in_the_survey_is_an_error_naming_it_and_its_tile(tmp_path):
    galaxies = _same_tile(make_galaxies(4))
    tiles = write_survey(galaxies[:3], tmp_path, "toy")
    before = _digest(tiles[0])
    with pytest.raises(InvalidDataError, match=r"object obj-001.*already in the survey.*healpix="):
        write_survey([galaxies[3], galaxies[1]], tmp_path, "toy")
    assert _digest(tiles[0]) == before and not list(tmp_path.rglob("*.tmp"))


def test_a_crash_during_a_merge_leaves_the_old_tile_intact(tmp_path):
    galaxies = _same_tile(make_galaxies(10))
    tile = write_survey(galaxies[:4], tmp_path, "toy")[0]
    before = _digest(tile)

    def crashing():
        yield from galaxies[4:9]  # buffer_size=2: two merges into the tile's copy are flushed first
        raise RuntimeError("killed mid-merge")

    with pytest.raises(RuntimeError, match="killed"):
        with MMUWriter(tmp_path, "toy", buffer_size=2) as writer:
            writer.add(crashing())
    assert _digest(tile) == before and not list(tmp_path.rglob("*.tmp"))
    assert sorted(MMUSurvey(tmp_path / "toy").object_ids) == [g.object_id for g in galaxies[:4]]


def test_if_exists_error_refuses_and_writes_nothing(tmp_path):
    galaxies = _same_tile(make_galaxies(3))
    tile = write_survey(galaxies[:2], tmp_path, "toy")[0]
    before = _digest(tile)
    with pytest.raises(InvalidDataError, match=r"toy/default: a survey is already here \(2 objects in 1 tiles\)"):
        write_survey(galaxies[2:], tmp_path, "toy", if_exists="error")
    assert _digest(tile) == before
    with pytest.raises(ValueError, match="if_exists must be one of"):
        write_survey(galaxies[2:], tmp_path, "other", if_exists="replace")


def test_appended_images_must_match_the_survey_shape(tmp_path):
    write_survey(_same_tile(make_galaxies(2)), tmp_path, "toy")
    other = _same_tile(make_galaxies(1, seed=1, image_shape=(3, 4, 4)))[0]
    other.object_id = "other"
    with pytest.raises(InvalidDataError, match="object other.*image_array.*one image shape"):
        write_survey([other], tmp_path, "toy")


def test_appending_to_a_tile_of_another_writer_rebuilds_fixed_columns(tmp_path):
    """Contiguous (non-growable) columns and fixed-length byte ids, as other MMU writers store them."""
    ra, dec = 150.0, 2.0
    hp = int(healpix_index(ra, dec)[0])
    path = tile_path(tmp_path, "foreign", "default", hp)
    path.parent.mkdir(parents=True)
    with h5py.File(path, "w") as f:
        f["object_id"] = np.array([b"a1", b"a2"], dtype="S2")
        f["ra"] = np.array([ra, ra + 1e-3])
        f["dec"] = np.array([dec, dec])
        f["z"] = np.array([0.1, 0.2])  # no healpix column: readers derive it from ra/dec
    newcomer = Galaxy("a-much-longer-id", ra + 2e-3, dec, photometry=Photometry(("g", "r"), [1.0, 2.0]),
                      labels={"z": 0.3})
    write_survey([newcomer], tmp_path, "foreign")
    survey = MMUSurvey(tmp_path / "foreign")
    assert survey.object_ids.tolist() == ["a1", "a2", "a-much-longer-id"]
    assert survey.healpix.tolist() == [hp, hp, hp]
    np.testing.assert_array_equal(survey.labels(["z"])["z"], [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(survey.get("a-much-longer-id").photometry.flux, [1.0, 2.0])
    assert survey.get("a1").photometry is None


def _catalogue(path, prefix, n, z0):
    rows = [f"{prefix}{i},{150 + 1e-3 * i:.4f},2.0,{z0 + 0.01 * i:.2f}" for i in range(n)]
    path.write_text("object_id,ra,dec,redshift\n" + "\n".join(rows) + "\n")
    return path


def test_two_converts_into_one_output_keep_every_object(tmp_path):
    first = _catalogue(tmp_path / "first.csv", "a", 5, 0.1)
    second = _catalogue(tmp_path / "second.csv", "b", 4, 0.5)
    out = tmp_path / "out"
    runner = CliRunner()
    for csv in (first, second):
        result = runner.invoke(app, ["convert", str(csv), "--out", str(out), "--survey", "cat"])
        assert result.exit_code == 0, result.output
    survey = MMUSurvey(out / "cat")
    assert sorted(survey.object_ids) == [f"a{i}" for i in range(5)] + [f"b{i}" for i in range(4)]
    redshift = dict(zip(survey.object_ids.tolist(), survey.labels(["redshift"])["redshift"].tolist()))
    assert redshift["a3"] == pytest.approx(0.13) and redshift["b2"] == pytest.approx(0.52)

    # Converting the first file again: one line naming the id, and the survey is as it was.
    tile = find_tiles(out / "cat")[0]
    before = _digest(tile)
    result = runner.invoke(app, ["convert", str(first), "--out", str(out), "--survey", "cat"])
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "object a0" in result.stderr and "already in the survey" in result.stderr
    assert _digest(tile) == before

    result = runner.invoke(app, ["convert", str(first), "--out", str(out), "--survey", "cat", "--if-exists", "error"])
    assert result.exit_code == 2 and "a survey is already here (9 objects" in result.stderr


@pytest.mark.skipif(not hasattr(__import__("os"), "fork"), reason="flock is POSIX only")
def test_concurrent_writers_take_turns_and_lose_nothing(tmp_path):
    """Two writers into one tile at once: without the lock both copy the empty survey and the second
    rename drops the first one's objects."""
    galaxies = _same_tile(make_galaxies(6))
    first = MMUWriter(tmp_path, "toy")  # holds the survey's write lock until it closes
    first.add(galaxies[:3])
    finished = threading.Event()

    def second_writer():
        write_survey(galaxies[3:], tmp_path, "toy")
        finished.set()

    thread = threading.Thread(target=second_writer)
    thread.start()
    assert not finished.wait(1.0)  # waiting for the lock, not copying the tile
    first.close()
    thread.join(60)
    assert finished.is_set()
    assert sorted(MMUSurvey(tmp_path / "toy").object_ids) == sorted(g.object_id for g in galaxies)
    assert not list((tmp_path / "toy" / "default").glob(".astroembed-write.lock"))  # removed when released


def test_check_refuses_what_add_would_refuse_before_anything_is_written(tmp_path):
    """convert checks a whole file with MMUWriter.check before adding it, so it can skip the file."""
    galaxies = _same_tile(make_galaxies(4))
    write_survey(galaxies[:3], tmp_path, "toy")
    with MMUWriter(tmp_path, survey="toy") as writer:
        writer.check([galaxies[3]])  # a new id passes
        with pytest.raises(InvalidDataError, match=r"object obj-001.*already in the survey"):
            writer.check([galaxies[3], galaxies[1]])
        writer.add([galaxies[3]])
    assert sorted(MMUSurvey(tmp_path / "toy" / "default").object_ids) == [g.object_id for g in galaxies]
