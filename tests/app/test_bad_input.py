"""Every bad input gets a 4xx JSON answer that says what was wrong: never a 500, never a traceback."""

import copy
import gzip
import io
from urllib.parse import quote

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from .conftest import png_bytes, write_cutout, write_sdss_spectrum

GOOD_ID = "blob-0003"


def _check(response, status, fragment):
    assert response.status_code == status, response.text
    body = response.json()
    assert fragment.lower() in body["error"].lower(), body
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize("url,params,status,fragment", [
    ("/api/objects/nope", {}, 404, "unknown object id"),
    ("/api/thumbnails/nope", {}, 404, "unknown object id"),
    ("/api/spectra/nope", {}, 404, "unknown object id"),
    ("/api/spectra/" + GOOD_ID, {"format": "gif"}, 422, "format"),
    ("/api/search", {"object_id": "nope"}, 404, "unknown object id"),
    ("/api/search", {}, 422, "exactly one query"),
    ("/api/search", {"object_id": GOOD_ID, "ra": 10, "dec": 1}, 422, "exactly one query"),
    ("/api/search", {"ra": 10}, 422, "both ra and dec"),
    ("/api/search", {"ra": 400, "dec": 0}, 422, "ra"),
    ("/api/search", {"ra": 10, "dec": -91}, 422, "dec"),
    ("/api/search", {"ra": 0.001, "dec": -89}, 404, "no catalogued object"),
    ("/api/search", {"object_id": GOOD_ID, "k": 0}, 422, "k"),
    ("/api/search", {"object_id": GOOD_ID, "k": 101}, 422, "k"),
    ("/api/search", {"object_id": GOOD_ID, "k": "ten"}, 422, "k"),
    ("/api/search", {"object_id": GOOD_ID, "query_modality": "radio"}, 422, "query_modality"),
    ("/api/search", {"object_id": GOOD_ID, "target_modality": "x-ray"}, 422, "target_modality"),
    ("/api/search", {"object_id": GOOD_ID, "exclude_within_arcsec": -1}, 422, "exclude_within_arcsec"),
    ("/api/search", {"object_id": GOOD_ID, "exclude_within_arcsec": "nan"}, 422, "exclude_within_arcsec"),
    ("/api/search", {"object_id": GOOD_ID, "format": "xml"}, 422, "format"),
    ("/api/search", {"object_id": "x" * 201}, 422, "object_id"),
    ("/api/search", {"upload": "../../etc/passwd"}, 422, "upload key"),
    ("/api/search", {"upload": "0" * 64}, 404, "no uploaded image query"),
    ("/api/search", {"upload": "0" * 64, "query_modality": "both"}, 422, "image or a spectrum"),
    ("/api/objects", {"ra": 10}, 422, "dec"),
    ("/api/objects", {"ra": 10, "dec": 0, "radius_arcsec": 0}, 422, "radius_arcsec"),
    ("/api/objects", {"ra": 10, "dec": 0, "limit": 5000}, 422, "limit"),
    ("/api/resolve", {"q": ""}, 422, "empty"),
    ("/api/resolve", {"q": "   "}, 422, "empty"),
    ("/api/resolve", {"q": "x" * 201}, 422, "q"),
    ("/api/resolve", {"q": "NGC 4486"}, 404, "no object with this id"),
    ("/api/resolve", {"q": "400 95"}, 404, "not a position"),
    ("/api/resolve", {"q": "25:00:00 +91:00:00"}, 404, "not a position"),
    ("/api/map", {"label": "colour_of_the_sky"}, 404, "no such label"),
    ("/api/nothing-here", {}, 404, "not found"),
])
def test_bad_queries_get_4xx(client, url, params, status, fragment):
    _check(client.get(url, params=params), status, fragment)


def test_wrong_method_gets_405(client):
    _check(client.post("/api/search", content=b"", headers={"content-length": "0"}), 405, "method not allowed")


def _upload(client, name, data, **form):
    return client.post("/api/upload-search", files={"file": (name, data)}, data={"k": "9", **form})


