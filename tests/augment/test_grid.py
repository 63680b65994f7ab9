"""The augmentation grid PNG: one row per galaxy, original + n_views columns."""

import numpy as np
import pytest

from astroembed.augment.grid import draw_augmentation_grid
from astroembed.augment.image import ImageAugmentConfig, ImageAugmenter


def _panels(png, rows, cols):
    import matplotlib.image as mpimg

    img = mpimg.imread(png)[..., :3]
    h, w = img.shape[:2]
    assert w / h == pytest.approx(cols / rows, rel=0.15)
    return img


def test_grid_from_real_dr9_cutout(shared_data, tmp_path):
    from astropy.io import fits

    flux = fits.getdata(shared_data / "cutouts" / "legacysurvey_dr9_grz_256.fits").astype(np.float32)
    cutouts = np.stack([flux[:, 80:176, 80:176], flux[:, 0:96, 0:96]])
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=64))
    out = draw_augmentation_grid(cutouts, ["g", "r", "z"], tmp_path / "grid.png", aug, n_views=4,
                                 psf_fwhm=[1.3, 1.2, 1.1])
    img = _panels(out, 2, 5)
    assert img.std() > 0.05  # real pictures, not a blank canvas


def test_grid_for_rgb_and_other_bands(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(3, 48, 48, 3), dtype=np.uint8)
    aug = ImageAugmenter(ImageAugmentConfig(crop_size=32))
    _panels(draw_augmentation_grid(rgb, None, tmp_path / "rgb.png", aug, n_views=2), 3, 3)
    flux = rng.normal(0, 0.01, size=(1, 5, 48, 48)).astype(np.float32)
    flux[:, :, 20:28, 20:28] += 1.0
    aug5 = ImageAugmenter(ImageAugmentConfig(crop_size=32, filter_system="sdss"))
    _panels(draw_augmentation_grid(flux, list("ugriz"), tmp_path / "ugriz.png", aug5, n_views=3), 1, 4)
    with pytest.raises(ValueError, match="n_views"):
        draw_augmentation_grid(flux, list("ugriz"), tmp_path / "x.png", aug5, n_views=0)
