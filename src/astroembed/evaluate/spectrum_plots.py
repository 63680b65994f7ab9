"""The figure of predicted spectra over observed ones (matplotlib, Agg): one small PNG for the README and
the main job."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .spectral_features import renormalise  # noqa: E402

__all__ = ["prediction_figure"]


def _smooth(flux: np.ndarray, valid: np.ndarray, width: int = 5) -> np.ndarray:
    """Running mean over valid pixels (NaN where none), so noise does not hide the shape being compared."""
    kernel = np.ones(width)
    total = np.convolve(np.where(valid, flux, 0.0), kernel, mode="same")
    count = np.convolve(valid.astype(np.float64), kernel, mode="same")
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def prediction_figure(grid, observed, valid, predicted, path, object_ids=None, redshifts=None, baseline=None,
                      n: int = 5, seed: int = 0) -> tuple[Path, np.ndarray]:
    """Write ``n`` panels, rows chosen at random with ``seed``: observed (grey, smoothed over 5 pixels),
    predicted (blue) and ``baseline`` (orange, dashed), each divided by its median |flux| over the observed
    valid pixels. Returns (path, the rows shown)."""
    observed, valid, predicted = np.asarray(observed), np.asarray(valid, bool), np.asarray(predicted)
    rows = np.sort(np.random.default_rng(seed).choice(len(observed), size=min(n, len(observed)), replace=False))
    obs, _ = renormalise(observed[rows], valid[rows])
    pred, _ = renormalise(predicted[rows], valid[rows])
    base = renormalise(np.asarray(baseline)[rows], valid[rows])[0] if baseline is not None else None
    fig, axes = plt.subplots(len(rows), 1, figsize=(7.0, 1.5 * len(rows) + 0.5), sharex=True, squeeze=False)
    for j, (ax, i) in enumerate(zip(axes[:, 0], rows)):
        ax.plot(grid, _smooth(obs[j], valid[i]), color="0.6", lw=0.6, label="observed")
        if base is not None:
            ax.plot(grid, base[j], color="tab:orange", lw=0.8, ls="--", label="k-NN mean")
        ax.plot(grid, pred[j], color="tab:blue", lw=0.9, label="predicted")
        label = str(object_ids[i]) if object_ids is not None else f"row {i}"
        if redshifts is not None:
            label += f"  z = {float(redshifts[i]):.3f}"
        ax.text(0.01, 0.85, label, transform=ax.transAxes, fontsize=7)
        top = np.nanpercentile(np.concatenate([obs[j][valid[i]], pred[j]]), 99.5)
        ax.set_ylim(min(0.0, np.nanpercentile(obs[j][valid[i]], 0.5)), 1.15 * top)
        ax.tick_params(labelsize=7)
    axes[0, 0].legend(fontsize=7, loc="upper right", ncol=3, frameon=False)
    axes[-1, 0].set_xlabel("observed wavelength (A)", fontsize=8)
    fig.text(0.005, 0.5, "flux / median |flux|", rotation=90, va="center", fontsize=8)
    fig.tight_layout(rect=(0.02, 0, 1, 1))
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=72)  # small enough for the README (about 70 kB)
    plt.close(fig)
    return path, rows
