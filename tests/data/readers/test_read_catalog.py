"""Catalogue reader on the two real catalogues; FITS and Parquet copies read the same."""

import numpy as np
import pandas as pd
import pytest
from astropy.table import Table

from astroembed.data.readers import ReaderWarning, read_catalog


def test_sdss_csv_magnitudes_to_nanomaggies(shared_data):
    path = shared_data / "catalogs" / "sdss_star_galaxy_qso_1000.csv"
    with pytest.warns(ReaderWarning, match="masked 5 non-finite values .* in 1 of 1000"):
        records = read_catalog(path)
    table = pd.read_csv(path)
    assert len(records) == 1000
    g = records[1]
    assert g.object_id == "sdss_star_galaxy_qso_1000-1"
    assert g.photometry.bands == ("u", "g", "r", "i", "z")
    # 22.5 AB mag is 1 nanomaggy; each magnitude is a factor 10**0.4.
    expect = np.array([10 ** ((22.5 - table[b][1]) / 2.5) for b in "ugriz"])
    np.testing.assert_allclose(g.photometry.flux, expect, rtol=1e-6)
    assert g.labels == {"specClass": int(table.specClass[1]), "redshift": pytest.approx(table.redshift[1]),
                        "zerr": pytest.approx(table.zerr[1])}
    # The row with -9999 sentinel magnitudes is kept, its fluxes masked (ivar 0).
    bad = int(np.flatnonzero((table[list("ugriz")] < -100).any(axis=1))[0])
    assert np.all(records[bad].photometry.ivar == 0)
    classes = {r.labels["specClass"] for r in records}
    assert classes == {1, 2, 3}


def test_mlz_text_catalogue(shared_data):
    path = shared_data / "catalogs" / "mlz" / "SDSS_MGS.train"
    records = read_catalog(path)
    raw = np.loadtxt(path)  # columns zs u g r i z u-g g-r r-i i-z eu eg er ei ez eu-g eg-r er-i ei-z
    assert len(records) == raw.shape[0] == 5000
    np.testing.assert_allclose([r.labels["zs"] for r in records], raw[:, 0])
    assert set(records[0].labels) == {"zs"}  # colours derive from the magnitudes: not labels
    g = records[0]
    mag, err = raw[0, 1:6], raw[0, 10:15]
    # ivar against a finite-difference error: sigma_f ~ (f(m - dm) - f(m + dm)) / 2.
    f = lambda m: 10 ** (-0.4 * (m - 22.5))  # noqa: E731
    sigma = (f(mag - err) - f(mag + err)) / 2
    np.testing.assert_allclose(g.photometry.ivar, 1 / sigma**2, rtol=2e-3)
    np.testing.assert_allclose(g.photometry.flux, f(mag), rtol=1e-6)


@pytest.mark.parametrize("fmt", ["fits", "parquet"])
def test_fits_and_parquet_copies_match_csv(shared_data, tmp_path, fmt):
    src = shared_data / "catalogs" / "sdss_star_galaxy_qso_1000.csv"
    table = pd.read_csv(src).iloc[:50]
    table.insert(0, "objID", np.arange(50) + 1237650000000000000)
    table["ra"], table["dec"] = np.linspace(0, 359, 50), np.linspace(-80, 80, 50)
    path = tmp_path / f"cat.{fmt}"
    if fmt == "fits":
        Table.from_pandas(table).write(path)
    else:
        table.to_parquet(path)
    records = read_catalog(path)
    assert [r.object_id for r in records] == [str(i) for i in table.objID]
    np.testing.assert_allclose([r.ra for r in records], table.ra)
    np.testing.assert_allclose([r.photometry.flux[2] for r in records], 10 ** ((22.5 - table.r) / 2.5), rtol=1e-6)
    assert set(records[0].labels) == {"specClass", "redshift", "zerr"}


def test_explicit_columns(shared_data, tmp_path):
    path = tmp_path / "cat.csv"
    pd.DataFrame({"name": ["a", "b"], "FLUX_G": [1.0, 2.0], "FLUX_IVAR_G": [4.0, 9.0],
                  "FLUX_W1": [3.0, 4.0], "z_spec": [0.1, 0.2], "note": ["x", "y"]}).to_csv(path, index=False)
    records = read_catalog(path, label_columns=["z_spec"])
    assert [r.object_id for r in records] == ["a", "b"]
    assert records[1].photometry.bands == ("g", "W1")
    np.testing.assert_array_equal(records[1].photometry.flux, [2.0, 4.0])
    np.testing.assert_array_equal(records[1].photometry.ivar, [9.0, 0.0])  # W1 has no ivar column
    assert records[1].labels == {"z_spec": 0.2}
