"""Every route of the JSON API and the pages, against references computed from the stored vectors."""

import hashlib
import io

import numpy as np
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from astroembed.embed.store import read_embeddings

from .conftest import MASKED, write_cutout, write_sdss_spectrum


def _vectors(app_catalogue, modality):
    import json

    manifest = json.loads((app_catalogue["index"] / "manifest.json").read_text())
    ids, ra, dec, v = read_embeddings(manifest["modalities"][modality]["embeddings"], modality)
    return list(ids), ra, dec, v / np.linalg.norm(v, axis=1, keepdims=True)


def _brute_force(query, ids, vectors, k, exclude=()):
    sims = vectors @ (query / np.linalg.norm(query))
    order = [i for i in np.argsort(-sims, kind="stable") if ids[i] not in exclude]
    return [ids[i] for i in order[:k]], sims[order[:k]]


def _sep_arcsec(ra1, dec1, ra2, dec2):
    """Haversine separation (numpy), independent of astropy."""
    ra1, dec1, ra2, dec2 = map(np.radians, (ra1, dec1, ra2, dec2))
    h = np.sin((dec2 - dec1) / 2) ** 2 + np.cos(dec1) * np.cos(dec2) * np.sin((ra2 - ra1) / 2) ** 2
    return np.degrees(2 * np.arcsin(np.sqrt(h))) * 3600


def test_health_catalogue_and_openapi(client):
    assert client.get("/healthz").json() == {"status": "ok", "objects": 40, "modalities": ["image", "spectrum"]}
    summary = client.get("/api/catalogue").json()
    assert summary["count"] == 40 and summary["shared_space"] and summary["has_survey"]
    assert {"redshift", "kind"} <= set(summary["labels"])
    paths = set(client.get("/api/openapi.json").json()["paths"])
    assert {"/api/objects", "/api/objects/random", "/api/objects/{object_id}", "/api/resolve", "/api/search",
            "/api/upload-search", "/api/thumbnails/{object_id}", "/api/spectra/{object_id}", "/api/map",
            "/api/catalogue", "/healthz"} <= paths
    assert client.get("/api/docs").status_code == 404  # Swagger UI would load scripts from a CDN


def test_object_matches_the_survey_record(client, app_catalogue):
    g = app_catalogue["galaxies"][7]
    info = client.get(f"/api/objects/{g.object_id}").json()
    assert info["object_id"] == g.object_id and info["modalities"] == ["image", "spectrum"]
    assert info["ra"] == pytest.approx(g.ra) and info["dec"] == pytest.approx(g.dec)
    assert info["labels"]["redshift"] == pytest.approx(g.labels["redshift"])
    assert info["labels"]["kind"] == g.labels["kind"]
    assert info["has_image"] and info["has_spectrum"]
    assert client.get("/api/objects/random").json()["object_id"] in {x.object_id for x in app_catalogue["galaxies"]}


@pytest.mark.parametrize("query_modality,target_modality", [("image", "image"), ("spectrum", "spectrum"),
                                                            ("image", "spectrum"), ("spectrum", "image")])
def test_search_by_id_equals_brute_force(client, app_catalogue, query_modality, target_modality):
    g = app_catalogue["galaxies"][3]
    q_ids, _, _, q_vectors = _vectors(app_catalogue, query_modality)
    t_ids, t_ra, t_dec, t_vectors = _vectors(app_catalogue, target_modality)
    got = client.get("/api/search", params={"object_id": g.object_id, "query_modality": query_modality,
                                            "target_modality": target_modality, "k": 9}).json()
    # The object itself is never its own neighbour, in any modality.
    expected, sims = _brute_force(q_vectors[q_ids.index(g.object_id)], t_ids, t_vectors, 9, exclude={g.object_id})
    assert [n["object_id"] for n in got["neighbours"]] == expected
    np.testing.assert_allclose([n["similarity"] for n in got["neighbours"]], sims, rtol=1e-5, atol=1e-6)
    assert [n["rank"] for n in got["neighbours"]] == list(range(1, 10))
    for n in got["neighbours"]:
        i = t_ids.index(n["object_id"])
        assert n["separation_arcsec"] == pytest.approx(_sep_arcsec(g.ra, g.dec, t_ra[i], t_dec[i]), rel=1e-6)


