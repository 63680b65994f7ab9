"""astroembed: foundation-model embeddings of galaxies.

The inference API (`astroembed.load(path).embed(x)`) imports no training code.
"""

__version__ = "0.1.0"


def load(path, device="cpu"):
    """Load an exported model folder for embedding: ``astroembed.load(path).embed(x)``."""
    from .inference import load as _load

    return _load(path, device=device)
