"""The README's screenshots of `astroembed serve`: a cross-modal search, and the home page's map.

    python scripts/app_screenshot.py --demo demo_output --out docs/app_cross_modal_search.png
    python scripts/app_screenshot.py --demo demo_output --page home --label redshift --out docs/app_catalogue_map.png

Serves ``<demo>/index`` (written by `make demo`) on a free loopback port, opens the page of the demo's
own example query (results.json) with image -> spectrum search, 10 neighbours, in Debian's chromium,
and saves a palette PNG (small enough to commit). ``--page home`` shows the home page instead, its
UMAP map coloured by ``--label``.
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from pathlib import Path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--demo", type=Path, default=Path("demo_output"))
    parser.add_argument("--out", type=Path, default=Path("docs/app_cross_modal_search.png"))
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    parser.add_argument("--query-modality", default="image")
    parser.add_argument("--target-modality", default="spectrum")
    parser.add_argument("--page", choices=["search", "home"], default="search")
    parser.add_argument("--label", default="redshift", help="the map's colouring (--page home)")
    args = parser.parse_args()

    import uvicorn
    from PIL import Image
    from playwright.sync_api import sync_playwright

    from astroembed.app.server import create_app

    object_id = json.loads((args.demo / "results.json").read_text())["search"]["query"]
    app = create_app(args.demo / "index")
    app.state.catalogue_map.points()  # the UMAP (or its cached copy), as `astroembed serve` does first
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    try:
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=args.chromium, args=[
                "--headless", "--no-sandbox", "--disable-background-networking"])
            page = browser.new_page(viewport={"width": 1180, "height": 900})
            if args.page == "home":
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector("#map[data-ready='true']")
                page.select_option("#map-label", args.label)
                page.wait_for_function(f"() => document.querySelector('#map-legend').textContent"
                                       f".startsWith({json.dumps(args.label)})")
            else:
                page.goto(f"http://127.0.0.1:{port}/objects/{object_id}?qm={args.query_modality}"
                          f"&tm={args.target_modality}&k=10")
                page.wait_for_selector("#neighbours[data-state='done']")
                page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete "
                                       "&& i.naturalWidth > 0)")
            args.out.parent.mkdir(parents=True, exist_ok=True)
            raw = args.out.with_suffix(".raw.png")
            page.screenshot(path=str(raw), full_page=True)
            browser.close()
    finally:
        server.should_exit = True
        thread.join(timeout=10)
    Image.open(raw).convert("RGB").quantize(colors=128).save(args.out, optimize=True)
    raw.unlink()
    shown = f"home page, map by {args.label}" if args.page == "home" else (
        f"{object_id}, {args.query_modality} -> {args.target_modality}")
    print(f"wrote {args.out} ({args.out.stat().st_size // 1024} KB): {shown}")


if __name__ == "__main__":
    main()