def test_both_modalities(client, app_catalogue):
    g = app_catalogue["galaxies"][11]
    ids, _, _, image = _vectors(app_catalogue, "image")
    _, _, _, spectrum = _vectors(app_catalogue, "spectrum")
    # k = 10 fetches 4k = 40 candidates per index: the whole catalogue, so the ranking is exact.
    got = client.get("/api/search", params={"object_id": g.object_id, "query_modality": "image",
                                            "target_modality": "both", "k": 10}).json()["neighbours"]
    q = image[ids.index(g.object_id)]
    mean = (image @ q + spectrum @ q) / 2
    order = [i for i in np.argsort(-mean) if ids[i] != g.object_id][:10]
    assert [n["object_id"] for n in got] == [ids[i] for i in order]
    np.testing.assert_allclose([n["similarity"] for n in got], mean[order], rtol=1e-5, atol=1e-6)
    # query "both": the normalised sum of the object's two unit vectors
    got = client.get("/api/search", params={"object_id": g.object_id, "query_modality": "both",
                                            "target_modality": "image", "k": 9}).json()["neighbours"]
    i = ids.index(g.object_id)
    both = image[i] + spectrum[i]
    expected, _ = _brute_force(both, ids, image, 9, exclude={g.object_id})
    assert [n["object_id"] for n in got] == expected


