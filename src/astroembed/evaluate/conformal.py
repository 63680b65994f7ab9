"""Conformal p-values: how many held-out normal (calibration) objects score at least as high as an object.

Shared by the embedding OOD score (:class:`~astroembed.evaluate.anomaly.KNNOutlierScorer`) and the pixel
artefact score (:class:`~astroembed.evaluate.pixel_quality.PixelArtefactScorer`): for objects drawn like the
calibration objects, P(p <= a) <= a, whatever the score.
"""

from __future__ import annotations

import numpy as np

__all__ = ["conformal_pvalue"]


def conformal_pvalue(calibration_scores: np.ndarray, scores) -> np.ndarray:
    """(1 + #{s_cal >= s}) / (n_cal + 1) for each of ``scores``; ``calibration_scores`` sorted ascending."""
    n_at_least = len(calibration_scores) - np.searchsorted(calibration_scores, scores, "left")
    return (1 + n_at_least) / (len(calibration_scores) + 1)
