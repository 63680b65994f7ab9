"""The machine's peak FLOP/s for a precision, and how much of it a model step achieves.

    peak = cores x clock x FLOPs per cycle per core

for the unit that does the work in that precision (the benchmarks print the figures they used):

* ``32-true``: AVX-512 FMA. A 512-bit FMA is 16 fp32 multiply-adds = 32 FLOPs; server cores with two
  FMA units (ports 0 and 5: Skylake-SP Gold 6xxx / Platinum and later, every Sapphire Rapids Xeon) issue
  two per cycle: **64 fp32 FLOPs/cycle/core**; one FMA unit or AVX2 with two: 32. Source: Intel 64 and
  IA-32 Architectures Optimization Reference Manual, "Intel AVX-512 ... two FMA units" (the 2x / 1x FMA
  unit sections), and Intel ARK's "# of AVX-512 FMA Units".
* ``bf16-mixed``: AMX where the CPU has it (``amx_bf16``). One TDPBF16PS multiplies a 16x32 bf16 tile by
  a 32x16 one into 16x16 fp32: 8192 multiply-adds = 16384 FLOPs, issued once per 16 cycles per core:
  **1024 bf16 FLOPs/cycle/core**. Source: Intel Optimization Reference Manual, chapter "Intel Advanced
  Matrix Extensions" (TDPBF16PS throughput 16), and Intel's Sapphire Rapids disclosure (Architecture Day
  2021: "1024 BF16 ops/cycle per core" vs 64 fp32 for AVX-512 FMA). Without AMX, AVX512_BF16's VDPBF16PS
  does 32 bf16 multiply-adds (64 FLOPs) per instruction, two per cycle: 128.

The clock is the nominal (TSC) frequency: ``cpu MHz`` of /proc/cpuinfo, else half of ``bogomips`` (x86
Linux computes BogoMIPS as twice the TSC frequency in MHz; virtual machines often hide ``cpu MHz``), or
``--clock-ghz``. Turbo and the lower AVX-512/AMX licence frequencies move the true peak by tens of per cent
either way; the fraction is an order of magnitude for "how far from the hardware", not a precise figure.

The FLOPs of a step are counted from the model by :class:`torch.utils.flop_counter.FlopCounterMode`
(convolutions, matmuls, attention: 2 FLOPs per multiply-add; forward and backward); element-wise work
(normalisation, activations, the augmentations, the optimizer) is not counted, so the achieved figure
is the matrix work per second, which is what the peak units do.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
from torch.utils.flop_counter import FlopCounterMode

from astroembed.runtime import cpu_bf16_flags

__all__ = ["Peak", "machine_peak", "count_flops", "efficiency_line"]

FP32_FMA_FLOPS_PER_CYCLE = {2: 64, 1: 32}      # AVX-512 FMA units per core -> fp32 FLOPs/cycle
AMX_BF16_FLOPS_PER_CYCLE = 1024                # TDPBF16PS: 16384 FLOPs per 16 cycles
AVX512_BF16_FLOPS_PER_CYCLE = 128              # VDPBF16PS: 64 FLOPs, 2 per cycle


@dataclass
class Peak:
    """Peak FLOP/s of this process's cores in one precision, with the numbers it came from."""

    precision: str
    cores: int
    clock_ghz: float
    flops_per_cycle: int
    unit: str

    @property
    def flops(self) -> float:
        return self.cores * self.clock_ghz * 1e9 * self.flops_per_cycle

    def describe(self) -> str:
        return (f"peak {self.flops / 1e12:.2f} TFLOP/s = {self.cores} cores x {self.clock_ghz:.2f} GHz x "
                f"{self.flops_per_cycle} FLOPs/cycle ({self.unit})")


def clock_ghz(cpuinfo: str | None = None) -> float:
    """Nominal clock from /proc/cpuinfo (``cpu MHz``, else ``bogomips`` / 2); see the module docstring."""
    if cpuinfo is None:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            cpuinfo = fh.read()
    fields = {}
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        fields.setdefault(key.strip().lower(), value.strip())
    if fields.get("cpu mhz"):
        return float(fields["cpu mhz"]) / 1000.0
    if fields.get("bogomips"):
        return float(fields["bogomips"]) / 2000.0
    raise RuntimeError("the clock is not in /proc/cpuinfo (no 'cpu MHz', no 'bogomips'): pass --clock-ghz")


def machine_peak(precision: str, cores: int | None = None, clock: float | None = None,
                 fma_units: int = 2) -> Peak:
    """The peak for ``precision`` ("32-true" or "bf16-mixed") on the cores torch computes with."""
    cores = cores or min(torch.get_num_threads(), len(os.sched_getaffinity(0)))
    clock = clock or clock_ghz()
    if precision == "bf16-mixed":
        flags = cpu_bf16_flags()
        if "amx_bf16" in flags:
            return Peak(precision, cores, clock, AMX_BF16_FLOPS_PER_CYCLE, "AMX bf16 TDPBF16PS")
        if "avx512_bf16" in flags:
            return Peak(precision, cores, clock, AVX512_BF16_FLOPS_PER_CYCLE, "AVX-512 BF16 VDPBF16PS")
        # bf16 emulated through fp32: the fp32 units are the ceiling
    return Peak(precision, cores, clock, FP32_FMA_FLOPS_PER_CYCLE[fma_units], f"AVX-512 FMA x{fma_units}")


def count_flops(step) -> int:
    """FLOPs of one call of ``step()`` (a forward, or forward + backward), counted by torch."""
    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return int(counter.get_total_flops())


def efficiency_line(flops_per_call: int, seconds_per_call: float, peak: Peak) -> str:
    """"X GFLOP/call, Y GFLOP/s achieved = Z % of peak" for a benchmark's output."""
    achieved = flops_per_call / seconds_per_call
    return (f"{flops_per_call / 1e9:.2f} GFLOP/call, achieved {achieved / 1e9:.1f} GFLOP/s = "
            f"{100 * achieved / peak.flops:.2f} % of {peak.describe()}")
