"""The main job (`astroembed demo`, run by `make demo`): every stage that exists, on the built-in survey.

Each stage writes into its own folder under ``out`` and is skipped when its output is already complete,
so an interrupted demo resumes where it stopped.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from rich.console import Console

SURVEY = "astroembed_sim"


def build_survey(out: Path, n: int, seed: int, console: Console) -> Path:
    """Stage 1: render the built-in survey (skipped if the same survey is already on disk)."""
    from .data.simulate import simulate_survey

    root = out / "survey"
    stamp = root / "DONE.json"
    wanted = {"n": n, "seed": seed}
    if stamp.exists() and json.loads(stamp.read_text()) == wanted:
        console.print(f"[green]survey[/]: already built at {root} ({n} galaxies, seed {seed})")
        return root / SURVEY
    if root.exists():
        import shutil

        shutil.rmtree(root)
    t0 = time.perf_counter()
    simulate_survey(n=n, seed=seed, out=root, progress=True)
    stamp.write_text(json.dumps(wanted))
    console.print(f"[green]survey[/]: rendered {n} galaxies in {time.perf_counter() - t0:.0f} s -> {root}")
    return root / SURVEY


def run_demo(out: Path, n: int = 2000, seed: int = 0, console: Console | None = None) -> dict:
    from .cli import print_summary
    from .data.info import summarize

    console = console or Console()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    survey = build_survey(out, n, seed, console)
    summary = summarize(survey)
    print_summary(summary)
    expected = {"image": n, "spectrum": n, "photometry": n}
    if summary["modalities"] != expected:
        raise RuntimeError(f"survey validation failed: expected {expected}, found {summary['modalities']}")
    console.print("[green]survey[/]: validated (every object has an image, a spectrum and photometry)")
    return {"survey": str(survey), "summary": summary}
