"""Batched image and spectrum augmentations for self-supervised training (torch, CPU or GPU).

``ops`` holds the single operations (reddening, PSF blur, noise, resampling, dihedral turns), usable on
their own; ``image`` the fused augmenter that draws and applies them in one pass per batch;
``spectrum`` the spectrum augmentations. Training code only: embedding uses ``astroembed.preprocess``.
"""

from .image import ImageAugmentConfig, ImageAugmenter

__all__ = ["ImageAugmentConfig", "ImageAugmenter"]
