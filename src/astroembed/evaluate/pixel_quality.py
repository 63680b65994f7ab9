"""Artefacts read from the pixels, as survey pipelines flag them, for the anomaly ranking.

Why by hand and not from the embedding: a contrastive encoder is trained to be invariant to the small changes
its augmentations make (noise, a few pixels, the PSF), so a cosmic ray or a hot column barely moves a galaxy's
embedding (injected ROC-AUC 0.5-0.6 in the README). Imaging pipelines find these defects from the pixels with
a few robust statistics, and so does this module:

``sharp``
    L.A.Cosmic's test (van Dokkum 2001, PASP 113, 1420) without the 2x subsampling: the Laplacian of the
    image in units of its own noise, less its 5x5 median (extended structure), at pixels whose Laplacian is
    ``objlim`` times their fine structure F = med3 - med7(med3). A cosmic ray is sharper than the PSF allows:
    its Laplacian is large and its 3x3 median (hence F) is not; a galaxy core or a star, blurred by a PSF
    several pixels wide, has F comparable to its Laplacian (ratio ~0.3 for a 5-pixel FWHM) and is not flagged.
``column``
    The largest positive departure of a column's (or row's) median from the median of its 8 neighbours'
    medians, in units of the median's noise (1.2533 / sqrt(n) for Gaussian noise): hot columns and rows.
``trail``
    A Radon transform of the 2 x 2 binned significance map clipped at ``clip`` sigma: for every angle on a
    2 degree grid, the mean along each 1-bin-wide strip, less the median of the 16 strips 5 to 12 bins away
    on either side (a trail's own width must not cancel it), times sqrt(n). Clipping bounds what a bright
    source adds to a line, so a faint straight line that crosses the whole cutout (a satellite or
    aeroplane trail) stands out.

Both line features read the residual from a model of the extended light, the 5 x 5 running median of the
2 x 2 binned map: a line a few pixels wide covers well under half of each window and survives, while the
galaxy (tens of pixels across) is removed.
``saturation``
    The number of pixels of a band that share its maximum value when that maximum is significant (> 10
    sigma): a saturated star is clipped flat at the full-well level, and its charge bleeds along the
    column at the same level; a real source has one brightest pixel.
``blank``
    minus asinh of the central source's significance (the summed significance in a central disc of radius
    min(H, W) / 8, over all bands): a cutout with no source at its centre (a failed detection, blank sky).

Noise: the significance map is (flux - sky) / sigma with sigma = ivar^-1/2 per pixel where ivar is given
(1 elsewhere), the sky the median of the cutout's outer ring and the whole map rescaled so the ring's MAD is
1 (ivar is often off by a constant, e.g. in resampled coadds, and a cutout with no ivar gets its noise from
the ring alone). Each filtered map (Laplacian) gets its own noise from its ring MAD, which also absorbs
correlated noise. **Masking**: a pixel with non-finite flux, or with ivar <= 0 or non-finite when ivar is
given, is masked: it is filled by the Gaussian-weighted mean of its valid neighbours (normalised
convolution) before filtering, cannot itself be a sharp feature (nor its 8 neighbours), does not count in a
column's median or a strip's length, and is excluded from the saturation and central-source sums. A cutout
with every pixel of a band masked has that band's features at their neutral values.

:class:`PixelArtefactScorer` turns the feature matrix into one score (the largest robust z-score over the
features, each standardised by the reference's median and MAD) and a conformal p-value against reference
(normal) cutouts, the same construction as :class:`~astroembed.evaluate.anomaly.KNNOutlierScorer`.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage, sparse
from sklearn.base import BaseEstimator

from .conformal import conformal_pvalue

__all__ = ["FEATURES", "pixel_features", "significance_map", "PixelArtefactScorer"]

FEATURES = ("sharp", "column", "trail", "saturation", "blank")
# Every feature is in noise sigmas or pixels, for which 1 is a meaningful step; a reference whose spread is
# smaller (e.g. saturation, 1 pixel on every normal cutout) must not turn one unit into a huge z-score.
_MIN_SCALE = 1.0
_ANGLES_DEG = np.arange(0.0, 180.0, 2.0)  # a 96-px line stays within 1.5 px of a trail over half its length
# A strip's reference: the median of the 8 strips on each side beyond 4 strips away. A trail a few pixels
# wide fills its nearest strips, which would otherwise cancel it; a galaxy is wider than 25 strips' reach.
_SIDES = np.ones((1, 1, 25), bool)
_SIDES[..., 8:17] = False


def _ring(shape) -> np.ndarray:
    h, w = shape
    edge = max(2, min(h, w) // 8)
    ring = np.zeros((h, w), bool)
    ring[:edge], ring[-edge:], ring[:, :edge], ring[:, -edge:] = True, True, True, True
    return ring


def _ring_mad(maps: np.ndarray, valid: np.ndarray, ring: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Median and 1.4826 x MAD of each (image, band) over the valid ring pixels; (N, B, 1, 1) each."""
    values = np.where(valid[..., ring], maps[..., ring], np.nan)
    with np.errstate(all="ignore"), _quiet_nan():
        centre = np.nanmedian(values, axis=-1)
        mad = 1.4826 * np.nanmedian(np.abs(values - centre[..., None]), axis=-1)
    centre = np.nan_to_num(centre, nan=0.0)
    mad = np.where(np.isfinite(mad) & (mad > 0), mad, 1.0)
    return centre[..., None, None], mad[..., None, None]


