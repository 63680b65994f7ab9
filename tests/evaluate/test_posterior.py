"""Posteriors: the flow and the k-NN Gaussian recover a known heteroscedastic conditional density."""

import numpy as np
import pytest
from scipy.stats import norm

from astroembed.evaluate.posterior import FlowPosterior, KNNGaussianPosterior, posterior_metrics


def _heteroscedastic(n, seed):
    """y | x ~ N(sin(2 x0), (0.05 + 0.3 |x1|)^2): the scatter depends on the input."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, (n, 3))
    sigma = 0.05 + 0.3 * np.abs(x[:, 1])
    return x, np.sin(2 * x[:, 0]) + sigma * rng.standard_normal(n), sigma


def test_knn_gaussian_density_is_the_neighbours_gaussian_in_target_units():
    x, y, _ = _heteroscedastic(300, 0)
    model = KNNGaussianPosterior(k=10).fit(x, 100 * y)  # scaled targets: the Jacobian must follow
    standardised = KNNGaussianPosterior(k=10).fit(x, y)
    np.testing.assert_allclose(model.log_prob(x[:20], 100 * y[:20]),
                               standardised.log_prob(x[:20], y[:20]) - np.log(100), rtol=1e-6)
    draws = model.sample(x[:5], 20000)
    mu, sigma = model._moments(x[:5])
    np.testing.assert_allclose(draws.mean(1)[:, 0], (mu[:, 0] * model.y_scaler_.scale_ + model.y_scaler_.mean_),
                               atol=0.05 * 100 * y.std())


@pytest.mark.slow
def test_flow_is_calibrated_and_beats_the_knn_gaussian_on_held_out_objects():
    x, y, sigma = _heteroscedastic(3000, 1)
    xt, yt, sigma_t = _heteroscedastic(1000, 2)
    flow = FlowPosterior(seed=0).fit(x, y)
    knn = KNNGaussianPosterior(k=32).fit(x, y)
    true_nll = -np.mean(norm.logpdf(yt, np.sin(2 * xt[:, 0]), sigma_t))
    f, b = posterior_metrics(flow, xt, yt), posterior_metrics(knn, xt, yt)
    assert f["nll"] < true_nll + 0.15  # close to the entropy of the true posterior
    assert f["coverage"]["68"][0] == pytest.approx(0.68, abs=0.05)
    assert f["coverage"]["95"][0] == pytest.approx(0.95, abs=0.05)
    assert sum(f["pit_histogram"][0]) == 1000 and max(f["pit_histogram"][0]) < 1.6 * 100
    assert f["nll"] < b["nll"]


def test_flow_models_two_targets_jointly():
    x, y, _ = _heteroscedastic(800, 3)
    targets = np.c_[y, 2 * y + 0.1 * np.random.default_rng(4).standard_normal(800)]
    flow = FlowPosterior(transforms=1, hidden=(16,), max_epochs=2).fit(x, targets)
    assert flow.sample(x[:3], 7).shape == (3, 7, 2)
    assert flow.log_prob(x[:3], targets[:3]).shape == (3,)
    metrics = posterior_metrics(flow, x[:50], targets[:50])
    assert len(metrics["coverage"]["68"]) == 2


def test_temperature_calibrates_a_flow_fitted_to_few_objects():
    """700 training objects (the demo's count): early stopping alone leaves the flow over-confident; the
    temperature fitted on the calibration share brings held-out coverage to nominal and keeps the NLL below
    the k-NN Gaussian's."""
    x, y, _ = _heteroscedastic(700, 1)
    xt, yt, _ = _heteroscedastic(1000, 2)
    raw = FlowPosterior(seed=0, calibrate=False).fit(x, y)
    flow = FlowPosterior(seed=0).fit(x, y)
    assert raw.temperature_ == 1.0 and flow.temperature_ > 1.05  # held-out latents spread wider than N(0, 1)
    f, r = posterior_metrics(flow, xt, yt), posterior_metrics(raw, xt, yt)
    assert f["coverage"]["68"][0] == pytest.approx(0.68, abs=0.05)
    assert f["coverage"]["95"][0] == pytest.approx(0.95, abs=0.05)
    assert abs(f["coverage"]["68"][0] - 0.68) < abs(r["coverage"]["68"][0] - 0.68)
    assert f["nll"] < posterior_metrics(KNNGaussianPosterior(k=32).fit(x, y), xt, yt)["nll"]
    # the density is the flow's with a N(0, T^2) base: at T = 1 it is zuko's own log_prob
    import torch

    with torch.no_grad():
        ys = torch.as_tensor(raw.y_scaler_.transform(yt[:5, None]), dtype=torch.float32)
        zuko_lp = raw.flow_(raw._context(xt[:5])).log_prob(ys).double().numpy() - np.log(raw.y_scaler_.scale_[0])
    np.testing.assert_allclose(raw.log_prob(xt[:5], yt[:5]), zuko_lp, atol=1e-5)
    with pytest.raises(ValueError, match="none to train on"):
        FlowPosterior(validation_fraction=0.5, calibration_fraction=0.5).fit(x[:4], y[:4])
