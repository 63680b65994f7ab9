"""Two choices in the spectrum training step under CPU bf16: where attention computes, and which AdamW.

    python bench/bench_attention_optimizer.py [--n 400] [--batches 3] [--repeats 5] [--out runs/bench_attention]

1. One training step of the main job's spectrum transformer (``spectrum_masked_demo``: forward, masked
   loss, backward, AdamW) on the same prepared batches in three modes, alternated ``--repeats`` times
   (medians, so drifting machine load hits all three): fp32; bf16 autocast with PyTorch's bf16
   attention kernel (what ran before ``models/vit.attend``); bf16 autocast with attention in fp32 (what
   runs now). Prints seconds per step and each mode's speed-up over fp32.
2. One AdamW step over the same transformer's parameters, torch's default (foreach) against the fused
   kernel ``train/lightning_module.adamw`` picks; prints ms per step and the ratio.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from rich.console import Console

from astroembed.models import vit
from astroembed.pipeline import build_survey
from astroembed.train.spectrum import SpectrumMaskedModelling, SpectrumPretrainConfig, spectrum_dataset

MODES = ("fp32", "bf16, bf16 attention", "bf16, fp32 attention")


def bf16_kernel_attention(q, k, v):
    return F.scaled_dot_product_attention(q, k, v)


def training_step_seconds(networks, batches, optimizer, mode: str) -> float:
    fp32_attention = vit.attend
    if mode == "bf16, bf16 attention":
        vit.attend = bf16_kernel_attention  # Attention.forward looks the function up at call time
    try:
        t0 = time.perf_counter()
        for inputs in batches:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=mode != "fp32"):
                loss = networks.training_loss(inputs)
            loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
        return (time.perf_counter() - t0) / len(batches)
    finally:
        vit.attend = fp32_attention


def optimizer_step_ms(params, repeats: int = 20, **options) -> float:
    optimizer = torch.optim.AdamW(params, 1e-4, **options)
    optimizer.step()  # creates the state
    t0 = time.perf_counter()
    for _ in range(repeats):
        optimizer.step()
    return (time.perf_counter() - t0) / repeats * 1000


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=400, help="galaxies in the built-in survey used")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default="runs/bench_attention")
    args = parser.parse_args()

    survey = build_survey(Path(args.out), args.n, 0, Console())
    config = SpectrumPretrainConfig.from_yaml("spectrum_masked_demo")
    torch.manual_seed(0)
    networks = SpectrumMaskedModelling(config)
    loader = torch.utils.data.DataLoader(spectrum_dataset(survey), batch_size=config.run.batch_size, shuffle=True,
                                         num_workers=0, drop_last=True)
    batches = [networks.inputs(b, "cpu") for _, b in zip(range(args.batches), loader)]
    optimizer = torch.optim.AdamW(networks.parameters(), config.run.learning_rate)
    for mode in MODES:  # warm-up: oneDNN builds its kernels on first use
        training_step_seconds(networks, batches, optimizer, mode)
    times = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            times[mode].append(training_step_seconds(networks, batches, optimizer, mode))
    median = {mode: statistics.median(t) for mode, t in times.items()}
    for mode in MODES:
        print(f"training step, {mode}: {median[mode]:.3f} s ({median['fp32'] / median[mode]:.2f}x fp32)")

    params = list(networks.parameters())
    for p in params:
        p.grad = torch.randn_like(p)
    foreach, fused = optimizer_step_ms(params), optimizer_step_ms(params, fused=True)
    print(f"AdamW step over {sum(p.numel() for p in params):,} parameters: foreach {foreach:.1f} ms, "
          f"fused {fused:.1f} ms ({foreach / fused:.1f}x)")


if __name__ == "__main__":
    main()
