"""astroembed: foundation-model embeddings of galaxies.

The inference API (`astroembed.load(path).embed(x)`) imports no training code.
"""

__version__ = "0.1.0"