class _quiet_nan:
    """Silence numpy's all-NaN-slice warnings: an all-masked band is handled by the callers."""

    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("ignore", RuntimeWarning)

    def __exit__(self, *exc):
        return self._catch.__exit__(*exc)


def significance_map(flux, ivar=None) -> tuple[np.ndarray, np.ndarray]:
    """(flux - sky) / noise of (N, B, H, W) cutouts, masked pixels filled, and the valid-pixel mask.

    See the module docstring for the noise model and the masking rule.
    """
    flux = np.asarray(flux, np.float64)
    if flux.ndim != 4:
        raise ValueError(f"cutouts must be (N, bands, H, W), got shape {flux.shape}")
    valid = np.isfinite(flux)
    sigma = np.ones_like(flux)
    if ivar is not None:
        ivar = np.asarray(ivar, np.float64)
        if ivar.shape != flux.shape:
            raise ValueError(f"ivar shape {ivar.shape} differs from the cutouts' {flux.shape}")
        good = np.isfinite(ivar) & (ivar > 0)
        valid &= good
        sigma = np.where(good, 1.0 / np.sqrt(np.where(good, ivar, 1.0)), 1.0)
    s = np.where(valid, flux, 0.0) / sigma
    ring = _ring(flux.shape[-2:])
    sky, noise = _ring_mad(s, valid, ring)
    s = np.where(valid, (s - sky) / noise, 0.0)
    if not valid.all():  # normalised convolution: masked pixels take their valid neighbours' weighted mean
        kernel = (0, 0, 1.5, 1.5)
        weight = ndimage.gaussian_filter(valid.astype(np.float64), kernel, mode="nearest")
        smooth = ndimage.gaussian_filter(s, kernel, mode="nearest")
        s = np.where(valid, s, np.divide(smooth, weight, out=np.zeros_like(s), where=weight > 1e-3))
    return s, valid


def _window_median(padded: np.ndarray, where: tuple, size: int) -> np.ndarray:
    """Median of the size x size window centred on each pixel ``where`` (indices into the unpadded map) of
    a map padded by size // 2: a median filter evaluated only where it is needed."""
    windows = np.lib.stride_tricks.sliding_window_view(padded, (size, size), axis=(-2, -1))
    return np.median(windows[where].reshape(len(where[0]), -1), axis=1)


