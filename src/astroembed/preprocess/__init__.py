"""How raw cutouts and spectra become model input: shared by training, embedding and the web app.

``image``: arcsinh stretch or 8-bit RGB scaling, crops and resizing of cutouts (:class:`PreprocessConfig`).
``spectrum``: resampling onto the model's wavelength grid, normalisation and patching
(:class:`SpectrumPreprocessConfig`). Inference code imports this package, never ``astroembed.augment``.
"""

from .image import PreprocessConfig, preprocess, render_rgb, standardize
from .spectrum import SpectrumPreprocessConfig

__all__ = ["PreprocessConfig", "SpectrumPreprocessConfig", "preprocess", "render_rgb", "standardize"]
