"""`astroembed info`: what a survey on disk holds, computed tile by tile in bounded memory."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import h5py
import numpy as np

from .mmu import RESERVED, MMUSurvey
from .mmu_read import ROW_CHECKED
from .validate import check_rows, decode_strings

CHUNK = 256  # rows read at a time: memory stays bounded whatever the survey's size


def summarize(path) -> dict:
    """Objects per modality, bands, image sizes, wavelength range, labels with ranges, invalid counts.

    Every row is checked with the rules of :mod:`astroembed.data.validate` (as ``MMUSurvey`` and ``embed``
    check them): a malformed survey raises InvalidDataError naming file, object and field."""
    survey = MMUSurvey(path)
    out: dict = {"path": str(Path(path)), "n_objects": len(survey), "n_tiles": len(survey.tiles),
                 "n_without_position": int(np.sum(~np.isfinite(survey.ra)))}
    counts: dict[str, int] = defaultdict(int)
    invalid: dict[str, int] = defaultdict(int)
    bands, shapes, pixel_scales, photometry_bands = set(), set(), set(), set()
    wave_min, wave_max, n_pix = np.inf, -np.inf, set()
    labels: dict[str, dict] = {}
    for tile in survey.tiles:
        with h5py.File(tile, "r") as f:
            n = f["object_id"].shape[0]
            for start in range(0, n, CHUNK):
                sl = slice(start, min(n, start + CHUNK))
                checked = {c: f[c][sl] for c in ROW_CHECKED if c in f}
                check_rows(checked, decode_strings(f["object_id"][sl]).astype(str), str(tile))
                if "image_array" in f:
                    band_rows = decode_strings(f["image_band"][sl])
                    present = np.array([any(r) for r in band_rows])
                    counts["image"] += int(present.sum())
                    for r in band_rows[present]:
                        bands.add(tuple(r))
                    shapes.add(tuple(f["image_array"].shape[1:]))
                    if "image_scale" in f:  # optional columns (MMU files of other writers may lack them)
                        pixel_scales.update(np.unique(np.round(f["image_scale"][sl][present], 4)).tolist())
                    flux, ivar = f["image_array"][sl], checked.get("image_ivar")
                    invalid["image_array non-finite"] += int(np.sum(~np.isfinite(flux[present])))
                    if ivar is not None:
                        known = ~np.all(np.isnan(ivar.reshape(len(ivar), -1)), axis=1) & present
                        invalid["image_ivar <= 0 or non-finite"] += int(np.sum(~(ivar[known] > 0)))
                    if "image_mask" in f:
                        invalid["image_mask False"] += int(np.sum(~f["image_mask"][sl][present]))
                if "spectrum_flux" in f:
                    wave = checked["spectrum_lambda"]
                    valid = wave > 0
                    present = valid.any(axis=1)
                    counts["spectrum"] += int(present.sum())
                    if present.any():
                        wave_min = min(wave_min, float(wave[valid].min()))
                        wave_max = max(wave_max, float(wave[valid].max()))
                        n_pix.update(valid.sum(axis=1)[present].tolist())
                    flux = f["spectrum_flux"][sl]
                    ivar = checked.get("spectrum_ivar", np.ones(flux.shape, np.float32))
                    invalid["spectrum_flux non-finite"] += int(np.sum(~np.isfinite(flux[valid])))
                    invalid["spectrum_ivar <= 0 or non-finite"] += int(np.sum(~(ivar[valid] > 0)))
                if "photometry_flux" in f:
                    flux = f["photometry_flux"][sl]
                    present = np.isfinite(flux).any(axis=1)
                    counts["photometry"] += int(present.sum())
                    if "photometry_band" in f:
                        for row in decode_strings(f["photometry_band"][sl][present]):
                            photometry_bands.add(tuple(b for b in row if b))
                for name in f.keys():
                    if name in RESERVED or f[name].ndim > 1:  # MMU's array columns (image_rgb, ...) are not labels
                        continue
                    values = decode_strings(f[name][sl])
                    entry = labels.setdefault(name, {"n": 0, "min": np.inf, "max": -np.inf, "classes": set()})
                    if values.dtype == object:
                        present = values != ""
                        entry["n"] += int(present.sum())
                        entry["classes"].update(values[present].tolist())
                    else:
                        values = values.astype(np.float64)
                        good = np.isfinite(values)
                        entry["n"] += int(good.sum())
                        if good.any():
                            entry["min"] = min(entry["min"], float(values[good].min()))
                            entry["max"] = max(entry["max"], float(values[good].max()))
    out["modalities"] = dict(counts)
    if counts.get("image"):
        out["image"] = {"bands": sorted(bands), "shape": sorted(shapes), "pixel_scale": sorted(pixel_scales)}
    if photometry_bands:
        out["photometry"] = {"bands": sorted(photometry_bands)}
    if counts.get("spectrum"):
        out["spectrum"] = {"wavelength_min": wave_min, "wavelength_max": wave_max,
                           "n_pixels_min": min(n_pix), "n_pixels_max": max(n_pix)}
    out["labels"] = {}
    for name, entry in sorted(labels.items()):
        if entry["classes"]:
            classes = sorted(entry["classes"])
            out["labels"][name] = {"n": entry["n"], "classes": classes[:20], "n_classes": len(classes)}
        else:
            out["labels"][name] = {"n": entry["n"], "min": entry["min"], "max": entry["max"]}
    out["invalid"] = {k: v for k, v in invalid.items()}
    return out


def print_summary(summary: dict, console=None) -> None:
    """Print a :func:`summarize` result as tables (what ``astroembed info`` and the main job show)."""
    from rich.console import Console
    from rich.table import Table

    out = console or Console()
    out.print(f"[bold]{summary['path']}[/]: {summary['n_objects']} objects in {summary['n_tiles']} tiles"
              f" ({summary['n_without_position']} without position)")
    table = Table(title="modalities")
    table.add_column("modality"), table.add_column("objects", justify="right"), table.add_column("details")
    for modality, count in summary["modalities"].items():
        details = ""
        if modality == "image":
            im = summary["image"]
            # each entry is a set of distinct values: most surveys have one band list, shape and scale
            bands = "; ".join(",".join(b) for b in im["bands"])
            shapes = "; ".join("x".join(str(n) for n in shape) for shape in im["shape"])
            scales = "; ".join(f"{scale:g}" for scale in im["pixel_scale"])
            details = f"bands {bands}, shape {shapes}, {scales} arcsec/pix"
        elif modality == "spectrum":
            sp = summary["spectrum"]
            details = (f"{sp['wavelength_min']:.1f}-{sp['wavelength_max']:.1f} A, "
                       f"{sp['n_pixels_min']}-{sp['n_pixels_max']} pixels")
        elif modality == "photometry" and "photometry" in summary:
            details = "bands " + "; ".join(",".join(b) for b in summary["photometry"]["bands"])
        table.add_row(modality, str(count), details)
    out.print(table)
    table = Table(title="labels")
    table.add_column("label"), table.add_column("n", justify="right"), table.add_column("range / classes")
    for name, entry in summary["labels"].items():
        rng = (f"{entry['n_classes']} classes: {', '.join(map(str, entry['classes'][:6]))}"
               if "classes" in entry else f"{entry['min']:.4g} .. {entry['max']:.4g}")
        table.add_row(name, str(entry["n"]), rng)
    out.print(table)
    table = Table(title="invalid values (masked)")
    table.add_column("what"), table.add_column("count", justify="right")
    for name, count in summary["invalid"].items():
        table.add_row(name, str(count))
    out.print(table)
