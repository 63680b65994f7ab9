"""The ``<survey>/<survey>.py`` loading script astroembed writes beside a survey, in the style of MMU's.

The Multimodal Universe is read through Hugging Face ``datasets`` loading scripts that live beside the data
(MultimodalUniverse/MultimodalUniverse @ 2dcff3dd, ``scripts/<survey>/<survey>.py``): one ``BuilderConfig`` per
config folder, a ``Features`` schema, and ``_generate_examples`` reading rows with h5py as stored. The script
written here follows the same structure (images as a sequence of per-band dicts like ``scripts/hsc/hsc.py``,
spectra as a sequence of per-pixel dicts like ``scripts/sdss/sdss.py``, catalogue values as top-level features),
so ``datasets.load_dataset("<root>/<survey>", "<config>", trust_remote_code=True)`` reads astroembed's output
as it reads MMU's (``datasets`` < 4: version 4 dropped loading scripts, for MMU's as for ours).

Values are passed as stored: ``spectrum_mask`` True = bad pixel, as in MMU.
"""

from __future__ import annotations

import pprint
from pathlib import Path

import h5py

from ..files import atomic_write_text
from .mmu_conventions import MMU_COMMIT, RESERVED, TILE_FILE

__all__ = ["write_builder_script", "survey_schema"]

_MARKER = "Written by astroembed in the style of the Multimodal Universe"
_TEMPLATE = '''"""Hugging Face datasets loading script for the astroembed survey {survey!r}.

Written by astroembed in the style of the Multimodal Universe's scripts/<survey>/<survey>.py
(MultimodalUniverse/MultimodalUniverse @ {commit}). Load with
    datasets.load_dataset("<this folder>", "<config>", trust_remote_code=True)
spectrum mask: True = bad pixel (MMU's convention). Regenerated whenever astroembed writes to this survey.
"""
import datasets
import h5py
import numpy as np
from datasets import Array2D, Features, Sequence, Value
from datasets.data_files import DataFilesPatternsDict

_SCHEMA = {schema}
_VERSION = "1.0.0"


def _text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


class Survey(datasets.GeneratorBasedBuilder):
    """{survey} (written by astroembed)."""

    VERSION = _VERSION
    BUILDER_CONFIGS = [
        datasets.BuilderConfig(
            name=name, version=_VERSION,
            data_files=DataFilesPatternsDict.from_patterns({{"train": [f"{{name}}/healpix=*/*.hdf5"]}}))
        for name in sorted(_SCHEMA)
    ]
    DEFAULT_CONFIG_NAME = sorted(_SCHEMA)[0]

    def _info(self):
        schema = _SCHEMA[self.config.name]
        features = {{}}
        if schema["image"]:
            h, w = schema["image"]
            features["image"] = Sequence(feature={{
                "band": Value("string"), "flux": Array2D(shape=(h, w), dtype="float32"),
                "ivar": Array2D(shape=(h, w), dtype="float32"), "mask": Array2D(shape=(h, w), dtype="bool"),
                "psf_fwhm": Value("float32"), "scale": Value("float32")}})
        if schema["spectrum"]:
            features["spectrum"] = Sequence(feature={{
                "flux": Value("float32"), "ivar": Value("float32"), "lsf_sigma": Value("float32"),
                "lambda": Value("float32"), "mask": Value("bool")}})
        if schema["photometry"]:
            features["photometry"] = Sequence(feature={{
                "band": Value("string"), "flux": Value("float32"), "ivar": Value("float32")}})
        for name, kind in schema["labels"].items():
            features[name] = Value(kind)
        features["object_id"] = Value("string")
        return datasets.DatasetInfo(description="astroembed survey {survey}", features=Features(features))

    def _split_generators(self, dl_manager):
        splits = []
        for split_name, files in self.config.data_files.items():
            if isinstance(files, str):
                files = [files]
            splits.append(datasets.SplitGenerator(name=split_name, gen_kwargs={{"files": files}}))
        return splits

    def _generate_examples(self, files, object_ids=None):
        schema = _SCHEMA[self.config.name]
        for j, file in enumerate(files):
            with h5py.File(file, "r") as data:
                keys = object_ids[j] if object_ids is not None else data["object_id"][:]
                sort_index = np.argsort(data["object_id"][:])
                sorted_ids = data["object_id"][:][sort_index]
                for k in keys:
                    i = sort_index[np.searchsorted(sorted_ids, k)]
                    example = {{}}
                    if schema["image"]:
                        example["image"] = [
                            {{"band": _text(data["image_band"][i][b]), "flux": data["image_array"][i][b],
                              "ivar": data["image_ivar"][i][b], "mask": data["image_mask"][i][b],
                              "psf_fwhm": data["image_psf_fwhm"][i][b], "scale": data["image_scale"][i][b]}}
                            for b in range(data["image_array"].shape[1])]
                    if schema["spectrum"]:
                        example["spectrum"] = {{
                            "flux": data["spectrum_flux"][i], "ivar": data["spectrum_ivar"][i],
                            "lsf_sigma": data["spectrum_lsf_sigma"][i], "lambda": data["spectrum_lambda"][i],
                            "mask": data["spectrum_mask"][i]}}
                    if schema["photometry"]:
                        example["photometry"] = {{
                            "band": [_text(b) for b in data["photometry_band"][i]],
                            "flux": data["photometry_flux"][i], "ivar": data["photometry_ivar"][i]}}
                    for name, kind in schema["labels"].items():
                        value = data[name][i] if name in data else None
                        example[name] = _text(value) if kind == "string" and value is not None else value
                    example["object_id"] = _text(data["object_id"][i])
                    yield example["object_id"], example
'''


def survey_schema(tile: Path) -> dict:
    """What the loading script declares for one config, read from one of its tiles."""
    with h5py.File(tile, "r") as f:
        labels = {}
        for name in sorted(f.keys()):
            if name in RESERVED or f[name].ndim != 1:
                continue
            kind = f[name].dtype.kind
            labels[name] = "string" if kind in "SO" else "bool" if kind == "b" else \
                "int64" if kind in "iu" else "float64"
        return {"image": list(f["image_array"].shape[2:]) if "image_array" in f else None,
                "spectrum": "spectrum_flux" in f, "photometry": "photometry_flux" in f, "labels": labels}


def write_builder_script(root, survey: str) -> Path:
    """Write ``<root>/<survey>/<survey>.py`` declaring every config folder found there; returns its path.

    A script there that astroembed did not write (MMU's own, when writing into an MMU folder) is kept.
    """
    folder = Path(root) / survey
    schema = {}
    for config in sorted(p for p in folder.iterdir() if p.is_dir()):
        tiles = sorted(config.glob(f"healpix=*/{TILE_FILE}"))
        if tiles:
            schema[config.name] = survey_schema(tiles[0])
    path = folder / f"{survey}.py"
    if path.exists() and _MARKER not in path.read_text(errors="replace"):
        # A survey folder of MMU's own (or a user's script): its loading script knows its catalogue columns
        # better than ours would; leave it alone.
        return path
    text = _TEMPLATE.format(survey=survey, commit=MMU_COMMIT, schema=pprint.pformat(schema, width=100))
    return atomic_write_text(path, text)
