"""Spectra predicted from the shared space, judged against the observed ones on held-out galaxies.

Every method predicts, for each held-out galaxy, a normalised spectrum on the model grid and log10 of
its scale (as :mod:`astroembed.preprocess.spectrum` writes the observed one):

- ``decoder``: the spectrum decoder saved with the aligned model (``load(model).predict_spectrum``);
- ``knn_mean``: the mean of the k nearest training galaxies' observed spectra, neighbours found in the
  shared space (cosine; each pixel averaged over the neighbours where it is valid);
- ``shifted_median``: the training population's median rest-frame spectrum, shifted to the k-NN
  redshift (the median redshift of the same k neighbours).

Scores (:func:`prediction_report`), with each spectrum normalised the same way: observed and predicted
divided by their median |flux| over the observed spectrum's valid pixels (the spectrum model's
normalisation; the observed ivar scaled by the square of the observed scale):

- chi^2 per degree of freedom against the observed spectrum and its ivar (dof: valid pixels);
- the redshift recovered from the predicted spectrum: its embedding by the aligned model's spectrum
  encoder (flux = shape x predicted scale), k-NN (k=16) against the training galaxies' observed spectra;
- Dn4000 and the H-alpha and [O II] line fluxes (:mod:`astroembed.evaluate.spectral_features`), measured
  on the observed spectrum at the true redshift and on the predicted one at the true redshift
  (``features``) and at the redshift recovered from it (``features_at_recovered_z``: what the prediction
  says about the feature apart from where it put it).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch

from ..data.dataset import MMUDataset
from ..preprocess.stored import prepare_stored_spectra
from .probes import knn_regressor
from .redshift import knn_redshift_report
from .spectral_features import LINES, dn4000, line_flux, renormalise

__all__ = ["galaxy_table", "knn_mean_spectrum", "shifted_median_spectrum", "renormalise", "chi2_per_dof",
           "feature_recovery", "prediction_report", "plot_prediction", "write_prediction_figure", "METHODS"]

METHODS = ("decoder", "knn_mean", "shifted_median")


def galaxy_table(embedder, data, indices=None, inputs=("image",), labels=("redshift",), batch_size: int = 256,
                 with_spectra: bool = True) -> dict[str, np.ndarray]:
    """Embed galaxies of an MMU survey once, and put their spectra on the model grid.

    Parameters
    ----------
    embedder
        an aligned model (``astroembed.load(...)``).
    data
        MMU survey folder or tile.
    indices
        survey rows (default: all).
    inputs
        modalities whose shared-space vectors are averaged (and re-normalised) into ``vector``.
    labels
        label columns to keep (those the survey has).
    with_spectra
        also read the spectra (training and evaluation; not for prediction alone).

    Returns
    -------
    dict of arrays: ``object_id`` (N,), ``index`` (N,), ``vector`` (N, D); with spectra ``flux``,
    ``ivar`` (N, L) normalised, ``valid`` (N, L) bool, ``log10_scale`` (N,); and the labels.
    """
    modalities = tuple(inputs) + (("spectrum",) if with_spectra else ())
    probe = MMUDataset(data, modalities=modalities, indices=[0] if indices is None else indices[:1])
    keep = tuple(c for c in labels if c in probe.survey.label_columns)
    dataset = MMUDataset(data, modalities=modalities, labels=keep, indices=indices, survey=probe.survey)
    bands = probe.survey.galaxy(int(dataset.indices[0])).photometry.bands if "photometry" in inputs else None
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch_size, num_workers=0)
    parts: dict[str, list] = {}
    n_pixels = embedder.spectrum_preprocess_config.n_pixels
    for batch in loader:
        vectors = []
        if "image" in inputs:
            vectors.append(embedder.embed(batch["image"].numpy(), batch_size))
        if "photometry" in inputs:
            vectors.append(embedder.embed_photometry(batch["photometry_flux"].numpy(),
                                                     batch["photometry_ivar"].numpy(), bands))
        z = np.sum(vectors, axis=0)
        rows = {"object_id": np.asarray(batch["object_id"]), "index": batch["index"].numpy(),
                "vector": z / np.maximum(np.linalg.norm(z, axis=1, keepdims=True), 1e-12)}
        if with_spectra:
            prepared = prepare_stored_spectra(batch["spectrum_flux"], batch["spectrum_ivar"],
                                              batch["spectrum_lambda"], batch["spectrum_mask"],
                                              embedder.spectrum_preprocess_config)
            rows.update(flux=prepared["flux"][:, :n_pixels].numpy(), ivar=prepared["ivar"][:, :n_pixels].numpy(),
                        valid=prepared["valid"][:, :n_pixels].numpy() > 0,
                        log10_scale=prepared["log10_scale"].numpy())
        rows.update({c: batch[c].numpy().astype(np.float64) for c in keep})
        for key, value in rows.items():
            parts.setdefault(key, []).append(value)
    return {key: np.concatenate(value) for key, value in parts.items()}


def _neighbours(train_vectors: np.ndarray, query_vectors: np.ndarray, k: int) -> np.ndarray:
    """(Nq, k) indices of the k most cosine-similar training vectors, most similar first."""
    a = train_vectors / np.maximum(np.linalg.norm(train_vectors, axis=1, keepdims=True), 1e-12)
    b = query_vectors / np.maximum(np.linalg.norm(query_vectors, axis=1, keepdims=True), 1e-12)
    similarity = b @ a.T
    k = min(k, len(a))
    top = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
    order = np.argsort(-np.take_along_axis(similarity, top, axis=1), axis=1)
    return np.take_along_axis(top, order, axis=1)


def knn_mean_spectrum(train: dict, query_vectors: np.ndarray, k: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Baseline: (shape (Nq, L), log10 scale (Nq,)), the mean of the k nearest training galaxies' normalised
    spectra (per pixel over the neighbours where it is valid; 0 where none is) and of their log10 scales."""
    idx = _neighbours(train["vector"], query_vectors, k)
    valid = train["valid"][idx]
    total = np.where(valid, train["flux"][idx], 0.0).sum(1)
    count = valid.sum(1)
    shape = np.where(count > 0, total / np.maximum(count, 1), 0.0)
    return shape, train["log10_scale"][idx].mean(1)


