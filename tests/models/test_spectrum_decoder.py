"""The spectrum decoder: shapes, argument checks, and a save/load round trip beside its aligned model."""

import pytest
import torch

from astroembed.data.records import InvalidDataError
from astroembed.models.io import save_model
from astroembed.models.spectrum_decoder import SpectrumDecoder, load_decoder, save_decoder


def test_forward_shapes_and_the_mean_start():
    decoder = SpectrumDecoder(input_dim=6, n_pixels=10, hidden=8, depth=2, dropout=0.0)
    mean = torch.linspace(0, 1, 10)
    decoder.start_from(torch.randn(5, 6), mean, -0.5)
    torch.nn.init.zeros_(decoder.out.weight)
    shape, log10_scale = decoder(torch.randn(3, 6))
    assert shape.shape == (3, 10) and log10_scale.shape == (3,)
    assert torch.allclose(shape, mean.expand(3, -1)) and torch.allclose(log10_scale, torch.full((3,), -0.5))
    with pytest.raises(ValueError, match=r"expected \(N, 6\)"):
        decoder(torch.randn(3, 5))
    with pytest.raises(ValueError, match="depth must be an int >= 1"):
        SpectrumDecoder(6, 10, depth=0)


def test_saved_beside_its_aligned_model_and_refused_for_other_weights(tmp_path):
    aligned = save_model(torch.nn.Linear(2, 2), {"model_type": "aligned", "model": {}}, tmp_path / "clip")
    with pytest.raises(InvalidDataError, match="has no spectrum decoder.*train-spectrum-decoder"):
        load_decoder(aligned)
    decoder = SpectrumDecoder(4, 7, hidden=8)
    folder = save_decoder(decoder, aligned, {"wave_step": 4.0}, ["image"], {"epochs": 1})
    assert folder == aligned / "spectrum_decoder"
    loaded, config = load_decoder(aligned)
    assert config["inputs"] == ["image"] and config["preprocessing"] == {"wave_step": 4.0}
    z = torch.randn(2, 4)
    assert all(torch.equal(a, b) for a, b in zip(loaded(z), decoder.eval()(z)))
    save_model(torch.nn.Linear(2, 3), {"model_type": "aligned", "model": {}}, aligned)  # retrained CLIP weights
    with pytest.raises(InvalidDataError, match="other weights") as info:
        load_decoder(aligned)
    assert info.value.field == "aligned_model_hash"
