"""The report's figures (matplotlib, Agg): predicted against true with residuals, label-efficiency curves,
a UMAP map coloured by each label, PIT histograms with interval coverage, and the anomaly ranking.
Each function writes one PNG and returns its path.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .metrics import OUTLIER_THRESHOLD, redshift_residuals  # noqa: E402

__all__ = ["predicted_vs_true", "label_efficiency_curves", "umap_map", "pit_histograms", "anomaly_overview",
           "safe_name", "colour_composite", "cutout_gallery", "spectrum_overlays"]

DPI = 110


def safe_name(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def predicted_vs_true(task: dict, predictions: dict, path: Path, probe: str = "knn") -> Path:
    """Two panels per feature set: prediction against truth (1:1 line), and the residual against truth
    (dz = (z_p - z_s)/(1 + z_s) for photo-z, with the +-0.15 outlier bounds)."""
    names = list(predictions)
    fig, axes = plt.subplots(2, len(names), figsize=(3.6 * len(names), 6.2), squeeze=False, sharex="col",
                             gridspec_kw={"height_ratios": [3, 1.4]})
    photo_z = task["kind"] == "photo-z"
    for j, name in enumerate(names):
        y_true, by_probe = predictions[name]
        chosen = probe if probe in by_probe else next(iter(by_probe))
        y_pred = by_probe[chosen]
        lo, hi = np.percentile(np.r_[y_true, y_pred], [0.5, 99.5])
        top, bottom = axes[0, j], axes[1, j]
        top.hexbin(y_true, y_pred, gridsize=40, extent=(lo, hi, lo, hi), mincnt=1, cmap="viridis", bins="log")
        top.plot([lo, hi], [lo, hi], "r--", lw=1)
        metrics = task["results"][name][chosen]["metrics"]
        summary = (f"NMAD {metrics['nmad']:.4f}, out {metrics['outlier_fraction']:.3f}" if photo_z
                   else f"R$^2$ {metrics['r2']:.3f}")
        top.set_title(f"{name} ({chosen})\n{summary}", fontsize=9)
        top.set_ylabel(f"predicted {task['target']}")
        residual = redshift_residuals(y_pred, y_true) if photo_z else y_pred - y_true
        bottom.scatter(y_true, residual, s=2, alpha=0.4, color="k")
        bottom.axhline(0, color="r", lw=1)
        if photo_z:
            for bound in (-OUTLIER_THRESHOLD, OUTLIER_THRESHOLD):
                bottom.axhline(bound, color="r", ls=":", lw=1)
        bottom.set_ylabel("dz/(1+z)" if photo_z else "residual")
        bottom.set_xlabel(f"true {task['target']}")
    return _save(fig, path)


def label_efficiency_curves(task: dict, path: Path) -> Path:
    """Primary metric against the number of training labels, one line per feature set and probe."""
    fig, ax = plt.subplots(figsize=(6, 4))
    styles = {"knn": "-o", "linear": "--s", "mlp": ":^"}
    metric = None
    for i, (name, curve) in enumerate(task["label_efficiency"].items()):
        metric = curve["metric"]
        for probe, values in curve["values"].items():
            ax.plot(curve["n_labels"], values, styles.get(probe, "-"), color=f"C{i}", label=f"{name} {probe}", ms=4)
    ax.set_xscale("log")
    ax.set_xlabel("training labels")
    ax.set_ylabel(metric)
    ax.set_title(f"label efficiency: {task['kind']} {task['target']}", fontsize=10)
    ax.legend(fontsize=7, ncol=2)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def umap_map(X: np.ndarray, colours: dict[str, np.ndarray], path: Path, seed: int = 0, max_points: int = 3000) -> Path:
    """UMAP (cosine) of the embeddings, one panel coloured by each label."""
    import umap

    rng = np.random.default_rng(seed)
    rows = np.sort(rng.choice(len(X), min(max_points, len(X)), replace=False))
    xy = umap.UMAP(metric="cosine", random_state=seed, n_jobs=1).fit_transform(X[rows])
    names = list(colours) or ["(no label)"]
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    for ax, name in zip(axes[0], names):
        values = colours.get(name)
        if values is None:
            ax.scatter(xy[:, 0], xy[:, 1], s=2, color="k")
        elif np.issubdtype(np.asarray(values).dtype, np.number):
            art = ax.scatter(xy[:, 0], xy[:, 1], s=2, c=values[rows], cmap="plasma")
            fig.colorbar(art, ax=ax, shrink=0.8)
        else:
            for i, cls in enumerate(np.unique(values[rows])[:10]):
                sel = values[rows] == cls
                ax.scatter(xy[sel, 0], xy[sel, 1], s=2, color=f"C{i}", label=str(cls))
            ax.legend(fontsize=7, markerscale=4)
        ax.set_title(f"UMAP coloured by {name}", fontsize=9)
        ax.set_xticks([]), ax.set_yticks([])
    return _save(fig, path)


def pit_histograms(task: dict, pits: dict[str, np.ndarray], path: Path) -> Path:
    """PIT histogram of each posterior (uniform when calibrated), titled with NLL and 68/95 % coverage."""
    n_cols = min(4, len(pits))
    n_rows = -(-len(pits) // n_cols)
    fig, axes = plt.subplots(n_rows, n_cols, figsize=(3.4 * n_cols, 3.0 * n_rows), squeeze=False)
    for ax in axes.flat[len(pits):]:
        ax.axis("off")
    for ax, (label, pit) in zip(axes.flat, pits.items()):
        name, model = label.rsplit(" ", 1)
        result = task["results"][name][model]
        ax.hist(np.asarray(pit)[:, 0], bins=10, range=(0, 1), color="C0", alpha=0.8)
        ax.axhline(len(pit) / 10, color="r", ls="--", lw=1)
        cov = result["coverage"]
        ax.set_title(f"{name} {model}\nNLL {result['nll']:.3f}, cov68 {cov['68'][0]:.2f}, cov95 {cov['95'][0]:.2f}",
                     fontsize=8)
        ax.set_xlabel("PIT")
    return _save(fig, path)


def anomaly_overview(columns: dict[str, np.ndarray], object_ids: np.ndarray, path: Path, n_top: int = 10) -> Path:
    """Distribution of k-NN distances (top ranks marked) and k-NN against the pixel-quality score where the
    ranking has one (else against IsolationForest scores)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    distance = columns["knn_distance"]
    positive = distance[distance > 0]
    bins = np.geomspace(positive.min(), positive.max(), 50) if len(positive) > 1 else 50
    left.hist(distance, bins=bins, color="C0")
    left.set_xscale("log")
    right.set_xscale("log")
    top = np.argsort(columns["anomaly_rank"])[:n_top]
    for i in top:
        left.axvline(distance[i], color="r", lw=0.6)
    left.set_xlabel("mean distance to the k nearest reference objects")
    left.set_title(f"top {n_top} anomalies marked in red", fontsize=9)
    other, label = (columns["isolation_forest_score"], "IsolationForest score")
    if "pixel_artefact_score" in columns:
        other, label = columns["pixel_artefact_score"], "pixel artefact score (robust z)"
    right.scatter(distance, other, s=3, color="k", alpha=0.5)
    right.scatter(distance[top], other[top], s=12, color="r")
    right.set_xlabel("k-NN distance")
    right.set_ylabel(label)
    right.set_title("two rankings: " + ", ".join(str(o) for o in object_ids[top[:3]]), fontsize=8)
    return _save(fig, path)


