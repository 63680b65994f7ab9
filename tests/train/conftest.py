"""A tiny paired survey for the spectrum and CLIP stages: the blob images of tests/conftest.py plus
synthetic spectra driven by the same redshift label, so the two modalities share a latent."""

import numpy as np
import pytest

from tests.conftest import make_blob_galaxies

REST_LINES = np.array([3727.0, 4861.0, 5007.0, 6563.0])  # [O II], H-beta, [O III], H-alpha


def synthetic_spectrum(z: float, rng, wave_max: float = 9824.0, step: float = 4.0):
    """Linear-grid spectrum (1e-17 flux units): a 4000 A break and four emission lines at (1 + z) x rest."""
    from astroembed.data.records import Spectrum

    lam = np.arange(3600.0, wave_max + 1e-6, step)
    rest = lam / (1 + z)
    cont = 4.0 * (1 + 0.5 * (lam - 6700) / 6200) * np.where(rest > 4000, 1.0, 0.45)
    lines = (15.0 * np.exp(-0.5 * ((lam[:, None] - REST_LINES * (1 + z)) / 6.0) ** 2)).sum(1)
    sigma = 0.5
    flux = cont + lines + rng.normal(0, sigma, lam.size)
    return Spectrum(flux.astype(np.float32), lam, ivar=np.full(lam.size, 1 / sigma**2, np.float32))


def make_paired_galaxies(n: int = 48, seed: int = 0):
    """Blob galaxies, each with a spectrum at its redshift; every third spectrum ends early (9000 A), so
    the stored survey pads rows with -1 wavelengths as real mixed surveys do."""
    rng = np.random.default_rng(seed + 1)
    galaxies = make_blob_galaxies(n=n, seed=seed)
    for i, g in enumerate(galaxies):
        g.spectrum = synthetic_spectrum(g.labels["redshift"], rng, wave_max=9000.0 if i % 3 == 0 else 9824.0)
    return galaxies


@pytest.fixture
def paired_survey(tmp_path):
    """Path of a written paired survey (48 objects: 3x32x32 images + spectra) and its records."""
    from astroembed.data.mmu import write_survey

    galaxies = make_paired_galaxies()
    write_survey(galaxies, tmp_path / "survey", "paired")
    return tmp_path / "survey" / "paired" / "default", galaxies


@pytest.fixture(autouse=True)
def _one_thread():
    # Tiny matmuls on a shared 2-core machine run much faster on one thread than fighting for two.
    import torch

    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
