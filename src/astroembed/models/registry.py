"""The models' extension points: image encoder architectures and saved model types.

- ``IMAGE_ARCHITECTURES``: ``arch`` name -> ``builder(config: ImageEncoderConfig) -> nn.Module`` (with an
  ``embed_dim`` attribute), registered with ``options``: the optional :class:`ImageEncoderConfig` fields the
  architecture understands (setting another one is an error).
- ``MODEL_TYPES``: ``config.json``'s ``model_type`` -> ``builder(config["model"]) -> nn.Module``, used by
  :func:`astroembed.models.io.load_model` to rebuild a saved model.

Each built-in module registers its entries when imported; the tables below name those modules.
"""

from __future__ import annotations

from astroembed.registry import Registry

__all__ = ["IMAGE_ARCHITECTURES", "MODEL_TYPES"]

IMAGE_ARCHITECTURES = Registry("image encoder arch", builtins={
    "small_cnn": "astroembed.models.small_cnn",
    "resnet18": "astroembed.models.resnet",
    "resnet50": "astroembed.models.resnet",
    "vit_s8": "astroembed.models.vit",
})

MODEL_TYPES = Registry("model_type", builtins={
    "image_encoder": "astroembed.models.image_encoder",
    "spectrum_transformer": "astroembed.models.spectrum_transformer",
    "aligned": "astroembed.models.clip_model",
    "photometry_encoder": "astroembed.models.photometry_encoder",
    "image_with_aperture_fluxes": "astroembed.models.measured_fluxes",
    "spectrum_with_binned_fluxes": "astroembed.models.measured_fluxes",
})
