"""The supervised baseline: on classes defined by what the images show it reaches near-perfect held-out
accuracy; on shuffled labels (nothing to learn) it stays at chance."""

import numpy as np
import torch

from astroembed.augment.image import ImageAugmentConfig
from astroembed.preprocess.image import PreprocessConfig
from astroembed.evaluate.supervised import train_supervised_classifier
from astroembed.models.image_encoder import ImageEncoderConfig
from tests.conftest import make_blob_galaxies

BANDS = ("g", "r", "z")


def blob_classes(n: int, seed: int):
    """Blob images labelled near (z < 0.2) or far (z > 0.32): the two differ in size and colour
    (tests/conftest.py), so the label is written in the pixels; galaxies in the gap are left out, so no
    label depends on noise."""
    galaxies = [g for g in make_blob_galaxies(n=n, seed=seed) if not 0.2 <= g.labels["redshift"] <= 0.32]
    images = torch.from_numpy(np.stack([g.image.flux for g in galaxies]))
    labels = np.array([int(g.labels["redshift"] > 0.26) for g in galaxies])
    return images, labels


def train(images, labels):
    torch.set_num_threads(1)
    return train_supervised_classifier(
        images, labels, BANDS, PreprocessConfig(crop_size=24),
        ImageEncoderConfig(arch="small_cnn", widths=(8, 16)),
        ImageAugmentConfig(crop_size=24, max_shift=2.0, scale_range=(1.0, 1.0), physical=False),
        epochs=15, batch_size=16, lr=3e-3, seed=0)


def test_learns_classes_written_in_the_pixels_and_not_shuffled_ones():
    train_images, train_labels = blob_classes(128, seed=0)
    test_images, test_labels = blob_classes(250, seed=1)
    assert 0.3 < test_labels.mean() < 0.7  # both classes well represented: chance is about 0.5
    predict = train(train_images, train_labels)
    predictions = predict(test_images)
    assert predictions.shape == test_labels.shape and set(np.unique(predictions)) <= {0, 1}
    assert np.mean(predictions == test_labels) > 0.95
    shuffled = np.random.default_rng(0).permutation(train_labels)
    accuracy = np.mean(train(train_images, shuffled)(test_images) == test_labels)
    majority = max(test_labels.mean(), 1 - test_labels.mean())
    assert accuracy < majority + 0.15, accuracy
