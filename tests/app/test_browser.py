"""End to end in a real browser: Debian's chromium driven by Playwright, against the app on loopback.

Playwright's own browser download cannot work on these machines, so the tests use /usr/bin/chromium
(installed by `make test` / .ci/run when missing) and skip, saying why, when it is not there.
Screenshots of every step go to $ASTROEMBED_TEST_ARTIFACTS (default: test-artifacts/browser/).
"""

import os
import re
import socket
import threading
import time
from pathlib import Path

import pytest

from .conftest import write_cutout, write_sdss_spectrum

CHROMIUM = Path(os.environ.get("ASTROEMBED_CHROMIUM", "/usr/bin/chromium"))
ARTIFACTS = Path(os.environ.get("ASTROEMBED_TEST_ARTIFACTS",
                                Path(__file__).resolve().parents[2] / "test-artifacts" / "browser"))
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(app_catalogue, tmp_path_factory):
    """The app served by uvicorn on a free loopback port, in a thread of this process."""
    import uvicorn

    from astroembed.app.server import create_app

    app = create_app(app_catalogue["index"], cache_dir=tmp_path_factory.mktemp("browser_cache"))
    app.state.catalogue_map.points()  # as `astroembed serve` does: the UMAP is ready before the first page
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.is_file():
        pytest.skip(f"no chromium at {CHROMIUM}: `make test` installs it (apt-get install chromium); "
                    "set ASTROEMBED_CHROMIUM to use another")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install "
                                   "'astroembed[test]')")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-background-networking"])
        yield browser
        browser.close()


@pytest.fixture
def page(browser, request):
    context = browser.new_context(viewport={"width": 1280, "height": 1000})
    page = context.new_page()
    errors = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    yield page
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{request.node.name}-final.png"), full_page=True)
    context.close()
    assert not errors, f"JavaScript errors: {errors}"


