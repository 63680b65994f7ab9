"""Uploads of the field's real files (../shared/data), and the `astroembed serve` command itself."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from astroembed.cli import app as cli_app


def _upload(client, path, **form):
    return client.post("/api/upload-search", files={"file": (path.name, path.read_bytes())},
                       data={"k": "9", **form})


def test_real_desi_coadd_and_legacy_survey_cutout(client, shared_data):
    desi = _upload(client, shared_data / "spectra" / "desi" / "coadd-4-80613-thru20210324.fits",
                   target_modality="spectrum")
    assert desi.status_code == 200, desi.text
    assert desi.json()["query"]["query_modality"] == "spectrum" and len(desi.json()["neighbours"]) == 9
    cutout = _upload(client, shared_data / "cutouts" / "legacysurvey_dr9_grz_256.fits")
    assert cutout.status_code == 200, cutout.text
    body = cutout.json()
    assert body["query"]["query_modality"] == "image"
    # the cutout's WCS centre (RA 357.9087, Dec -54.8817) is the query position for separations
    assert body["query"]["ra"] == pytest.approx(357.9087, abs=1e-3)
    assert body["query"]["dec"] == pytest.approx(-54.8817, abs=1e-3)


@pytest.fixture(scope="module")
def client_default_limits(app_catalogue, tmp_path_factory):
    from fastapi.testclient import TestClient

    from astroembed.app.server import create_app

    with TestClient(create_app(app_catalogue["index"], cache_dir=tmp_path_factory.mktemp("cache"))) as client:
        yield client


def test_real_files_the_model_cannot_take(client, client_default_limits, shared_data):
    two = _upload(client_default_limits, shared_data / "spectra" / "desi" / "edr" / "coadd-sv3-dark-26065.fits")
    assert two.status_code == 422 and "one object" in two.json()["error"]
    jpeg = sorted((shared_data / "galaxy_zoo2" / "train" / "spirals").glob("*.jpg"))[0]
    rgb = _upload(client, jpeg)
    assert rgb.status_code == 422 and "bands" in rgb.json()["error"] and jpeg.name in rgb.json()["error"]


def test_serve_without_the_app_extra_says_what_to_install(monkeypatch, tmp_path):
    import astroembed.optional

    monkeypatch.setitem(astroembed.optional.EXTRAS, "app", ("fastapi_that_is_not_installed",))
    result = CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path)])
    assert result.exit_code == 2 and "pip install 'astroembed[app]'" in " ".join(result.output.split())


def test_serve_refuses_a_folder_that_is_not_an_index(tmp_path):
    result = CliRunner().invoke(cli_app, ["serve", "--index", str(tmp_path)])
    assert result.exit_code == 2 and "not an index folder" in " ".join(result.output.split())


@pytest.mark.slow
def test_serve_command_answers_on_loopback(app_catalogue, tmp_path):
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(Path(__file__).resolve().parents[2] / "src"),
                                                         os.environ.get("PYTHONPATH", "")])}
    server = subprocess.Popen([sys.executable, "-m", "astroembed", "serve", "--index", str(app_catalogue["index"]),
                               "--port", str(port), "--cache", str(tmp_path / "cache")], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stdout.read().decode()
            try:
                health = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline, "serve did not answer within 120 s"
                time.sleep(0.3)
        assert health.json()["objects"] == 40
        search = httpx.get(f"http://127.0.0.1:{port}/api/search", params={"object_id": "blob-0001", "k": 9})
        assert search.status_code == 200 and len(search.json()["neighbours"]) == 9
    finally:
        server.terminate()
        server.wait(timeout=30)
