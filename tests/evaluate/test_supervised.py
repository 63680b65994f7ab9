"""The supervised from-scratch baselines: on targets written in the pixels (images) or in the flux (spectra)
they learn (held-out accuracy or R^2 well above chance); on shuffled labels (nothing to learn) they stay at
chance. Tiny sets, small step budgets: each case runs in seconds on a CPU."""

import numpy as np
import pytest
import torch

from astroembed.evaluate.supervised import SupervisedBaseline
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig
from astroembed.preprocess.stored import prepare_stored_spectra
from tests.conftest import make_blob_galaxies

BANDS = ("g", "r", "z")


def blob_classes(n: int, seed: int):
    """Blob images labelled near (z < 0.2) or far (z > 0.32): the two differ in size and colour
    (tests/conftest.py), so the label is written in the pixels; galaxies in the gap are left out, so no
    label depends on noise."""
    galaxies = [g for g in make_blob_galaxies(n=n, seed=seed) if not 0.2 <= g.labels["redshift"] <= 0.32]
    images = torch.from_numpy(np.stack([g.image.flux for g in galaxies]))
    labels = np.array(["far" if g.labels["redshift"] > 0.26 else "near" for g in galaxies])
    return images, labels


def image_baseline(**kw):
    return SupervisedBaseline("image", "classification", max_steps=60, batch_size=16, lr=3e-3, crop_size=24,
                              bands=BANDS, widths=(8, 16), eval_every=20, seed=0, **kw)


def test_image_network_learns_classes_written_in_the_pixels_and_not_shuffled_ones():
    torch.set_num_threads(1)
    train_images, train_labels = blob_classes(128, seed=0)
    test_images, test_labels = blob_classes(250, seed=1)
    assert 0.3 < (test_labels == "far").mean() < 0.7  # both classes well represented: chance is about 0.5
    model = image_baseline().fit(train_images, train_labels)
    predictions = model.predict(test_images)
    assert predictions.shape == test_labels.shape and set(predictions) <= {"far", "near"}
    assert np.mean(predictions == test_labels) > 0.9
    proba = model.predict_proba(test_images)
    assert np.allclose(proba.sum(1), 1) and list(model.classes_) == ["far", "near"]
    shuffled = np.random.default_rng(0).permutation(train_labels)
    accuracy = np.mean(image_baseline().fit(train_images, shuffled).predict(test_images) == test_labels)
    majority = max((test_labels == "far").mean(), 1 - (test_labels == "far").mean())
    assert accuracy < majority + 0.15, accuracy


def line_spectra(n: int, seed: int):
    """Flat spectra with one emission line whose wavelength is the target (a redshift in miniature)."""
    rng = np.random.default_rng(seed)
    wave = np.linspace(4000, 6000, 500)
    centre = rng.uniform(4300, 5700, n)
    flux = 1 + 3 * np.exp(-0.5 * ((wave[None] - centre[:, None]) / 8) ** 2) + rng.normal(0, 0.1, (n, len(wave)))
    config = SpectrumPreprocessConfig(wave_min=4000, wave_max=6000, wave_step=4.0)
    return prepare_stored_spectra(flux, np.full_like(flux, 100.0), wave, config=config), centre


def test_spectrum_network_regresses_a_line_position_and_not_shuffled_targets():
    torch.set_num_threads(1)
    train, y_train = line_spectra(300, seed=0)
    test, y_test = line_spectra(200, seed=1)

    def r2(targets):
        model = SupervisedBaseline("spectrum", "regression", max_steps=150, batch_size=32, lr=3e-3, widths=(8, 16),
                                   seed=0)
        predictions = model.fit(train, targets).predict(test)
        return 1 - np.mean((predictions - y_test) ** 2) / np.var(y_test), model

    learned, model = r2(y_train)
    assert learned > 0.8 and model.steps_ == 150
    shuffled, _ = r2(np.random.default_rng(0).permutation(y_train))
    assert shuffled < 0.2, shuffled


def test_budget_and_arguments():
    images, labels = blob_classes(40, seed=0)
    model = image_baseline(minutes=1e-6).fit(images, labels)  # the clock ends it after the first step
    assert model.steps_ == 1
    with pytest.raises(ValueError, match="modality"):
        SupervisedBaseline("radio").fit(images, labels)
