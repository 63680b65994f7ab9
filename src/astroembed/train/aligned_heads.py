"""Start an alignment from the projection heads of an earlier one (both encoders and the shared space alike).

End-to-end CLIP alignment (:mod:`astroembed.train.clip`) can start from the heads that
:mod:`astroembed.train.clip_frozen` aligned on frozen features, instead of random ones: its first steps
then send the backbones gradients from an already aligned space.
"""

from __future__ import annotations

from pathlib import Path

from ..data.records import InvalidDataError
from ..models.io import load_model


def load_heads(model, aligned_dir: str | Path) -> None:
    """Copy the projection heads (weights and BatchNorm statistics) of an aligned export into ``model``,
    so end-to-end alignment starts from heads already aligned on frozen features.

    Raises
    ------
    InvalidDataError
        If ``aligned_dir`` is not an aligned export or its heads do not fit ``model``'s encoders and shared space.
    """
    source, config = load_model(aligned_dir)
    if config["model_type"] != "aligned":
        raise InvalidDataError(f"heads come from an aligned export, this is {config['model_type']!r}",
                               source=str(Path(aligned_dir) / "config.json"), field="model_type")
    for name in ("image_head", "spectrum_head"):
        want = {k: tuple(v.shape) for k, v in getattr(model, name).state_dict().items()}
        have = {k: tuple(v.shape) for k, v in getattr(source, name).state_dict().items()}
        if want != have:
            raise InvalidDataError(f"its {name} does not fit these encoders and shared space ({have} vs {want})",
                                   source=str(Path(aligned_dir) / "model.safetensors"), field=name)
        getattr(model, name).load_state_dict(getattr(source, name).state_dict())