def test_exclude_within_and_position_query(client, app_catalogue):
    g = app_catalogue["galaxies"][5]
    ids, ra, dec, image = _vectors(app_catalogue, "image")
    radius = float(np.median(_sep_arcsec(g.ra, g.dec, ra, dec)))  # drops about half the catalogue
    got = client.get("/api/search", params={"object_id": g.object_id, "k": 9,
                                            "exclude_within_arcsec": radius}).json()["neighbours"]
    far = {oid for oid, r, d in zip(ids, ra, dec) if _sep_arcsec(g.ra, g.dec, r, d) >= radius}
    expected, _ = _brute_force(image[ids.index(g.object_id)], ids, image, 9,
                               exclude=set(ids) - far | {g.object_id})
    assert [n["object_id"] for n in got] == expected
    assert all(n["separation_arcsec"] >= radius for n in got)
    by_position = client.get("/api/search", params={"ra": g.ra + 0.3 / 3600, "dec": g.dec, "k": 9}).json()
    by_id = client.get("/api/search", params={"object_id": g.object_id, "k": 9}).json()
    assert by_position["neighbours"] == by_id["neighbours"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_downloads_hold_the_json_results(client, app_catalogue, fmt):
    params = {"object_id": app_catalogue["galaxies"][2].object_id, "k": 12, "target_modality": "spectrum"}
    as_json = client.get("/api/search", params=params).json()["neighbours"]
    response = client.get("/api/search", params={**params, "format": fmt})
    assert response.status_code == 200 and "attachment" in response.headers["content-disposition"]
    reader = pacsv.read_csv if fmt == "csv" else pq.read_table
    table = reader(io.BytesIO(response.content)).to_pylist()
    assert [r["object_id"] for r in table] == [n["object_id"] for n in as_json]
    np.testing.assert_allclose([r["similarity"] for r in table], [n["similarity"] for n in as_json], rtol=1e-6)
    np.testing.assert_allclose([r["separation_arcsec"] for r in table], [n["separation_arcsec"] for n in as_json])


def test_upload_cutout_finds_itself_and_has_a_permalink(client, app_catalogue, tmp_path):
    g = app_catalogue["galaxies"][9]
    data = write_cutout(tmp_path / "cutout.fits", g).read_bytes()
    response = client.post("/api/upload-search", files={"file": ("cutout.fits", data, "application/fits")},
                           data={"k": "9", "target_modality": "image"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["query_modality"] == "image" and body["query"]["upload"] == hashlib.sha256(data).hexdigest()
    first = body["neighbours"][0]
    # The same pixels as the catalogued galaxy: its own image is the best match, at its own position.
    assert first["object_id"] == g.object_id and first["similarity"] == pytest.approx(1.0, abs=1e-5)
    assert first["separation_arcsec"] < 0.1
    again = client.get("/api/search", params={"upload": body["query"]["upload"], "k": 9}).json()
    assert again["neighbours"] == body["neighbours"]
    page = client.get(body["permalink"])
    assert page.status_code == 200 and body["query"]["upload"] in page.text


def test_upload_spectrum_finds_itself_across_modalities(client, app_catalogue, tmp_path):
    g = app_catalogue["galaxies"][13]
    data = write_sdss_spectrum(tmp_path / "spec.fits", g).read_bytes()
    body = client.post("/api/upload-search", files={"file": ("spec-0266.fits", data)},
                       data={"k": "9", "target_modality": "spectrum"}).json()
    assert body["query"]["query_modality"] == "spectrum"
    assert body["neighbours"][0]["object_id"] == g.object_id
    assert body["neighbours"][0]["similarity"] == pytest.approx(1.0, abs=1e-4)
    ids, _, _, image = _vectors(app_catalogue, "image")
    _, _, _, spectrum = _vectors(app_catalogue, "spectrum")
    cross = client.get("/api/search", params={"upload": body["query"]["upload"], "query_modality": "spectrum",
                                              "target_modality": "image", "k": 9}).json()["neighbours"]
    expected, _ = _brute_force(spectrum[ids.index(g.object_id)], ids, image, 9)
    assert [n["object_id"] for n in cross] == expected


def test_upload_of_a_real_sdss_spectrum(client, shared_data):
    path = sorted((shared_data / "spectra" / "sdss").glob("spec-0266-*.fits"))[0]
    response = client.post("/api/upload-search", files={"file": (path.name, path.read_bytes())},
                           data={"k": "9", "target_modality": "both"})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["query"]["query_modality"] == "spectrum" and len(body["neighbours"]) == 9
    sims = [n["similarity"] for n in body["neighbours"]]
    assert sims == sorted(sims, reverse=True)


def test_thumbnail_is_rendered_once_and_cached_beside_not_inside_the_index(client, app_catalogue):
    from PIL import Image

    g = app_catalogue["galaxies"][1]
    first = client.get(f"/api/thumbnails/{g.object_id}")
    assert first.status_code == 200 and first.headers["content-type"] == "image/png"
    picture = Image.open(io.BytesIO(first.content))
    assert picture.size == (128, 128) and picture.mode == "RGB"
    cache = client.app.state.cache
    path = cache.path("thumbnail", g.object_id)
    assert path.is_file() and path.read_bytes() == first.content
    assert app_catalogue["index"].resolve() not in path.resolve().parents
    path.write_bytes(b"cached")  # a second request is served from the file, not re-rendered
    assert client.get(f"/api/thumbnails/{g.object_id}").content == b"cached"
    path.unlink()


def test_spectrum_series_masks_ivar_zero_and_plot(client, app_catalogue):
    g = app_catalogue["galaxies"][4]
    body = client.get(f"/api/spectra/{g.object_id}").json()
    flux = np.array([np.nan if f is None else f for f in body["flux"]])
    masked = np.zeros(len(flux), bool)
    masked[MASKED] = True
    assert np.array_equal(np.isnan(flux), masked) and body["n_masked"] == masked.sum()
    np.testing.assert_allclose(flux[~masked], g.spectrum.flux[~masked], rtol=1e-6)
    np.testing.assert_allclose(body["wavelength"], g.spectrum.wavelength, atol=1e-3)
    png = client.get(f"/api/spectra/{g.object_id}", params={"format": "png"})
    assert png.status_code == 200 and png.content[:8] == b"\x89PNG\r\n\x1a\n"


def test_map_is_a_umap_of_the_embeddings_with_labels_and_anomaly_scores(client, app_catalogue):
    from sklearn.manifold import trustworthiness

    from astroembed.evaluate.anomaly import rank_catalog

    body = client.get("/api/map", params={"label": "redshift"}).json()
    ids, _, _, image = _vectors(app_catalogue, "image")
    assert body["projection"] == "UMAP" and body["object_id"] == ids and body["numeric"]
    xy = np.column_stack([body["x"], body["y"]])
    # a map of these vectors keeps their neighbourhoods; coordinates unrelated to them score about 0.5
    assert trustworthiness(image, xy, n_neighbors=5, metric="cosine") > 0.8
    z = {g.object_id: g.labels["redshift"] for g in app_catalogue["galaxies"]}
    np.testing.assert_allclose(body["values"], [z[i] for i in ids])
    kinds = client.get("/api/map", params={"label": "kind"}).json()
    assert not kinds["numeric"] and set(kinds["values"]) == {"disc", "bulge"}
    assert kinds["x"] == body["x"]  # one map, whatever the colouring
    anomaly = client.get("/api/map", params={"label": "anomaly score"}).json()
    assert anomaly["numeric"] and anomaly["object_id"] == ids
    reference = rank_catalog(image, k=10, seed=0)  # the evaluation's scores of the same objects
    np.testing.assert_allclose(anomaly["values"], reference["knn_distance"], atol=1e-5)
    np.testing.assert_allclose(anomaly["ood_pvalue"], reference["ood_pvalue"], atol=1e-6)


def test_cone_search_and_resolve(client, app_catalogue):
    from astropy import units as u
    from astropy.coordinates import SkyCoord

    galaxies = app_catalogue["galaxies"]
    g = galaxies[6]
    ra = np.array([x.ra for x in galaxies])
    dec = np.array([x.dec for x in galaxies])
    sep = _sep_arcsec(g.ra, g.dec, ra, dec)
    radius = float(np.sort(sep)[5]) + 1.0  # the six nearest
    cone = client.get("/api/objects", params={"ra": g.ra, "dec": g.dec, "radius_arcsec": radius}).json()
    assert [o["object_id"] for o in cone["objects"]] == [galaxies[i].object_id for i in np.argsort(sep)[:6]]
    assert client.get("/api/resolve", params={"q": g.object_id}).json() == {"kind": "object", "object_id": g.object_id}
    decimal = client.get("/api/resolve", params={"q": f"{g.ra + 0.2 / 3600:.7f} {g.dec:.7f}"}).json()
    assert decimal["kind"] == "object" and decimal["object_id"] == g.object_id
    text = SkyCoord(g.ra * u.deg, g.dec * u.deg).to_string("hmsdms", sep=":", precision=3)
    assert client.get("/api/resolve", params={"q": text}).json()["object_id"] == g.object_id
    with_radius = client.get("/api/resolve", params={"q": f"{g.ra}, {g.dec}, {radius}"}).json()
    assert with_radius["kind"] == "cone" and len(with_radius["objects"]) == 6
    empty = client.get("/api/resolve", params={"q": "10 -80"}).json()  # nothing there: an empty cone
    assert empty["kind"] == "cone" and empty["objects"] == []


def test_pages_render_and_escape(client, app_catalogue):
    g = app_catalogue["galaxies"][0]
    home = client.get("/")
    assert home.status_code == 200 and 'data-page="home"' in home.text and "redshift" in home.text
    page = client.get(f"/objects/{g.object_id}")
    assert page.status_code == 200 and f'data-object-id="{g.object_id}"' in page.text
    assert f"/api/thumbnails/{g.object_id}" in page.text and "kind" in page.text
    assert client.get("/upload").status_code == 200
    missing = client.get("/objects/<script>alert(1)</script>")
    assert missing.status_code == 404 and "<script>alert" not in missing.text and "&lt;script&gt;" in missing.text
    assert client.get("/uploads/not-a-key").status_code == 404
    assert client.get("/static/app.js").status_code == 200


def test_security_headers_and_cors_off_by_default(client, app_catalogue, tmp_path):
    from fastapi.testclient import TestClient

    from astroembed.app.server import create_app

    response = client.get("/api/catalogue", headers={"Origin": "https://elsewhere.example"})
    assert "access-control-allow-origin" not in response.headers
    assert "script-src 'self'" in response.headers["content-security-policy"]
    assert response.headers["x-content-type-options"] == "nosniff"
    app = create_app(app_catalogue["index"], cache_dir=tmp_path, cors_origins=["https://lab.example"])
    allowed = TestClient(app).get("/api/catalogue", headers={"Origin": "https://lab.example"})
    assert allowed.headers["access-control-allow-origin"] == "https://lab.example"


def test_asking_for_more_neighbours_than_there_are(client, app_catalogue):
    g = app_catalogue["galaxies"][1]
    for target in ("image", "both"):
        got = client.get("/api/search", params={"object_id": g.object_id, "k": 100, "target_modality": target})
        assert got.status_code == 200
        ids = [n["object_id"] for n in got.json()["neighbours"]]
        assert len(ids) == 39 and g.object_id not in ids and len(set(ids)) == 39  # all the others, once
    nobody = client.get("/api/search", params={"object_id": g.object_id, "exclude_within_arcsec": 1e9})
    assert nobody.status_code == 200 and nobody.json()["neighbours"] == []


def test_objects_of_any_modality_are_objects_without_a_survey(tmp_path):
    """A spectrum-only object (no image) is listed, opened and found; no survey: no pictures, a 404 for them."""
    import pyarrow as pa
    from fastapi.testclient import TestClient

    from astroembed.app.server import create_app
    from astroembed.embed.store import write_part_atomic
    from astroembed.search.catalog_search import build_index

    def catalogue(path, modality, ids, vectors):
        table = pa.table({"object_id": ids, "ra": [10.0 + i for i in range(len(ids))], "dec": np.zeros(len(ids)),
                          "healpix": np.zeros(len(ids), np.int64),
                          f"embedding_{modality}": pa.FixedSizeListArray.from_arrays(
                              pa.array(vectors.ravel(), pa.float32()), vectors.shape[1])})
        meta = {"model_name": "aligned", "model_hash": "h", "model_path": "", "modality": modality,
                "embed_dim": str(vectors.shape[1]), "astroembed_version": "test", "source_tile": "",
                "source_rows": str(len(ids)), "n_skipped": "0"}
        write_part_atomic(table.replace_schema_metadata(meta), path / "healpix=0" / "part-0.parquet")
        return path

    rng = np.random.default_rng(0)
    image_ids = [f"g{i:02d}" for i in range(10)]
    spectrum_ids = image_ids[5:] + ["s-only"]
    index = build_index([catalogue(tmp_path / "img", "image", image_ids, rng.normal(size=(10, 4))),
                         catalogue(tmp_path / "spec", "spectrum", spectrum_ids, rng.normal(size=(6, 4)))],
                        tmp_path / "index")
    client = TestClient(create_app(index, cache_dir=tmp_path / "cache"))
    assert client.get("/healthz").json()["objects"] == 11
    info = client.get("/api/objects/s-only").json()
    assert info["modalities"] == ["spectrum"] and info["ra"] == 15.0 and not info["has_image"]
    found = client.get("/api/search", params={"object_id": "g05", "query_modality": "image",
                                              "target_modality": "spectrum", "k": 10}).json()["neighbours"]
    assert {n["object_id"] for n in found} == {"g06", "g07", "g08", "g09", "s-only"}
    assert client.get("/api/search", params={"object_id": "g01", "query_modality": "spectrum"}).status_code == 404
    assert client.get("/api/thumbnails/g01").status_code == 404
    assert not client.get("/api/catalogue").json()["has_survey"]