def _shot(page, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _object_url(object_id):
    """The object's page, with or without the query string the search panel adds."""
    return re.compile(rf"/objects/{re.escape(object_id)}(\?|$)")


def _neighbour_ids(page):
    page.wait_for_selector("#neighbours[data-state='done']")
    return page.eval_on_selector_all("#neighbours .card", "cards => cards.map(c => c.dataset.objectId)")


def _api_ids(page, server, **params):
    response = page.request.get(f"{server}/api/search", params=params)
    assert response.ok, response.text()
    return [n["object_id"] for n in response.json()["neighbours"]]


def test_search_by_id_click_a_neighbour_then_cross_modal(page, server, app_catalogue):
    g = app_catalogue["galaxies"][3]
    page.goto(server)
    page.wait_for_selector("#map[data-ready='true']")
    _shot(page, "01-home")
    page.fill("#q", g.object_id)
    page.click("#search-form button[type=submit]")
    page.wait_for_url(_object_url(g.object_id))
    ids = _neighbour_ids(page)
    assert ids == _api_ids(page, server, object_id=g.object_id, k=16)
    assert page.locator("#object-image").evaluate("img => img.complete && img.naturalWidth") == 128
    assert page.locator("#object-spectrum").evaluate("img => img.complete && img.naturalWidth") > 0
    _shot(page, "02-object")

    page.click(f"#neighbours .card[data-object-id='{ids[0]}'] a")
    page.wait_for_url(_object_url(ids[0]))
    assert page.inner_text("#object-id") == ids[0]
    _neighbour_ids(page)

    page.select_option("#neighbour-form select[name=qm]", "image")
    page.select_option("#neighbour-form select[name=tm]", "spectrum")
    page.fill("#neighbour-form input[name=k]", "12")
    page.click("#neighbour-form button[type=submit]")
    page.wait_for_url("**tm=spectrum**")
    cross = _neighbour_ids(page)
    assert cross == _api_ids(page, server, object_id=ids[0], query_modality="image", target_modality="spectrum",
                             k=12)
    # cross-modal cards show the neighbours' spectra, and every picture loaded
    # function form: an expression string would need eval, which the app's Content-Security-Policy forbids
    page.wait_for_function("() => [...document.querySelectorAll('#neighbours img')].every(i => i.complete "
                           "&& i.naturalWidth > 0)")
    assert page.locator("#neighbours img.spectrum").count() == 12
    _shot(page, "03-cross-modal")
    permalink = page.url
    page.goto(permalink)  # the permalink reproduces the search
    assert _neighbour_ids(page) == cross
    assert page.input_value("#neighbour-form select[name=tm]") == "spectrum"


def test_random_galaxy_and_map_click(page, server, app_catalogue):
    page.goto(server)
    page.wait_for_selector("#map[data-ready='true']")
    page.select_option("#map-label", "redshift")
    page.wait_for_function("() => document.querySelector('#map-legend').textContent.startsWith('redshift')")
    _shot(page, "04-map-redshift")
    page.select_option("#map-label", "anomaly score")
    page.wait_for_function("() => document.querySelector('#map-legend').textContent.startsWith('anomaly score')")
    _shot(page, "04-map-anomaly")
    data = page.request.get(f"{server}/api/map").json()
    xs, ys = data["x"], data["y"]
    # the same mapping as app.js: 12-pixel padding on a 640 x 480 canvas
    px = [12 + (x - min(xs)) / (max(xs) - min(xs)) * (640 - 24) for x in xs]
    py = [480 - 12 - (y - min(ys)) / (max(ys) - min(ys)) * (480 - 24) for y in ys]

    def clearance(i):
        return min((px[i] - px[j]) ** 2 + (py[i] - py[j]) ** 2 for j in range(len(xs)) if j != i)

    target = max(range(len(xs)), key=clearance)  # the most isolated point: no doubt which one a click hits
    box = page.locator("#map").bounding_box()
    scale = box["width"] / 640
    page.mouse.click(box["x"] + px[target] * scale, box["y"] + py[target] * scale)
    page.wait_for_url(_object_url(data["object_id"][target]))
    assert page.inner_text("#object-id") == data["object_id"][target]
    page.goto(server)
    page.click("#random")
    page.wait_for_url("**/objects/**")
    assert page.inner_text("#object-id") in {g.object_id for g in app_catalogue["galaxies"]}


def test_upload_a_cutout_and_a_spectrum(page, server, app_catalogue, tmp_path):
    g = app_catalogue["galaxies"][9]
    page.goto(f"{server}/upload")
    page.set_input_files("#upload-file", str(write_cutout(tmp_path / "cutout.fits", g)))
    _shot(page, "05-upload-form")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/uploads/**")
    ids = _neighbour_ids(page)
    assert ids[0] == g.object_id  # the same pixels: the galaxy itself comes first
    _shot(page, "06-upload-cutout-results")

    h = app_catalogue["galaxies"][13]
    page.goto(f"{server}/upload")
    page.set_input_files("#upload-file", str(write_sdss_spectrum(tmp_path / "spec.fits", h)))
    page.select_option("#upload-form select[name=target_modality]", "spectrum")
    page.click("#upload-form button[type=submit]")
    page.wait_for_url("**/uploads/**")
    assert _neighbour_ids(page)[0] == h.object_id
    assert page.locator("#neighbours img.spectrum").count() == 16
    _shot(page, "07-upload-spectrum-results")


def test_a_bad_upload_shows_its_error(page, server, tmp_path):
    bad = tmp_path / "notes.png"
    bad.write_bytes(b"this is not a picture")
    page.goto(f"{server}/upload")
    page.set_input_files("#upload-file", str(bad))
    page.click("#upload-form button[type=submit]")
    page.wait_for_selector("#error:not([hidden])")
    assert "not a PNG file" in page.inner_text("#error")
    assert page.url.endswith("/upload")