def colour_composite(image: np.ndarray) -> np.ndarray:
    """(bands, H, W) flux -> (H, W, 3) in [0, 1]: the reddest band as red, the bluest as blue, asinh-stretched
    with a per-image scale (the median absolute flux), as survey viewers show cutouts."""
    image = np.nan_to_num(np.asarray(image, np.float64))
    rgb = image[[-1, len(image) // 2, 0]] if len(image) >= 3 else np.repeat(image[:1], 3, axis=0)
    scale = max(float(np.median(np.abs(rgb))), 1e-12) * 3
    stretched = np.arcsinh(np.clip(rgb, 0, None) / scale)
    return np.clip(stretched / max(float(stretched.max()), 1e-12), 0, 1).transpose(1, 2, 0)


def cutout_gallery(rows: list[tuple[str, list[tuple[str, np.ndarray]]]], path: Path) -> Path:
    """A grid of colour composites: one row per (row title, [(caption, image), ...])."""
    n_cols = max(len(items) for _, items in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(1.7 * n_cols, 1.9 * len(rows)), squeeze=False)
    for r, (title, items) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c < len(items):
                caption, image = items[c]
                ax.imshow(colour_composite(image), origin="lower")
                ax.set_title(caption, fontsize=7)
        axes[r, 0].text(-0.1, 0.5, title, transform=axes[r, 0].transAxes, rotation=90, va="center", ha="right",
                        fontsize=8)
    return _save(fig, path)


def _smoothed(flux: np.ndarray, width: int) -> np.ndarray:
    """Running mean over ``width`` pixels (noise hides the continuum shape a reader compares by eye)."""
    if width <= 1 or len(flux) < width:
        return flux
    return np.convolve(flux, np.ones(width) / width, mode="same")


def _normalised(wave: np.ndarray, flux: np.ndarray, good: np.ndarray, smooth: int) -> tuple[np.ndarray, np.ndarray]:
    flux = np.where(good, flux, np.nan)
    scale = np.nanmedian(np.abs(flux)) if np.isfinite(flux).any() else 1.0
    return wave, _smoothed(np.nan_to_num(flux / max(scale, 1e-12)), smooth)


def spectrum_overlays(rows: list[tuple[str, tuple, list[tuple]]], path: Path, smooth: int = 5,
                      query_label: str = "query") -> Path:
    """One panel per row: the query's spectrum (black) with others drawn over it (colour), each divided
    by its median |flux| and smoothed over ``smooth`` pixels, so shapes and lines compare at a glance.

    ``rows`` holds ``(title, (wavelength, flux, good), [(label, wavelength, flux, good), ...])``; ``good``
    marks usable pixels (masked ones are not drawn).
    """
    fig, axes = plt.subplots(len(rows), 1, figsize=(9, 1.9 * len(rows)), squeeze=False, sharex=True)
    for ax, (title, query, others) in zip(axes[:, 0], rows):
        for j, (label, *spectrum) in enumerate(others):
            ax.plot(*_normalised(*spectrum, smooth), lw=0.6, alpha=0.7, color=f"C{j % 10}", label=label)
        ax.plot(*_normalised(*query, smooth), lw=0.9, color="k", label=query_label)
        ax.set_title(title, fontsize=8)
        ax.set_ylabel("flux / median", fontsize=7)
        ax.legend(fontsize=6, ncol=min(6, len(others) + 1), loc="upper right")
    axes[-1, 0].set_xlabel("observed wavelength [A]")
    return _save(fig, path)