def test_bad_uploads_get_4xx(client, app_catalogue, tmp_path):
    g = app_catalogue["galaxies"][2]
    cutout = write_cutout(tmp_path / "cutout.fits", g).read_bytes()
    spectrum = write_sdss_spectrum(tmp_path / "spec.fits", g).read_bytes()
    cases = [
        (_upload(client, "empty.fits", b""), 422, "empty"),
        (_upload(client, "notes.txt", b"hello"), 422, "unsupported file type"),
        (_upload(client, "cutout", cutout), 422, "unsupported file type"),
        (_upload(client, "cutout.fits.gz", gzip.compress(cutout)), 422, "compressed"),
        (_upload(client, "picture.fits", png_bytes(32, 32)), 422, "not a FITS file"),
        (_upload(client, "cutout.png", cutout), 422, "not a PNG file"),
        (_upload(client, "broken.png", b"\x89PNG\r\n\x1a\n" + b"\x00" * 100), 422, "cannot read the image header"),
        (_upload(client, "broken.jpg", b"\xff\xd8\xff\xe0" + b"junk" * 50), 422, "image"),
        (_upload(client, "truncated.fits", cutout[: len(cutout) // 2 + 1]), 422, "truncated"),
        (_upload(client, "header-only.fits", b"SIMPLE  =                    T" + b" " * 50), 422, "fits"),
        # an 8-bit RGB picture is not g, r, z flux, even with three planes
        (_upload(client, "galaxy.png", png_bytes(32, 32)), 422, "bands"),
        (_upload(client, "spec.fits", spectrum, modality="image"), 422, "holds no image"),
        (_upload(client, "cutout.fits", cutout, modality="spectrum"), 422, "holds no spectrum"),
        (_upload(client, "cutout.fits", cutout, modality="both"), 422, "modality"),
        (_upload(client, "cutout.fits", cutout, k="0"), 422, "k"),
        (_upload(client, "cutout.fits", cutout, target_modality="radio"), 422, "target_modality"),
        (_upload(client, "cutout.fits", cutout, exclude_within_arcsec="-3"), 422, "exclude_within_arcsec"),
        (client.post("/api/upload-search", data={"k": "9"}), 422, "file"),
    ]
    for response, status, fragment in cases:
        _check(response, status, fragment)


def test_uploads_of_the_wrong_shape_or_content(client, app_catalogue, tmp_path):
    from astropy.io import fits

    small = copy.deepcopy(app_catalogue["galaxies"][2])
    small.image.flux = small.image.flux[:, :8, :8].copy()  # smaller than the model's 24-pixel crop
    small.image.ivar = small.image.ivar[:, :8, :8].copy()
    _check(_upload(client, "small.fits", write_cutout(tmp_path / "small.fits", small).read_bytes()), 422, "crop")
    table = tmp_path / "table.fits"
    fits.BinTableHDU.from_columns([fits.Column("ra", "D", array=[1.0, 2.0]), fits.Column("dec", "D", array=[0.0, 1.0]),
                                   fits.Column("object_id", "5A", array=["a", "b"])]).writeto(table)
    _check(_upload(client, "table.fits", table.read_bytes()), 422, "")
    holes = copy.deepcopy(app_catalogue["galaxies"][2])
    holes.image.flux[:, :8, :] = np.nan  # documented masking: non-finite pixels are masked, and the user told
    response = _upload(client, "holes.fits", write_cutout(tmp_path / "holes.fits", holes).read_bytes())
    assert response.status_code == 200, response.text
    assert any("masked 768 non-finite values" in w for w in response.json()["warnings"])
    assert all("holes.fits" in w and "astroembed-upload-" not in w for w in response.json()["warnings"])


def test_size_limits(client):
    # The test app allows 2 MiB and 1 Mpixel (conftest.py).
    big = io.BytesIO()
    from PIL import Image

    Image.new("RGB", (1100, 1000)).save(big, format="PNG")  # a few KB that decode to 1.1 Mpixel
    assert len(big.getvalue()) < 100_000
    _check(_upload(client, "bomb.png", big.getvalue()), 413, "limit")
    _check(_upload(client, "huge.fits", b"SIMPLE  =" + b" " * (3 * 1024 * 1024)), 413, "limit")
    chunked = client.post("/api/upload-search", content=iter([b"x" * 10]),  # no length: streamed
                          headers={"content-type": "multipart/form-data; boundary=b"})
    _check(chunked, 411, "content-length")


def test_no_request_can_name_a_file(client, app_catalogue):
    for url in ("/api/thumbnails/../../manifest.json", "/api/objects/%2e%2e%2fmanifest.json",
                "/api/spectra//etc/passwd", "/objects/../../etc/passwd"):
        response = client.get(url)
        assert response.status_code == 404, (url, response.status_code)
        assert "modalities" not in response.text and "root:" not in response.text


def test_the_app_never_writes_into_the_index_or_the_survey(client, app_catalogue, tmp_path):
    import hashlib

    def snapshot():
        files = sorted(p for folder in (app_catalogue["index"], app_catalogue["survey"]) for p in folder.rglob("*")
                       if p.is_file())
        return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in files}

    before = snapshot()
    g = app_catalogue["galaxies"][20]
    for url in (f"/api/thumbnails/{g.object_id}", f"/api/spectra/{g.object_id}?format=png", "/api/map?label=kind",
                f"/api/search?object_id={g.object_id}&target_modality=both"):
        assert client.get(url).status_code == 200
    assert _upload(client, "c.fits", write_cutout(tmp_path / "c.fits", g).read_bytes()).status_code == 200
    assert snapshot() == before


def test_spectra_the_model_cannot_see_are_refused(client, app_catalogue, tmp_path):
    far = copy.deepcopy(app_catalogue["galaxies"][1])
    far.spectrum.wavelength = far.spectrum.wavelength * 5  # 19,000-46,000 A; the model covers 3,800-9,800 A
    _check(_upload(client, "far.fits", write_sdss_spectrum(tmp_path / "far.fits", far).read_bytes()), 422,
           "field 'spectrum_lambda': wavelengths 18948.3-46022.5 A cover 0% of the model's grid")
    # Wavelengths that span the grid are not enough: the VALID pixels must (here 10 % of them, at the blue end).
    blind = copy.deepcopy(app_catalogue["galaxies"][1])
    blind.spectrum.ivar[len(blind.spectrum.ivar) // 10:] = 0
    _check(_upload(client, "blind.fits", write_sdss_spectrum(tmp_path / "blind.fits", blind).read_bytes()), 422,
           "of the model's grid; the model expects Angstrom covering at least 20%")
    dead = copy.deepcopy(app_catalogue["galaxies"][1])
    dead.spectrum.ivar[:] = 0  # every pixel masked
    _check(_upload(client, "dead.fits", write_sdss_spectrum(tmp_path / "dead.fits", dead).read_bytes()), 422,
           "no valid pixel")


def test_fits_whose_header_promises_too_much_data(app_catalogue):
    from astropy.io import fits

    from astroembed.app.uploads import UploadLimits, UploadTooLargeError, parse_upload

    # A 2,880-byte header announcing a 4096 x 4096 float64 array (128 MiB): refused from the header,
    # before astropy is asked to read any data. The limit is 8 x max_pixels bytes = 8 MiB.
    header = fits.Header([("SIMPLE", True), ("BITPIX", -64), ("NAXIS", 2), ("NAXIS1", 4096), ("NAXIS2", 4096)])
    data = header.tostring().encode("ascii")
    with pytest.raises(UploadTooLargeError, match="134217728 bytes is over the limit"):
        parse_upload(data, "promise.fits", UploadLimits(max_pixels=1024 * 1024))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=250), number=st.floats(allow_nan=True, allow_infinity=True),
       k=st.integers(-5, 500), modality=st.sampled_from(["image", "spectrum", "both", "", "IMAGE", "x"]))
def test_no_query_string_makes_a_500(client, text, number, k, modality):
    for url, params in (("/api/resolve", {"q": text}), ("/api/objects/" + quote(text, safe=""), {}),
                        ("/api/search", {"object_id": text, "k": k, "query_modality": modality}),
                        ("/api/search", {"ra": number, "dec": number, "k": k, "target_modality": modality}),
                        ("/api/objects", {"ra": number, "dec": 0, "radius_arcsec": number}),
                        ("/api/map", {"label": text})):
        response = client.get(url, params=params)
        assert response.status_code < 500, (url, params, response.text)
        assert "Traceback" not in response.text


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(name=st.sampled_from(["x.fits", "x.png", "x.jpg", "x.fit", "x.txt", "x"]),
       head=st.sampled_from([b"", b"SIMPLE  =                    T", b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff"]),
       body=st.binary(max_size=4000))
def test_no_uploaded_bytes_make_a_500(client, name, head, body):
    response = _upload(client, name, head + body)
    assert 400 <= response.status_code < 500, response.text
    assert "Traceback" not in response.text
