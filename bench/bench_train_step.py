"""One image-pretraining step through our Lightning stage vs a bare PyTorch loop, same model and batches.

    python bench/bench_train_step.py [--arch small_cnn] [--batch 64] [--steps 30] [--method simclr] \
        [--precision 32-true|bf16-mixed|auto]

Both sides run the identical work per step (two batched augmented views, preprocessing, encoder,
projection head, loss, backward, AdamW step) on the same in-memory batches; only the loop around it
differs. Steady-state seconds per step are timed after 5 warm-up steps. Prints both and the overhead
ratio (ours / bare; goal <= 1.10), and the efficiency: the step's matrix FLOPs (counted by torch's
FlopCounterMode on one step) per second of the stage, as a fraction of the machine's peak for the precision
(bench/peak.py). ``bf16-mixed`` runs both loops under bf16 autocast (Lightning's ``precision`` on our side).
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from astroembed.runtime import autocast, bf16_layout, keep_freed_memory, resolve_precision
from astroembed.config import load_yaml_config
from astroembed.train.common import RunConfig, cosine_with_warmup
from astroembed.train.image import ImagePretrainConfig, ImageSSLModule
from astroembed.train.lightning_module import StageModule
from peak import count_flops, efficiency_line, machine_peak

WARMUP = 5


class Batches(torch.utils.data.Dataset):
    def __init__(self, n: int, size: int = 96, seed: int = 0):
        g = torch.Generator().manual_seed(seed)
        self.image = torch.randn(n, 3, size, size, generator=g) * 0.02 + 0.05
        self.ivar = torch.full_like(self.image, 2500.0)
        self.psf = torch.tensor([1.3, 1.2, 1.1]).expand(n, 3).clone()

    def __len__(self):
        return len(self.image)

    def __getitem__(self, i):
        return {"image": self.image[i], "image_ivar": self.ivar[i], "image_has_ivar": True,
                "psf_fwhm": self.psf[i], "pixel_scale": torch.tensor(0.262)}


def config(args) -> ImagePretrainConfig:
    cfg = load_yaml_config(ImagePretrainConfig, None, {
        "method": args.method, "encoder": {"arch": args.arch},
        "run": {"batch_size": args.batch, "num_workers": 0, "progress": False, "warmup_steps": 10}})
    from astroembed.preprocess.image import PreprocessConfig

    cfg.preprocess = PreprocessConfig(crop_size=cfg.augment.crop_size)
    return cfg


def bare_loop(args, loader) -> float:
    torch.manual_seed(0)
    cfg = config(args)
    networks = bf16_layout(ImageSSLModule(cfg, ("g", "r", "z")), args.precision, "cpu")  # as pretrain_image
    optimizer = torch.optim.AdamW([p for p in networks.parameters() if p.requires_grad], lr=1e-3, weight_decay=1e-4)
    scheduler = cosine_with_warmup(optimizer, 10, args.steps)
    networks.train()
    t_start = None
    for step, batch in enumerate(loader):
        if step == WARMUP:
            t_start = time.perf_counter()
        with autocast("cpu", args.precision):  # what Lightning's bf16-mixed does around training_step
            loss = networks.training_loss(*networks.views(batch))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        networks.after_step(step, args.steps)
        if step + 1 == args.steps:
            break
    return (time.perf_counter() - t_start) / (args.steps - WARMUP)


def lightning_loop(args, loader) -> float:
    import lightning.pytorch as pl

    torch.manual_seed(0)
    cfg = config(args)
    networks = bf16_layout(ImageSSLModule(cfg, ("g", "r", "z")), args.precision, "cpu")  # as pretrain_image
    module = StageModule(networks, RunConfig(learning_rate=1e-3, warmup_steps=10))
    times = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == WARMUP:
                times["start"] = time.perf_counter()

    trainer = pl.Trainer(accelerator="cpu", devices=1, max_steps=args.steps, logger=False, precision=args.precision,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         callbacks=[Clock()], num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader)
    return (time.perf_counter() - times["start"]) / (args.steps - WARMUP)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--arch", default="small_cnn")
    parser.add_argument("--method", default="simclr")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="32-true", help="32-true, bf16-mixed or auto (what this CPU gets)")
    parser.add_argument("--clock-ghz", type=float, default=None, help="override the clock read from /proc/cpuinfo")
    args = parser.parse_args()
    args.precision = resolve_precision(args.precision, "cpu")
    # Both sides of every comparison run with the allocator setting the package uses (runtime.py);
    # without it CPU figures mostly measure the kernel's page faults.
    print(f"keep_freed_memory: {keep_freed_memory()}")
    data = Batches(args.batch * args.steps)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True)
    bare, ours = [], []
    for _ in range(args.repeats):  # interleaved, so drifting machine load hits both alike
        bare.append(bare_loop(args, loader))
        ours.append(lightning_loop(args, loader))
    b, o = float(np.median(bare)), float(np.median(ours))
    print(f"threads={torch.get_num_threads()} arch={args.arch} method={args.method} batch={args.batch}")
    print(f"bare PyTorch loop : {b * 1000:8.1f} ms/step ({args.batch / b:7.1f} images/s)")
    print(f"astroembed stage  : {o * 1000:8.1f} ms/step ({args.batch / o:7.1f} images/s)")
    print(f"overhead ratio ours/bare: {o / b:.3f}")
    peak = machine_peak(args.precision, clock=args.clock_ghz)
    print(f"stage, precision {args.precision}: {efficiency_line(step_flops(args, loader), o, peak)}")


def step_flops(args, loader) -> int:
    """Matrix FLOPs of one training step (views, forward, loss, backward), counted by torch."""
    torch.manual_seed(0)
    networks = ImageSSLModule(config(args), ("g", "r", "z"))
    batch = next(iter(loader))

    def step():
        with autocast("cpu", args.precision):
            loss = networks.training_loss(*networks.views(batch))
        loss.backward()

    return count_flops(step)


if __name__ == "__main__":
    main()
