"""Predicted spectra of a whole survey written to one file (`astroembed predict-spectrum`).

Two formats, chosen by the suffix of the output:

- **Parquet** (``.parquet``): columns ``object_id`` (string) and ``flux`` (fixed-size list of float32, one
  value per grid pixel); the schema metadata key ``astroembed`` holds JSON with the grid
  (``wavelength``: every pixel centre in Angstrom, vacuum, plus ``wave_min``, ``wave_step``,
  ``n_pixels``), the flux ``unit``, the model folder and its content hash;
- **FITS** (``.fits``): HDU 1 ``PREDICTED`` is a binary table of ``OBJECT_ID`` and ``FLUX`` (a vector column),
  its header carrying ``WAVEMIN``, ``WAVESTEP``, ``NPIX``, ``BUNIT`` and ``MODELHSH``; HDU 2 ``WAVELENGTH``
  is the grid as an image.

The flux is in the survey's unit (1e-17 erg/s/cm^2/A) or, with ``normalised``, divided by the predicted
scale (median |flux| = 1, the spectrum model's normalisation).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..inference import load
from .spectrum_prediction import galaxy_table

__all__ = ["predict_survey_spectra", "write_predicted_spectra", "read_predicted_spectra", "FLUX_UNIT"]

FLUX_UNIT = "1e-17 erg/s/cm^2/Angstrom"


def predict_survey_spectra(model, data, normalised: bool = False, indices=None, device: str = "cpu",
                           batch_size: int = 256) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict]:
    """(object ids, grid, (N, L) flux, metadata) of every galaxy of an MMU survey (or of ``indices``), from
    the inputs the model's decoder was trained on."""
    from ..models.spectrum_decoder import load_decoder

    embedder = load(model, device=device)
    if getattr(embedder, "modality", None) != "aligned":
        raise ValueError(f"{model}: spectra are predicted by an aligned (CLIP) model with a spectrum decoder")
    _, decoder_config = load_decoder(embedder.path)
    table = galaxy_table(embedder, data, indices, tuple(decoder_config["inputs"]), labels=(), batch_size=batch_size,
                         with_spectra=False)
    grid, flux = embedder.decode_spectrum(table["vector"], normalised, batch_size)
    pre = embedder.spectrum_preprocess_config
    meta = {"wavelength": grid.tolist(), "wave_min": pre.wave_min, "wave_step": pre.wave_step,
            "n_pixels": int(pre.n_pixels), "unit": "normalised (median |flux| = 1)" if normalised else FLUX_UNIT,
            "model": str(embedder.path), "model_hash": embedder.content_hash, "inputs": decoder_config["inputs"]}
    return table["object_id"].astype(str), grid, flux, meta


def write_predicted_spectra(model, data, out, normalised: bool = False, device: str = "cpu",
                            batch_size: int = 256) -> Path:
    """Predict every galaxy's spectrum and write ``out`` (``.parquet`` or ``.fits``, see the module doc)."""
    out = Path(out)
    if out.suffix.lower() not in (".parquet", ".fits"):
        raise ValueError(f"{out}: the output must end in .parquet or .fits")
    ids, grid, flux, meta = predict_survey_spectra(model, data, normalised, device=device, batch_size=batch_size)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        if out.suffix.lower() == ".parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            column = pa.FixedSizeListArray.from_arrays(pa.array(flux.reshape(-1), pa.float32()), flux.shape[1])
            table = pa.table({"object_id": pa.array(ids, pa.string()), "flux": column})
            pq.write_table(table.replace_schema_metadata({"astroembed": json.dumps(meta)}), tmp)
        else:
            from astropy.io import fits

            columns = fits.ColDefs([fits.Column("OBJECT_ID", f"{max(1, max(map(len, ids), default=1))}A", array=ids),
                                    fits.Column("FLUX", f"{flux.shape[1]}E", array=flux)])
            table = fits.BinTableHDU.from_columns(columns, name="PREDICTED")
            for key, value in (("WAVEMIN", meta["wave_min"]), ("WAVESTEP", meta["wave_step"]),
                               ("NPIX", meta["n_pixels"]), ("BUNIT", meta["unit"][:68]),
                               ("MODELHSH", meta["model_hash"][:68])):
                table.header[key] = value
            fits.HDUList([fits.PrimaryHDU(), table, fits.ImageHDU(grid, name="WAVELENGTH")]).writeto(tmp)
    return out


def read_predicted_spectra(path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(object ids, grid, (N, L) flux) from a file :func:`write_predicted_spectra` wrote."""
    path = Path(path)
    if path.suffix.lower() == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(path)
        meta = json.loads(table.schema.metadata[b"astroembed"])
        flux = np.asarray(table.column("flux").combine_chunks().flatten(), np.float32)
        return (np.asarray(table.column("object_id").to_pylist()), np.asarray(meta["wavelength"]),
                flux.reshape(len(table), -1))
    from astropy.io import fits

    with fits.open(path) as hdus:
        data = hdus["PREDICTED"].data
        return (np.asarray(data["OBJECT_ID"]).astype(str), np.asarray(hdus["WAVELENGTH"].data, np.float64),
                np.asarray(data["FLUX"], np.float32))
