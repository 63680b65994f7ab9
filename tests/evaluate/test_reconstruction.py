"""Masked-chunk reconstruction report: values on spectra whose answer is known, checked against
np.interp, and the interpolation baseline exact on straight lines."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from astroembed.preprocess.spectrum import interpolate_gaps, patches_to_pixels, patchify
from astroembed.evaluate.reconstruction import reconstruction_report

SIZE = STRIDE = 4  # non-overlapping patches: each hidden pixel belongs to one hidden patch
N_PATCHES = 16


class OffsetModel:
    """Stands in for the transformer: predicts the true flux plus ``offset``, and records the mask."""

    def __init__(self, offset: float):
        self.offset = offset
        self.config = SimpleNamespace(patch_stride=STRIDE)
        self.patch_mask = None

    def eval(self):
        return self

    def forward_masked(self, batch, patch_mask):
        self.patch_mask = patch_mask.clone()
        return batch["patch_flux"] + self.offset


def make_batch(flux: np.ndarray, ivar: np.ndarray) -> dict:
    flux_t, ivar_t = torch.as_tensor(flux, dtype=torch.float32), torch.as_tensor(ivar, dtype=torch.float32)
    return {"flux": flux_t, "valid": (ivar_t > 0).float(), "patch_flux": patchify(flux_t, SIZE, STRIDE),
            "patch_ivar": patchify(ivar_t, SIZE, STRIDE)}


def test_model_and_interpolation_mse_match_an_independent_numpy_computation():
    x = np.arange(SIZE * N_PATCHES, dtype=np.float64)
    flux = np.stack([(x / 20) ** 2, 3 - x / 30, np.sin(x / 5)])  # curved, straight, oscillating
    ivar = np.stack([np.ones_like(x), np.full_like(x, 4.0), np.ones_like(x)])
    ivar[2, 10:14] = 0.0  # bad pixels: neither scored nor used by the interpolation
    model = OffsetModel(offset=0.1)
    report = reconstruction_report(model, make_batch(flux, ivar), mask_fraction=0.25, chunk_len=2, seed=3)

    hidden = patches_to_pixels(model.patch_mask, SIZE, STRIDE, flux.shape[1]).numpy()
    assert hidden.any(axis=1).all() and (~hidden).any(axis=1).all()
    # The model's error is the offset on every scored pixel: a weighted mean of 0.1^2.
    assert report["model_mse"] == pytest.approx(0.01, rel=1e-5)
    # Interpolation, row by row with np.interp from the visible good pixels, scored on hidden good pixels.
    errors, weights = [], []
    for row in range(len(flux)):
        usable = (ivar[row] > 0) & ~hidden[row]
        interp = np.interp(x, x[usable], flux[row, usable])
        scored = hidden[row] & (ivar[row] > 0)
        errors.append(ivar[row, scored] * (interp[scored] - flux[row, scored]) ** 2)
        weights.append(ivar[row, scored])
    expected = np.concatenate(errors).sum() / np.concatenate(weights).sum()
    assert report["interpolation_mse"] == pytest.approx(expected, rel=1e-5)
    assert report["ratio"] == pytest.approx(0.01 / expected, rel=1e-5)
    assert (report["n_spectra"], report["mask_fraction"], report["chunk_len"]) == (3, 0.25, 2)


def test_a_perfect_model_scores_zero_and_straight_spectra_leave_no_ratio():
    x = np.arange(SIZE * N_PATCHES, dtype=np.float64)
    curved = np.stack([np.cos(x / 4), (x / 30) ** 3])
    perfect = reconstruction_report(OffsetModel(0.0), make_batch(curved, np.ones_like(curved)), seed=1)
    assert perfect["model_mse"] == 0.0 and perfect["interpolation_mse"] > 0 and perfect["ratio"] == 0.0
    straight = np.stack([2 * x + 1, 5 - x])
    report = reconstruction_report(OffsetModel(0.5), make_batch(straight, np.ones_like(straight)), seed=1)
    assert report["interpolation_mse"] == pytest.approx(0.0, abs=1e-8) and report["ratio"] is None
    assert report["model_mse"] == pytest.approx(0.25)


def test_the_same_seed_hides_the_same_chunks():
    x = np.arange(SIZE * N_PATCHES, dtype=np.float64)
    flux = np.stack([np.sin(x / 3)] * 4)
    a, b = OffsetModel(0.0), OffsetModel(0.0)
    reconstruction_report(a, make_batch(flux, np.ones_like(flux)), seed=7)
    reconstruction_report(b, make_batch(flux, np.ones_like(flux)), seed=7)
    assert torch.equal(a.patch_mask, b.patch_mask)


def test_interpolation_baseline_is_exact_on_straight_lines():
    x = torch.arange(50, dtype=torch.float32)
    flux = torch.stack([2 * x + 1, -x + 3])
    usable = torch.ones(2, 50, dtype=torch.bool)
    usable[:, 10:20] = False
    usable[1, 30:45] = False
    torch.testing.assert_close(interpolate_gaps(flux, usable), flux)
    bumped = flux.clone()
    bumped[:, 12] = 100.0  # hidden values never influence the interpolation
    torch.testing.assert_close(interpolate_gaps(bumped, usable), flux)


def test_with_overlapping_patches_neither_the_model_nor_interpolation_sees_a_hidden_pixel():
    # The fairness of the comparison: patches overlap (stride < size), so a hidden patch's pixels also sit in
    # visible patches. Changing every hidden pixel must leave the transformer's prediction and the
    # interpolation unchanged, so both scores equal a NumPy computation of the UNCHANGED predictions against
    # the changed targets, on the same pixels with the same weights.
    from astroembed.models.spectrum_transformer import SpectrumTransformer, SpectrumTransformerConfig
    from astroembed.objectives.masked import contiguous_chunk_mask

    size, stride, n_patches = 8, 4, 15
    length = size + stride * (n_patches - 1)
    torch.manual_seed(0)
    model = SpectrumTransformer(SpectrumTransformerConfig(n_patches=n_patches, patch_size=size, patch_stride=stride,
                                                          dim=16, depth=1, num_heads=2))
    x = np.arange(length, dtype=np.float64)
    flux = np.stack([1 + 0.3 * np.sin(x / 5), 1 + (x / 40) ** 2, 2 - x / 50])
    ivar = np.stack([np.full(length, 4.0), np.ones(length), np.linspace(1, 3, length)])

    def batch_of(f):
        f_t, w_t = torch.as_tensor(f, dtype=torch.float32), torch.as_tensor(ivar, dtype=torch.float32)
        valid = torch.ones_like(f_t)
        return {"flux": f_t, "valid": valid, "patch_flux": patchify(f_t, size, stride),
                "patch_valid": patchify(valid, size, stride), "patch_ivar": patchify(w_t, size, stride),
                "log10_scale": torch.zeros(len(f))}

    mask = contiguous_chunk_mask(n_patches, 0.3, chunk_len=2, batch=3, generator=torch.Generator().manual_seed(5))
    hidden = patches_to_pixels(mask, size, stride, length).numpy()
    changed = flux + 3.0 * hidden  # every hidden pixel moved, nothing else
    with torch.no_grad():
        pred = model.eval().forward_masked(batch_of(flux), mask).numpy()
    report = reconstruction_report(model, batch_of(changed), mask_fraction=0.3, chunk_len=2, seed=5)

    covering = np.arange(n_patches)[:, None] * stride + np.arange(size)  # pixel index of each patch position
    scored = mask.numpy()[:, :, None].repeat(size, axis=2)  # every pixel of a hidden patch, once per patch
    target, weight = changed[:, covering], ivar[:, covering]
    interp = np.stack([np.interp(x, x[~hidden[r]], flux[r, ~hidden[r]]) for r in range(3)])[:, covering]
    expected_model = (weight * (pred - target) ** 2)[scored].sum() / weight[scored].sum()
    expected_interp = (weight * (interp - target) ** 2)[scored].sum() / weight[scored].sum()
    assert report["model_mse"] == pytest.approx(expected_model, rel=1e-4)
    assert report["interpolation_mse"] == pytest.approx(expected_interp, rel=1e-4)
