"""Artefacts injected into cutouts, to test that an anomaly ranking finds what a survey pipeline misses:
satellite trails, cosmic rays, bad columns, saturated stars and blank sky.

Each function takes one image (bands, H, W) in the survey's flux units and a numpy Generator and returns a
new image; amplitudes are in units of the image's own noise (a robust MAD estimate per band), so the
same call makes a comparable artefact on any survey.
"""

from __future__ import annotations

import numpy as np

__all__ = ["noise_sigma", "satellite_trail", "cosmic_rays", "bad_column", "saturated_star", "blank_sky",
           "ARTEFACTS", "injection_auc"]


def noise_sigma(image: np.ndarray) -> np.ndarray:
    """Per-band noise: 1.4826 x MAD of the outer ring of pixels (sky, away from the central galaxy)."""
    image = np.asarray(image, np.float64)
    edge = max(2, image.shape[-1] // 8)
    ring = np.concatenate([image[:, :edge].reshape(len(image), -1), image[:, -edge:].reshape(len(image), -1),
                           image[:, :, :edge].reshape(len(image), -1), image[:, :, -edge:].reshape(len(image), -1)],
                          axis=1)
    mad = np.median(np.abs(ring - np.median(ring, axis=1, keepdims=True)), axis=1)
    return np.maximum(1.4826 * mad, 1e-12)


def satellite_trail(image, rng, amplitude: float = 30.0, width: float = 1.5) -> np.ndarray:
    """A straight streak across the cutout at a random angle and offset, in every band (a satellite's
    reflected sunlight), Gaussian across its width."""
    out = np.array(image, np.float64)
    _, h, w = out.shape
    yy, xx = np.mgrid[:h, :w]
    angle = rng.uniform(0, np.pi)
    offset = rng.uniform(-0.25, 0.25) * min(h, w)
    distance = (xx - w / 2) * np.sin(angle) - (yy - h / 2) * np.cos(angle) - offset
    out += amplitude * noise_sigma(image)[:, None, None] * np.exp(-0.5 * (distance / width) ** 2)[None]
    return out.astype(np.asarray(image).dtype)


def cosmic_rays(image, rng, n: int = 6, amplitude: float = 100.0) -> np.ndarray:
    """A few very bright pixels (and short two-pixel tracks) in one band only: cosmic rays hit one exposure."""
    out = np.array(image, np.float64)
    bands, h, w = out.shape
    sigma = noise_sigma(image)
    for _ in range(n):
        b, y, x = rng.integers(bands), rng.integers(h - 1), rng.integers(w - 1)
        out[b, y, x] += amplitude * sigma[b]
        if rng.random() < 0.5:
            out[b, y + rng.integers(2), x + 1] += 0.7 * amplitude * sigma[b]
    return out.astype(np.asarray(image).dtype)


def bad_column(image, rng, amplitude: float = 50.0, n: int = 2) -> np.ndarray:
    """``n`` adjacent columns of one band set to a high constant (a hot CCD column). Dead columns (zero flux,
    zero ivar) are not injected: readers mask them, and the built-in survey already carries some."""
    out = np.array(image, np.float64)
    bands, _, w = out.shape
    b, x = rng.integers(bands), rng.integers(w - n)
    out[b, :, x:x + n] = amplitude * noise_sigma(image)[b]
    return out.astype(np.asarray(image).dtype)


def saturated_star(image, rng, amplitude: float = 2000.0, fwhm: float = 3.0) -> np.ndarray:
    """A bright point source off the centre in every band, clipped flat at a saturation level with a
    vertical bleed trail, as a saturated star in the cutout looks."""
    out = np.array(image, np.float64)
    _, h, w = out.shape
    sigma = noise_sigma(image)[:, None, None]
    cy, cx = rng.uniform(0.15, 0.35) * h, rng.uniform(0.15, 0.85) * w
    yy, xx = np.mgrid[:h, :w]
    profile = np.exp(-0.5 * ((yy - cy) ** 2 + (xx - cx) ** 2) / (fwhm / 2.355) ** 2)
    star = amplitude * sigma * profile[None]
    level = 0.3 * amplitude * sigma
    bleed = (np.abs(xx - cx) < 1.0)[None] & (np.abs(yy - cy) < h / 6)[None]
    out = np.minimum(out + star, level)
    out = np.where(bleed, level, out)
    return out.astype(np.asarray(image).dtype)


def blank_sky(image, rng) -> np.ndarray:
    """The galaxy replaced by sky: Gaussian noise at the image's own noise level (a failed detection)."""
    sigma = noise_sigma(image)[:, None, None]
    return (sigma * rng.standard_normal(np.shape(image))).astype(np.asarray(image).dtype)


ARTEFACTS = {"satellite_trail": satellite_trail, "cosmic_rays": cosmic_rays, "bad_column": bad_column,
             "saturated_star": saturated_star, "blank_sky": blank_sky}


def injection_auc(embed, reference: np.ndarray, images: np.ndarray, kinds=None, k: int = 10,
                  seed: int = 0, injections: dict | None = None, reference_images: np.ndarray | None = None,
                  reference_ivar: np.ndarray | None = None,
                  ivar: np.ndarray | None = None) -> dict[str, dict[str, float]]:
    """ROC-AUC of each injected kind against the same normal cutouts, for the k-NN OOD score and the
    IsolationForest baseline, both fitted on ``reference`` embeddings (e.g. the training galaxies').
    ``injections`` maps a kind to its function(image, rng): :data:`ARTEFACTS` by default, or e.g.
    ``{**ARTEFACTS, **inject_objects.OTHER_OBJECTS}`` for stars, quasars and other cameras too.

    ``embed`` maps (N, bands, H, W) cutouts to (N, D) embeddings; every kind is injected into a copy
    of each of ``images`` (held-out galaxies), so each comparison is the same galaxies with and
    without the artefact. With ``reference_images`` (the reference objects' cutouts, and their
    ``reference_ivar`` if any; ``ivar``, that of ``images``, is kept for the injected copies: an artefact
    is what the pipeline's inverse variance does not know about) the pixel-quality score
    (:mod:`.pixel_quality`) and the combined ranking of :func:`.anomaly.rank_catalog` are scored too:
    keys ``pixel``, ``combined`` and their median p-values.
    """
    from sklearn.metrics import roc_auc_score

    from .anomaly import IsolationForestScorer, KNNOutlierScorer, combine_pvalues, combined_rank
    from .pixel_quality import PixelArtefactScorer, pixel_features

    knn = KNNOutlierScorer(k=k, seed=seed).fit(reference)
    forest = IsolationForestScorer(seed=seed).fit(reference)
    normal = embed(images)
    pixels = None
    if reference_images is not None:
        pixels = PixelArtefactScorer(seed=seed).fit(pixel_features(reference_images, reference_ivar))
        normal_pixels = pixel_features(images, ivar)
    truth = np.r_[np.zeros(len(images)), np.ones(len(images))]
    out = {}
    injections = injections or ARTEFACTS
    for kind in kinds or sorted(injections):
        if kind not in injections:
            raise ValueError(f"unknown injection {kind!r}; kinds: {', '.join(sorted(injections))}")
        rng = np.random.default_rng(seed)
        injected = np.stack([injections[kind](im, rng) for im in images])
        strange = embed(injected)
        both = np.r_[normal, strange]
        knn_score = knn.score(both)
        out[kind] = {"knn": float(roc_auc_score(truth, knn_score)),
                     "isolation_forest": float(roc_auc_score(truth, forest.score(both))),
                     "knn_median_pvalue": float(np.median(knn.p_value_of_scores(knn_score[len(images):])))}
        if pixels is not None:
            pixel_score = pixels.score(np.r_[normal_pixels, pixel_features(injected, ivar)])
            pixel_p = pixels.p_value_of_scores(pixel_score)
            p = combine_pvalues(knn.p_value_of_scores(knn_score), pixel_p)
            rank = combined_rank(p, np.maximum(knn.z_of_scores(knn_score), pixel_score))
            out[kind].update(pixel=float(roc_auc_score(truth, pixel_score)),
                             combined=float(roc_auc_score(truth, -rank)),
                             pixel_median_pvalue=float(np.median(pixel_p[len(images):])),
                             combined_median_pvalue=float(np.median(p[len(images):])))
    return out
