"""Process-level settings that make CPU runs fast.

glibc's malloc serves every allocation above its mmap threshold (128 KiB, raised on the fly up to
32 MiB) with a fresh ``mmap`` and returns it to the kernel on ``free``, so every page of the next
allocation is faulted in and zero-filled again. A CNN's activations (256 x 32 x 96 x 96 floats is
300 MB) and the augmentations' temporaries are far above that threshold: on the 2-core CI machine the
kernel's page faults took as much time as the forward pass itself (the figures, with and without
``ASTROEMBED_SYSTEM_MALLOC=1``, are in BENCHMARKS.md: ``bench/bench_embed.py``,
``bench/bench_train_step.py``). PyTorch's performance-tuning guide recommends jemalloc or tcmalloc for
this reason; neither comes from pip, so :func:`keep_freed_memory` asks glibc itself, through ``mallopt``:

* ``M_MMAP_THRESHOLD`` = 1 GiB: blocks below it come from the heap, so freed ones are reused;
* ``M_TRIM_THRESHOLD`` = 1 GiB: up to that much free memory stays mapped instead of going back to
  the kernel at every ``free``.

The cost: the process keeps the memory of its peak (it is reused, not leaked, and returned at exit).
Training stages, :func:`astroembed.load` on CPU, :func:`astroembed.embed.embed_catalog` and the CLI
call it; it is idempotent and a no-op where the C library is not glibc (macOS, musl) or when the
environment sets ``ASTROEMBED_SYSTEM_MALLOC=1``. GPU memory is unaffected (CUDA has its own caching
allocator).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import platform

__all__ = ["keep_freed_memory", "OPT_OUT_ENV", "DeviceUnavailableError", "check_device"]

log = logging.getLogger(__name__)

OPT_OUT_ENV = "ASTROEMBED_SYSTEM_MALLOC"
_M_TRIM_THRESHOLD = -1  # glibc malloc.h
_M_MMAP_THRESHOLD = -3
_THRESHOLD = 1 << 30
_state: bool | None = None  # None: not tried yet


def _glibc():
    if platform.system() != "Linux":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.gnu_get_libc_version.restype = ctypes.c_char_p
        libc.gnu_get_libc_version()  # absent from musl: AttributeError
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see the module docstring). True when in effect."""
    global _state
    if _state is not None:
        return _state
    _state = False
    if os.environ.get(OPT_OUT_ENV, "").strip() not in ("", "0"):
        return False
    libc = _glibc()
    if libc is None:
        return False
    ok = (libc.mallopt(_M_MMAP_THRESHOLD, ctypes.c_int(_THRESHOLD)) == 1
          and libc.mallopt(_M_TRIM_THRESHOLD, ctypes.c_int(_THRESHOLD)) == 1)
    if not ok:
        log.debug("mallopt refused the thresholds; the C library keeps its defaults")
    _state = ok
    return ok


class DeviceUnavailableError(RuntimeError):
    """The requested device (``cuda``, ``cuda:N``, ``gpu``) is not usable on this machine."""


def check_device(device) -> None:
    """Raise :class:`DeviceUnavailableError` when ``device`` names a GPU this process cannot use.

    Without this check torch fails at the first ``.to(device)`` with "Torch not compiled with CUDA
    enabled" (an AssertionError) and Lightning with "No supported gpu backend found", deep inside the
    library; the message here says what was asked for and what to ask for instead. ``auto`` and
    ``cpu`` always pass.
    """
    import torch

    name = str(device)
    kind, _, index = name.partition(":")
    if kind not in ("cuda", "gpu"):
        return
    if index and not index.isdigit():
        raise ValueError(f"device {name!r}: expected cuda or cuda:N with N a device number")
    if not torch.cuda.is_available():
        raise DeviceUnavailableError(f"device {name!r} was requested but no CUDA GPU is usable here "
                                     f"(torch {torch.__version__}, CUDA build: {torch.version.cuda or 'none'});"
                                     " use --device cpu or --device auto")
    if index and int(index) >= torch.cuda.device_count():
        raise DeviceUnavailableError(f"device {name!r} was requested but this machine has "
                                     f"{torch.cuda.device_count()} CUDA device(s), numbered from 0")