def _sharp(s: np.ndarray, valid: np.ndarray, ring: np.ndarray, objlim: float, sigclip: float) -> np.ndarray:
    """L.A.Cosmic's largest significance of a feature sharper than the PSF, per (image, band).

    The median filters are evaluated only at candidate pixels (Laplacian above ``sigclip`` sigma, L.A.Cosmic's
    first cut), which keeps the cost to a 3 x 3 median of the whole map.
    """
    # the 4-neighbour Laplacian, s - (up + down + left + right) / 4
    laplacian = s - ndimage.convolve(s, np.array([[[[0, 1, 0], [1, 0, 1], [0, 1, 0]]]]) / 4, mode="nearest")
    _, lap_noise = _ring_mad(laplacian, valid, ring)
    positive = np.clip(laplacian, 0, None) / lap_noise
    near_mask = ndimage.binary_dilation(~valid, np.ones((1, 1, 3, 3), bool))
    where = np.nonzero((positive > sigclip) & ~near_mask)
    best = np.zeros(s.shape[:2])
    if not len(where[0]):
        return best
    pad = lambda a, k: np.pad(a, ((0, 0), (0, 0), (k, k), (k, k)), mode="edge")  # noqa: E731
    excess = positive[where] - _window_median(pad(positive, 2), where, 5)  # less the extended structure
    med3 = ndimage.median_filter(s, (1, 1, 3, 3), mode="nearest")
    fine = med3[where] - _window_median(pad(med3, 3), where, 7)  # fine structure F = med3 - med7(med3)
    # Laplacian over fine structure, both in the significance map's units (L.A.Cosmic floors F at 0.01)
    sharp_enough = laplacian[where] > objlim * np.maximum(fine, 0.01)
    np.maximum.at(best, (where[0], where[1]), np.where(sharp_enough, excess, 0.0))
    return best


def _column(s: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Largest positive z-score of a column's or row's median against its 8 neighbours', per (image, band)."""
    values = np.where(valid, s, np.nan)
    best = np.zeros(s.shape[:2])
    for axis in (-2, -1):  # medians along y (one per column), then along x (one per row)
        with _quiet_nan():
            med = np.nanmedian(values, axis=axis)
        n = valid.sum(axis=axis)
        med = np.nan_to_num(med, nan=0.0)
        reference = ndimage.median_filter(med, (1, 1, 9), mode="nearest")
        z = (med - reference) * np.sqrt(np.maximum(n, 1)) / 1.2533
        z = np.where(n >= s.shape[axis] / 2, z, 0.0)
        best = np.maximum(best, z.max(axis=-1))
    return best


_RADON_CACHE: dict = {}


def _radon(shape) -> tuple[sparse.csr_matrix, int]:
    """Sparse (angles x offsets, pixels) matrix summing each 1-pixel-wide strip; cached per cutout size."""
    if shape not in _RADON_CACHE:
        h, w = shape
        yy, xx = np.mgrid[:h, :w]
        x, y = (xx - (w - 1) / 2).ravel(), (yy - (h - 1) / 2).ravel()
        half = int(np.ceil(np.hypot(h, w) / 2)) + 1
        theta = np.deg2rad(_ANGLES_DEG)[:, None]
        offset = np.rint(-x[None] * np.sin(theta) + y[None] * np.cos(theta)).astype(np.int64) + half
        rows = (np.arange(len(_ANGLES_DEG))[:, None] * (2 * half + 1) + offset).ravel()
        cols = np.tile(np.arange(h * w), len(_ANGLES_DEG))
        matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)),
                                   shape=(len(_ANGLES_DEG) * (2 * half + 1), h * w))
        _RADON_CACHE[shape] = (matrix, 2 * half + 1)
    return _RADON_CACHE[shape]


