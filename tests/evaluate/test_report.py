"""report.html from a survey with images: galleries of retrieval and anomalies, all images embedded."""

import numpy as np
import pytest

from astroembed.data.mmu import write_survey
from astroembed.data.records import Spectrum
from astroembed.evaluate.inputs import FeatureSet, load_labels
from astroembed.evaluate.plots import colour_composite
from astroembed.evaluate.runner import EvaluateOptions, evaluate_embeddings
from astroembed.evaluate.tasks import parse_tasks
from tests.conftest import make_blob_galaxies


def test_colour_composite_maps_red_to_red_and_stays_in_range():
    image = np.zeros((3, 4, 4))
    image[2] = 5.0  # only the reddest band (z) has flux
    rgb = colour_composite(image)
    assert rgb.shape == (4, 4, 3) and rgb.min() >= 0 and rgb.max() <= 1
    assert np.all(rgb[..., 0] == 1) and np.all(rgb[..., 1:] == 0)


@pytest.mark.slow  # UMAP's numba compilation
def test_report_of_a_survey_has_galleries_and_is_self_contained(tmp_path):
    galaxies = make_blob_galaxies(n=60)
    wave = np.linspace(3800, 9000, 600)
    for g in galaxies:  # a line at the blob's redshift, so neighbours' spectra can be compared with the query's
        flux = 1 + 4 * np.exp(-0.5 * ((wave - 5000 * (1 + g.labels["redshift"])) / 10) ** 2)
        g.spectrum = Spectrum(flux.astype(np.float32), wave, np.full(600, 100, np.float32))
    write_survey(galaxies, tmp_path, "blobs")
    labels = load_labels(tmp_path / "blobs" / "default", ["redshift"])
    pixels = np.stack([g.image.flux.ravel() for g in galaxies])
    features = FeatureSet("pixels", np.array([g.object_id for g in galaxies]), pixels, "mem")
    evaluate_embeddings([features], labels, parse_tasks("retrieval:redshift,anomaly"), tmp_path / "out",
                        EvaluateOptions(n_bootstrap=20, retrieval_k=5))
    out = tmp_path / "out"
    assert (out / "retrieval_redshift_gallery.png").exists() and (out / "anomalies_pixels_gallery.png").exists()
    assert (out / "retrieval_redshift_spectra.png").exists() and (out / "anomalies_pixels_spectra.png").exists()
    page = (out / "report.html").read_text()
    assert page.count("<img") == page.count("data:image/png;base64,") >= 6
    assert 'alt="retrieval_redshift_spectra.png"' in page
    assert "src=\"http" not in page and "<script" not in page
