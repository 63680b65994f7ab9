"""Self-supervised methods for the image stage, one file each, registered in ``SSL_METHODS``.

A method owns the projection heads, target networks and loss around the stage's encoder (the encoder
itself stays with the stage, so the exported model is just the encoder). Adding a method is one new file
with an :class:`SSLMethod` subclass ending in ``SSL_METHODS.register("name", TheClass)``, plus one line in
the table of built-ins in ``base.py``.
"""

from .base import SSL_METHODS, SSLMethod

__all__ = ["SSL_METHODS", "SSLMethod"]
