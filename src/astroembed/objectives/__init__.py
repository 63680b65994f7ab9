"""Self-supervised objectives: SimCLR (NT-Xent), MoCo v2, CLIP, masked modelling, BYOL."""

from astroembed.objectives.byol import BYOLLoss
from astroembed.objectives.clip import CLIPLoss, CLIPOutput
from astroembed.objectives.masked import contiguous_chunk_mask, masked_modelling_loss, masked_reconstruction_loss
from astroembed.objectives.moco import MoCoLoss, MoCoQueue, cosine_momentum, momentum_update
from astroembed.objectives.ntxent import NTXentLoss

__all__ = [
    "BYOLLoss",
    "CLIPLoss",
    "CLIPOutput",
    "MoCoLoss",
    "MoCoQueue",
    "NTXentLoss",
    "contiguous_chunk_mask",
    "cosine_momentum",
    "masked_modelling_loss",
    "masked_reconstruction_loss",
    "momentum_update",
]
