"""Batched image and spectrum augmentations and the preprocessing shared by training and embedding."""

from .image import ImageAugmentConfig, ImageAugmenter
from .preprocess import PreprocessConfig, preprocess, render_rgb, standardize

__all__ = ["ImageAugmentConfig", "ImageAugmenter", "PreprocessConfig", "preprocess", "render_rgb", "standardize"]
