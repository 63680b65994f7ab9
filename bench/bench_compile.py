"""Does torch.compile pay for a CPU training step, in fp32 and in bf16? Eager against compiled, same batch.

    python bench/bench_compile.py [--models small_cnn spectrum] [--steps 20]

For the small CNN (64 px, 3 bands, batch 64; channels-last, as the package runs bf16 on a CPU) and the
spectrum transformer of ``spectrum_masked_demo`` (batch 32) it times a training step (forward, a scalar loss,
backward, AdamW) eagerly and through ``torch.compile`` (inductor, default mode), in ``32-true`` and
``bf16-mixed``: the median of ``--steps`` steps after warm-up, and the compile's own wall time (the
first compiled steps, which a time-budgeted run pays out of its budget). Prints the compiled / eager
speed-up and how many eager steps the compile time would have bought. The reference, eager, is measured
in the same run, alternating with the compiled model.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from bench_precision import image_model, spectrum_model
from astroembed.runtime import autocast, keep_freed_memory


def step_function(model, batch, precision: str):
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def step():
        with autocast("cpu", precision):
            loss = model(batch).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def median_seconds(step, steps: int) -> float:
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "spectrum"], choices=["small_cnn", "spectrum"])
    parser.add_argument("--steps", type=int, default=20)
    args = parser.parse_args()
    keep_freed_memory()
    for name in args.models:
        for precision in ("32-true", "bf16-mixed"):
            if name == "small_cnn":
                model, make = image_model("small_cnn", channels_last=precision == "bf16-mixed")
                batch = make(64)
            else:
                model, make = spectrum_model()
                batch = make(32)
            model.train()
            eager = step_function(model, batch, precision)
            compiled = step_function(torch.compile(model), batch, precision)
            eager()  # oneDNN's kernel choice on the first call
            t0 = time.perf_counter()
            compiled(), compiled()  # compile (forward and backward graphs), then one cached call
            compile_s = time.perf_counter() - t0
            eager_s = median_seconds(eager, args.steps)
            compiled_s = median_seconds(compiled, args.steps)
            print(f"{name:9s} {precision:10s}: eager {eager_s * 1e3:7.1f} ms/step, compiled {compiled_s * 1e3:7.1f} "
                  f"ms/step ({eager_s / compiled_s:4.2f}x), compile {compile_s:5.1f} s = "
                  f"{compile_s / eager_s:5.0f} eager steps", flush=True)


if __name__ == "__main__":
    main()