def _bin2(a: np.ndarray) -> np.ndarray:
    n, b, h, w = a.shape
    return a[..., :h // 2 * 2, :w // 2 * 2].reshape(n, b, h // 2, 2, w // 2, 2).mean(axis=(3, 5))


def _galaxy_model(s: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A model of the extended light that thin lines cannot move: the 5 x 5 running median of the 2 x 2
    binned map (10 x 10 pixels, of which a line a few pixels wide covers well under half). Returns the
    model on the binned grid and on the full grid (edge rows of an odd size repeat the last bin)."""
    binned = _bin2(s)
    model = ndimage.median_filter(binned, (1, 1, 5, 5), mode="nearest")
    full = np.repeat(np.repeat(model, 2, axis=-2), 2, axis=-1)
    h, w = s.shape[-2:]
    full = np.pad(full, ((0, 0), (0, 0), (0, h - full.shape[-2]), (0, w - full.shape[-1])), mode="edge")
    return binned - model, full


def _trail(residual: np.ndarray, valid: np.ndarray, clip: float) -> np.ndarray:
    """Largest z-score of a straight strip's clipped mean against the strips beside it, per (image, band),
    on the 2 x 2 binned residual (a trail is wider than a pixel; binning quarters the cost)."""
    s = 2.0 * residual  # the mean of 4 pixels has half their noise: back to units of sigma
    valid = _bin2(valid.astype(np.float64)) >= 0.5
    n_img, n_band, h, w = s.shape
    matrix, n_off = _radon((h, w))
    clipped = np.where(valid, np.clip(s, -clip, clip), 0.0).reshape(-1, h * w)
    sums = (matrix @ clipped.T).T.reshape(n_img * n_band, len(_ANGLES_DEG), n_off)
    counts = (matrix @ valid.reshape(-1, h * w).T.astype(np.float64)).T.reshape(sums.shape)
    mean = np.divide(sums, counts, out=np.zeros_like(sums), where=counts > 0)
    reference = ndimage.median_filter(mean, footprint=_SIDES, mode="nearest")
    z = np.where(counts >= min(h, w) / 2, (mean - reference) * np.sqrt(counts), 0.0)
    return z.max(axis=(-2, -1)).reshape(n_img, n_band)


def _saturation(flux: np.ndarray, s: np.ndarray, valid: np.ndarray, min_significance: float) -> np.ndarray:
    """Pixels sharing a band's (significant) maximum value: > 1 only for a flat-topped, clipped source."""
    values = np.where(valid, flux, -np.inf)
    peak = values.max(axis=(-2, -1), keepdims=True)
    at_peak = valid & (np.abs(flux - peak) <= 1e-5 * np.abs(peak))
    significant = np.where(at_peak, s, -np.inf).max(axis=(-2, -1)) > min_significance
    return np.where(significant, at_peak.sum(axis=(-2, -1)), 1).astype(np.float64)


def _blank(s: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """-asinh of the central disc's summed significance over all bands, per image."""
    h, w = s.shape[-2:]
    yy, xx = np.mgrid[:h, :w]
    disc = np.hypot(yy - (h - 1) / 2, xx - (w - 1) / 2) <= max(2.0, min(h, w) / 8)
    inside = valid & disc
    n = inside.sum(axis=(1, 2, 3))
    total = np.where(inside, s, 0.0).sum(axis=(1, 2, 3))
    return -np.arcsinh(total / np.sqrt(np.maximum(n, 1)))


def pixel_features(images, ivar=None, objlim: float = 2.0, sigclip: float = 4.5, clip: float = 3.0,
                   saturation_significance: float = 10.0, chunk: int = 32) -> np.ndarray:
    """Artefact features of (N, bands, H, W) cutouts, (N, 5) in the order of :data:`FEATURES`; larger = stranger.

    Parameters
    ----------
    images : array_like
        Cutouts in any flux unit (the features are in units of each cutout's noise).
    ivar : array_like, optional
        Inverse variance of the same shape; ivar <= 0 or non-finite masks a pixel (see the module docstring).
    objlim : float
        L.A.Cosmic's contrast between the Laplacian and the fine structure above which a feature is sharper
        than the PSF (2 for well-sampled ground-based images, as in van Dokkum 2001).
    sigclip : float
        Laplacian significance a pixel needs to be a sharp-feature candidate (L.A.Cosmic's 4.5).
    clip : float
        Significance at which pixels are clipped before the line integrals of the trail feature.
    saturation_significance : float
        A band's maximum must exceed this many sigma for a plateau at it to count as saturation.
    chunk : int
        Cutouts processed at once (memory: about 40 float64 maps of a chunk).
    """
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"cutouts must be (N, bands, H, W), got shape {images.shape}")
    if min(images.shape[-2:]) < 8:
        raise ValueError(f"cutouts must be at least 8 x 8 pixels, got {images.shape[-2:]}")
    ring = _ring(images.shape[-2:])
    out = np.empty((len(images), len(FEATURES)))
    for start in range(0, len(images), chunk):
        part = slice(start, start + chunk)
        flux = np.asarray(images[part], np.float64)
        s, valid = significance_map(flux, None if ivar is None else np.asarray(ivar)[part])
        binned_residual, model = _galaxy_model(s)  # lines are looked for on the residual from the galaxy
        band_max = lambda a: a.max(axis=1)  # noqa: E731 - the worst band sets each feature
        out[part] = np.stack([band_max(_sharp(s, valid, ring, objlim, sigclip)), band_max(_column(s - model, valid)),
                              band_max(_trail(binned_residual, valid, clip)),
                              band_max(_saturation(flux, s, valid, saturation_significance)),
                              _blank(s, valid)], axis=1)
    return out


class PixelArtefactScorer(BaseEstimator):
    """One artefact score from :func:`pixel_features`, with a conformal p-value against normal cutouts.

    The score is the largest robust z-score over the features, each standardised by the median and
    1.4826 x MAD (at least 1 unit) of a seeded share of the reference; the other share calibrates the p-value
    (1 + #{s_cal >= s}) / (n_cal + 1), so P(p <= a) <= a for cutouts drawn like the reference.

    Attributes
    ----------
    centre_, scale_ : ndarray
        Per-feature median and robust scale of the fitting share.
    calibration_scores_ : ndarray
        Sorted scores of the calibration share.
    """

    def __init__(self, calibration_fraction: float = 0.5, seed: int = 0):
        self.calibration_fraction, self.seed = calibration_fraction, seed

    def fit(self, features):
        """Fit on (N, n_features) features of normal (reference) cutouts."""
        features = np.asarray(features, np.float64)
        if features.ndim != 2 or len(features) < 2:
            raise ValueError(f"need at least 2 reference feature rows (N, n_features), got shape {features.shape}")
        if not 0 < self.calibration_fraction < 1:
            raise ValueError(f"calibration_fraction must be in (0, 1), got {self.calibration_fraction}")
        order = np.random.default_rng(self.seed).permutation(len(features))
        n_cal = min(len(features) - 1, max(1, int(round(self.calibration_fraction * len(features)))))
        fit = features[order[n_cal:]]
        self.centre_ = np.median(fit, axis=0)
        self.scale_ = np.maximum(1.4826 * np.median(np.abs(fit - self.centre_), axis=0), _MIN_SCALE)
        self.calibration_scores_ = np.sort(self.score(features[order[:n_cal]]))
        return self

    def feature_z(self, features) -> np.ndarray:
        """Robust z-score of each feature against the reference, (N, n_features)."""
        return (np.asarray(features, np.float64) - self.centre_) / self.scale_

    def score(self, features) -> np.ndarray:
        """Largest feature z-score; larger = more likely an artefact."""
        return self.feature_z(features).max(axis=1)

    def p_value(self, features) -> np.ndarray:
        return self.p_value_of_scores(self.score(features))

    def p_value_of_scores(self, scores) -> np.ndarray:
        return conformal_pvalue(self.calibration_scores_, scores)
