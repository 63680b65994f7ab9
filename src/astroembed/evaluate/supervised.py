"""Supervised baselines trained from scratch: what a label-hungry CNN does with the same labels.

A plain PyTorch loop on purpose: it is the reference the self-supervised embeddings are compared with,
so it should be the simplest faithful thing (same encoder family, same geometric augmentations,
AdamW, cross-entropy), with nothing of the pretraining machinery in it.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..augment.image import ImageAugmentConfig, ImageAugmenter
from ..preprocess.image import PreprocessConfig, preprocess
from ..models.image_encoder import ImageEncoderConfig, build_image_encoder


def train_supervised_classifier(images: torch.Tensor, labels: np.ndarray, bands, preprocess_config: PreprocessConfig,
                                encoder_config: ImageEncoderConfig, augment_config: ImageAugmentConfig,
                                epochs: int = 30, batch_size: int = 64, lr: float = 1e-3, seed: int = 0):
    """Train encoder + linear head on (images, labels); returns a predict(images) -> classes function."""
    torch.manual_seed(seed)
    labels = torch.as_tensor(labels, dtype=torch.long)
    n_classes = int(labels.max()) + 1
    encoder = build_image_encoder(encoder_config)
    model = nn.Sequential(encoder, nn.Linear(encoder.embed_dim, n_classes))
    augmenter = ImageAugmenter(augment_config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            if len(idx) < 2:
                continue
            x = preprocess(augmenter(images[idx], bands, generator=generator), preprocess_config, bands)
            loss = nn.functional.cross_entropy(model(x), labels[idx])
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def predict(test_images: torch.Tensor) -> np.ndarray:
        model.eval()
        out = []
        for start in range(0, len(test_images), 256):
            x = preprocess(test_images[start:start + 256], preprocess_config, bands)
            out.append(model(x).argmax(1).numpy())
        return np.concatenate(out)

    return predict
