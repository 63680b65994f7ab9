"""Raw inputs read in blocks from a survey's tiles agree with the same objects read one record at a time."""

import numpy as np
import pytest
import torch

from astroembed.data.mmu import MMUSurvey, write_survey
from astroembed.data.records import InvalidDataError, Spectrum
from astroembed.evaluate.raw_inputs import survey_images, survey_spectra
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_spectra
from tests.conftest import make_blob_galaxies


def _survey(tmp_path, with_spectra=True):
    galaxies = make_blob_galaxies(n=24, seed=2)
    rng = np.random.default_rng(0)
    for i, g in enumerate(galaxies):
        if with_spectra:
            wave = np.linspace(3800, 9000, 700 + 10 * (i % 3))  # rows of different lengths: padded in the tile
            mask = np.ones(len(wave), bool)
            mask[100:120] = False
            g.spectrum = Spectrum(rng.normal(1, 0.1, len(wave)).astype(np.float32), wave,
                                  np.full(len(wave), 50, np.float32), mask)
    write_survey(galaxies, tmp_path, "blobs")
    return MMUSurvey(tmp_path / "blobs" / "default"), galaxies


def test_images_and_spectra_in_the_order_asked(tmp_path):
    survey, galaxies = _survey(tmp_path)
    by_id = {g.object_id: g for g in galaxies}
    rows = np.array([5, 0, 17, 3])
    images, bands = survey_images(survey, rows, crop=16)
    assert bands == ["g", "r", "z"] and images.shape == (4, 3, 16, 16)
    for k, r in enumerate(rows):
        np.testing.assert_array_equal(images[k].numpy(), by_id[str(survey.object_ids[r])].image.flux[:, 8:24, 8:24])
    config = SpectrumPreprocessConfig(wave_min=4000, wave_max=8800, wave_step=4.0)
    batch = survey_spectra(survey, rows, config)
    expected = prepare_spectra([by_id[str(survey.object_ids[r])].spectrum for r in rows], config)
    for key in ("flux", "valid"):
        torch.testing.assert_close(batch[key], expected[key])


def test_a_survey_without_spectra_is_named(tmp_path):
    survey, _ = _survey(tmp_path, with_spectra=False)
    with pytest.raises(InvalidDataError, match="spectrum_flux"):
        survey_spectra(survey, np.arange(3), SpectrumPreprocessConfig())
