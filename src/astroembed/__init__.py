"""astroembed: foundation-model embeddings of galaxies.

The inference API (`astroembed.load(path).embed(x)`) imports no training code.
"""

__version__ = "0.1.0"


def load(path, device="cpu", precision="auto"):
    """Load an exported model folder for embedding: ``astroembed.load(path).embed(x)``.

    ``precision``: "auto" (bf16 autocast where the CPU/GPU has bf16 units), "32-true" or "bf16-mixed";
    see :func:`astroembed.inference.load`.
    """
    from .inference import load as _load

    return _load(path, device=device, precision=precision)
