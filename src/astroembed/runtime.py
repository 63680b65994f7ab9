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

__all__ = ["keep_freed_memory", "OPT_OUT_ENV", "DeviceUnavailableError", "check_device", "PRECISIONS",
           "cpu_bf16_flags", "cpu_supports_bf16", "resolve_precision", "autocast", "bf16_layout"]

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


def resolve_device(device=None):
    """``None`` or ``"auto"``: the CUDA GPU when one is usable, else the CPU; any other name is checked by
    :func:`check_device` (a clear error, not torch's at the first ``.to()``) and returned as a torch.device."""
    import torch

    if device is None or device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    check_device(device)
    return torch.device(device)


# Precision: what ``--precision auto`` means on the machine at hand.
#
# bfloat16 halves the bytes per activation and, on CPUs with bf16 dot-product instructions, doubles (AVX-512
# BF16: ``vdpbf16ps``) or multiplies far more (AMX: ``tdpbf16ps`` tiles) the multiply-adds per cycle that
# oneDNN's convolution and matmul kernels get. Without such instructions torch emulates bf16 through fp32
# and mixed precision is slower than fp32, so it is chosen only where the CPU declares them.
PRECISIONS = ("auto", "32-true", "32", "bf16-mixed")
_BF16_CPU_FLAGS = ("amx_bf16", "avx512_bf16", "bf16")  # x86 (Sapphire Rapids+, Cooper Lake, Zen 4); Arm v8.6


def cpu_bf16_flags(cpuinfo: str | None = None) -> tuple[str, ...]:
    """The bf16 matrix/dot-product features this CPU declares (Linux ``/proc/cpuinfo``; empty elsewhere).

    Parameters
    ----------
    cpuinfo
        the text of ``/proc/cpuinfo`` (read from the system when None; tests pass their own).
    """
    if cpuinfo is None:
        try:
            with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
                cpuinfo = fh.read()
        except OSError:  # not Linux: nothing detected, so auto stays 32-bit
            return ()
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):  # x86, aarch64; every core lists the same
            declared = set(value.split())
            return tuple(f for f in _BF16_CPU_FLAGS if f in declared)
    return ()


def cpu_supports_bf16(cpuinfo: str | None = None) -> bool:
    """True when the CPU has bf16 dot-product/matrix instructions (see :func:`cpu_bf16_flags`)."""
    return bool(cpu_bf16_flags(cpuinfo))


def resolve_precision(precision: str, device_type: str) -> str:
    """``"bf16-mixed"`` or ``"32-true"`` for ``precision`` on a ``"cpu"`` or ``"cuda"``/``"gpu"`` device.

    ``auto`` is bf16 mixed precision where the hardware computes in bf16 (a CUDA GPU that supports it, a CPU
    declaring :func:`cpu_bf16_flags`) and 32-bit elsewhere; any other value is the user's choice, kept
    (``"32"`` is read as ``"32-true"``; Lightning's other values, e.g. ``"16-mixed"``, pass through for it to
    check). Weights, optimizer state and exported models stay float32 in both.
    """
    if precision != "auto":
        return "32-true" if precision == "32" else precision
    if device_type in ("cuda", "gpu"):
        import torch

        return "bf16-mixed" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "32-true"
    return "bf16-mixed" if cpu_supports_bf16() else "32-true"


def autocast(device_type: str, precision: str):
    """The forward-pass context for a resolved precision: bf16 autocast, or a no-op for 32-bit."""
    import torch

    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=precision == "bf16-mixed")


def bf16_layout(module, precision: str, device_type: str):
    """Put ``module``'s 4-d weights in channels-last (NHWC) when it will run in bf16 on a CPU; returns it.

    oneDNN's bf16 (AMX) convolutions compute in NHWC: with NCHW weights and activations every convolution
    reorders its input, output and weights, forward and backward, which cost more than the bf16 units
    saved (bench/bench_precision.py: ResNet-18 training 0.22x of fp32 in NCHW, 2.07x in channels-last).
    Convolutions follow the weights' layout, so the inputs need no change; exported weights are written
    contiguous (NCHW) by :func:`astroembed.models.io.save_model`. A no-op for fp32 and for CUDA.
    """
    import torch

    if precision == "bf16-mixed" and device_type == "cpu":
        module.to(memory_format=torch.channels_last)
    return module