def _rest_median(train: dict, grid: np.ndarray, rest_grid: np.ndarray) -> np.ndarray:
    """The training galaxies' median normalised spectrum on a rest-frame grid (NaN where none covers it)."""
    stack = np.full((len(train["flux"]), len(rest_grid)), np.nan)
    for i, (flux, valid, z) in enumerate(zip(train["flux"], train["valid"], train["redshift"])):
        observed = rest_grid * (1.0 + z)
        inside = (observed >= grid[0]) & (observed <= grid[-1])
        values = np.interp(observed, grid, flux)
        usable = np.interp(observed, grid, valid.astype(np.float64)) > 0.999
        stack[i] = np.where(inside & usable, values, np.nan)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # columns no galaxy covers stay NaN
        return np.nanmedian(stack, axis=0)


def shifted_median_spectrum(train: dict, query_vectors: np.ndarray, grid: np.ndarray, k: int = 10
                            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Baseline: the population's median rest-frame spectrum shifted to each query's k-NN redshift.

    Returns (shape (Nq, L), log10 scale (Nq,): the neighbours' mean, k-NN redshift (Nq,): the median
    redshift of the k nearest training galaxies in the shared space).
    """
    z_max = float(np.max(train["redshift"]))
    rest_grid = np.geomspace(grid[0] / (1.0 + z_max), grid[-1], 4 * len(grid))
    median = _rest_median(train, grid, rest_grid)
    covered = np.isfinite(median)
    idx = _neighbours(train["vector"], query_vectors, k)
    z_knn = np.median(train["redshift"][idx], axis=1)
    shape = np.stack([np.interp(grid / (1.0 + z), rest_grid[covered], median[covered]) for z in z_knn])
    return shape, train["log10_scale"][idx].mean(1), z_knn


def chi2_per_dof(predicted: np.ndarray, observed: np.ndarray, ivar: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(N,) sum over valid pixels of ivar (predicted - observed)^2, divided by the number of valid pixels
    (NaN for a row with none). Both are renormalised first (:func:`renormalise` over the valid pixels),
    the observed ivar by the square of the observed scale."""
    pred, _ = renormalise(predicted, valid)
    obs, s = renormalise(observed, valid)
    w = np.where(valid, ivar * s[:, None] ** 2, 0.0)
    n = valid.sum(1)
    with np.errstate(all="ignore"):
        return np.where(n > 0, (w * (pred - obs) ** 2).sum(1) / n, np.nan)


def feature_recovery(predicted: np.ndarray, observed: np.ndarray, valid: np.ndarray, grid: np.ndarray,
                     redshift: np.ndarray, predicted_redshift: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """Dn4000 and line fluxes of predicted vs observed spectra (both renormalised over the observed valid
    pixels): median |difference|, Pearson correlation and the number of galaxies measured on both.

    The observed spectrum is measured at ``redshift`` over its valid pixels, the predicted one over all its
    pixels at ``predicted_redshift`` (default: the same ``redshift``; give the redshift recovered from the
    prediction to score the features apart from the error of where the prediction put them).
    """
    pred, _ = renormalise(predicted, valid)
    obs, _ = renormalise(observed, valid)
    z_pred = redshift if predicted_redshift is None else predicted_redshift
    everywhere = np.ones(pred.shape, bool)
    out = {}
    for name in ("dn4000", *LINES):
        a, b = (dn4000(grid, f, z, v) if name == "dn4000" else line_flux(grid, f, z, name, v)
                for f, z, v in ((pred, z_pred, everywhere), (obs, redshift, valid)))
        ok = np.isfinite(a) & np.isfinite(b)
        corr = float(np.corrcoef(a[ok], b[ok])[0, 1]) if ok.sum() > 2 else float("nan")
        out[name] = {"median_abs_error": float(np.median(np.abs(a[ok] - b[ok]))) if ok.any() else float("nan"),
                     "pearson_r": corr, "n": int(ok.sum()),
                     "median_observed": float(np.median(b[ok])) if ok.any() else float("nan")}
    return out


def prediction_report(predictions: dict[str, tuple[np.ndarray, np.ndarray]], test: dict, grid: np.ndarray,
                      embedder, train_spectrum_vectors: np.ndarray, train_redshift: np.ndarray) -> dict:
    """Score each method's (shape, log10 scale) against the held-out observed spectra (see the module doc).

    ``train_spectrum_vectors`` are the training galaxies' observed spectra embedded by ``embedder``'s
    spectrum encoder, the reference of the k-NN redshift recovered from each predicted spectrum.
    """
    report = {}
    for name, (shape, log10_scale) in predictions.items():
        chi2 = chi2_per_dof(shape, test["flux"], test["ivar"], test["valid"])
        flux = shape * 10.0 ** log10_scale[:, None]
        vectors = embedder.embed_spectrum(flux.astype(np.float32), np.ones_like(flux, np.float32), grid)
        z_report = knn_redshift_report(train_spectrum_vectors, train_redshift, vectors, test["redshift"], k=16)
        z_recovered = knn_regressor(16).fit(train_spectrum_vectors, train_redshift).predict(vectors)
        report[name] = {"chi2_per_dof_median": float(np.nanmedian(chi2)),
                        "chi2_per_dof_mean": float(np.nanmean(chi2)),
                        "log10_scale_rms": float(np.sqrt(np.mean((log10_scale - test["log10_scale"]) ** 2))),
                        "redshift": {key: z_report[key] for key in ("r2", "sigma_mad", "outlier_fraction",
                                                                     "median_abs_dz")},
                        "features": feature_recovery(shape, test["flux"], test["valid"], grid, test["redshift"]),
                        "features_at_recovered_z": feature_recovery(shape, test["flux"], test["valid"], grid,
                                                                    test["redshift"], z_recovered)}
    return report


def plot_prediction(grid, observed, valid, predicted, path, object_ids=None, redshifts=None, baseline=None,
                    n: int = 5, seed: int = 0):
    """Write a PNG of ``n`` galaxies, chosen at random with ``seed``: each observed spectrum (grey) with its
    predicted one over it (and ``baseline``'s, dashed, when given), all renormalised over the valid pixels.
    Returns the path and the rows shown."""
    from .spectrum_plots import prediction_figure

    return prediction_figure(grid, observed, valid, predicted, path, object_ids, redshifts, baseline, n, seed)


def write_prediction_figure(model, data, indices, path, n: int = 5, seed: int = 0, device: str = "cpu"):
    """The main job's figure: ``n`` galaxies drawn with ``seed`` from the survey rows ``indices`` (e.g. the
    held-out split), their spectra predicted from their images by the decoder saved with ``model`` drawn
    over the observed ones. Returns (path, the object ids shown)."""
    from ..inference import load

    embedder = load(model, device=device)
    indices = np.asarray(indices)
    rows = np.sort(np.random.default_rng(seed).choice(indices, size=min(n, len(indices)), replace=False))
    table = galaxy_table(embedder, data, rows)
    _, shape = embedder.decode_spectrum(table["vector"], normalised=True)
    path, shown = plot_prediction(embedder.spectrum_preprocess_config.grid, table["flux"], table["valid"], shape,
                                  path, table["object_id"], table.get("redshift"), n=len(rows), seed=seed)
    return path, [str(i) for i in table["object_id"][shown]]
