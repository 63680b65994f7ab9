import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests explore the same examples on every run: CI must not turn red on a new random draw.
# (Run `pytest --hypothesis-seed=random` locally, or set HYPOTHESIS_PROFILE=explore, to search further.)
settings.register_profile("deterministic", derandomize=True, deadline=None)
settings.register_profile("explore", deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real test data not found at {SHARED_DATA} (../shared/data beside the repo)")
    return SHARED_DATA


def make_blob_galaxies(n: int = 48, size: int = 32, seed: int = 0, bands=("g", "r", "z")):
    """Small g,r,z survey of Gaussian blobs whose size and colour follow a 'redshift' label.

    Cheap stand-in for the built-in survey in tests of training and embedding: it has the same
    fields (ivar, PSF, pixel scale, labels) and a signal a model can learn in a few steps.
    """
    import numpy as np

    from astroembed.data.records import Galaxy, Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[:size, :size] - (size - 1) / 2
    out = []
    for i in range(n):
        z = float(rng.uniform(0.02, 0.5))
        radius = 1.5 + 6 * (0.5 - z)
        colour = np.array([1.0, 1.5 + 2 * z, 2.0 + 4 * z])[: len(bands)]
        profile = np.exp(-0.5 * (xx ** 2 + yy ** 2) / radius ** 2)
        sigma = 0.02
        flux = (colour[:, None, None] * profile[None] * 0.5 + rng.normal(0, sigma, (len(bands), size, size)))
        out.append(Galaxy(f"blob-{i:04d}", float(rng.uniform(150, 200)), float(rng.uniform(0, 40)),
                          image=Image(flux.astype(np.float32), tuple(bands),
                                      ivar=np.full((len(bands), size, size), 1 / sigma ** 2, np.float32),
                                      psf_fwhm=[1.3, 1.2, 1.1][: len(bands)], pixel_scale=0.262),
                          labels={"redshift": z}))
    return out


@pytest.fixture
def blob_survey(tmp_path):
    """Path of a written blob survey (48 objects, 3x32x32) and its records."""
    from astroembed.data.mmu import write_survey

    galaxies = make_blob_galaxies()
    write_survey(galaxies, tmp_path / "survey", "blobs")
    return tmp_path / "survey" / "blobs" / "default", galaxies
