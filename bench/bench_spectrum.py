"""Spectrum stage throughput: pretraining steps (our Lightning stage vs a bare PyTorch loop) and embedding
(SpectrumEmbedder on raw DESI-grid arrays vs the bare model on prepared tensors).

    python bench/bench_spectrum.py [--batch 64] [--steps 30] [--dim 128] [--depth 4] [--wave-step 2]
                                   [--n-embed 4096] [--device auto] [--threads N] [--repeats 2]
                                   [--precision auto|32-true|bf16-mixed] [--clock-ghz G]

Training: both sides run the identical work per step on the same in-memory batches of stored spectra
(7781-pixel DESI grid): resample + normalise + patch on the device, masked modelling, backward, AdamW.
Only the loop around it differs (``--precision``, resolved as RunConfig resolves it, on both sides: bf16
autocast where the device has bf16 units under ``auto``).
Steady-state time per step after the warm-up steps. Embedding: ``embed_spectrum`` takes the raw arrays
(numpy, host memory) and does everything; the reference is the model alone on batches already prepared
on the device, so the ratio is the cost of accepting data as stored.
Training sides run interleaved ``--repeats`` times (medians), so drifting machine load hits both
alike. On a shared, oversubscribed CPU pass ``--threads 1``: torch's intra-op threads then fight for
cores and small elementwise ops get 10-20x slower. Prints one line per figure, and for the training step
and the bare embedding forward the matrix FLOPs counted by torch, the FLOP/s achieved and the fraction of
the machine's peak for the precision (bench/peak.py; CPU only).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import astroembed
from astroembed.preprocess.spectrum import SpectrumPreprocessConfig, prepare_batch
from astroembed.runtime import autocast, keep_freed_memory, resolve_precision
from astroembed.config import load_yaml_config
from astroembed.train.common import RunConfig, cosine_with_warmup
from astroembed.train.lightning_module import StageModule
from astroembed.train.spectrum import SpectrumMaskedModelling, SpectrumPretrainConfig, export_spectrum_encoder
from peak import count_flops, efficiency_line, machine_peak

WARMUP = 3
DESI = np.arange(3600.0, 9824.0 + 1e-6, 0.8)


def desi_spectra(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Continuum + a few redshifted lines + noise on the DESI grid, float32 like stored spectra."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(0.0, 0.8, (n, 1))
    flux = 3 + 2 * (DESI / 6700.0) ** rng.uniform(-1, 2, (n, 1))
    for rest in (3727.0, 4861.0, 5007.0, 6563.0):
        flux += rng.uniform(0, 20, (n, 1)) * np.exp(-0.5 * ((DESI - rest * (1 + z)) / 3.0) ** 2)
    ivar = np.full(flux.shape, 4.0, np.float32)
    flux = (flux + rng.normal(0, 0.5, flux.shape)).astype(np.float32)
    return flux, ivar, np.ones(flux.shape, bool)


class StoredBatches(torch.utils.data.Dataset):
    def __init__(self, n: int):
        flux, ivar, mask = desi_spectra(n)
        self.flux, self.ivar, self.mask = map(torch.from_numpy, (flux, ivar, mask))
        self.lam = torch.from_numpy(DESI.astype(np.float32))

    def __len__(self):
        return len(self.flux)

    def __getitem__(self, i):
        return {"spectrum_flux": self.flux[i], "spectrum_ivar": self.ivar[i], "spectrum_lambda": self.lam,
                "spectrum_mask": self.mask[i]}


def config(args) -> SpectrumPretrainConfig:
    return load_yaml_config(SpectrumPretrainConfig, None, {
        "preprocess": {"wave_step": args.wave_step},
        "model": {"dim": args.dim, "depth": args.depth, "num_heads": max(1, args.dim // 32)},
        "run": {"batch_size": args.batch, "num_workers": 0, "progress": False, "warmup_steps": 10,
                "device": args.device, "precision": args.precision}})


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def bare_loop(args, loader, device) -> float:
    torch.manual_seed(0)
    networks = SpectrumMaskedModelling(config(args)).to(device).train()
    optimizer = torch.optim.AdamW(networks.parameters(), lr=1e-3, weight_decay=1e-4)
    scheduler = cosine_with_warmup(optimizer, 10, args.steps)
    t_start = None
    for step, batch in enumerate(loader):
        if step == WARMUP:
            sync(device)
            t_start = time.perf_counter()
        batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
        with autocast(device.type, args.precision):
            loss = networks.training_loss(networks.inputs(batch, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        if step + 1 == args.steps:
            break
    sync(device)
    return (time.perf_counter() - t_start) / (args.steps - WARMUP)


def lightning_loop(args, loader, device) -> float:
    import lightning.pytorch as pl

    torch.manual_seed(0)
    cfg = config(args)
    module = StageModule(SpectrumMaskedModelling(cfg), RunConfig(learning_rate=1e-3, warmup_steps=10))
    times = {}

    class Clock(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.global_step == WARMUP:
                sync(device)
                times["start"] = time.perf_counter()

        def on_train_batch_end(self, trainer, *rest):
            if trainer.global_step == args.steps:
                sync(device)
                times["end"] = time.perf_counter()

    trainer = pl.Trainer(accelerator=cfg.run.accelerator(), devices=1, precision=cfg.run.resolved_precision(),
                         max_steps=args.steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, callbacks=[Clock()], num_sanity_val_steps=0)
    trainer.fit(module, train_dataloaders=loader)
    return (times["end"] - times["start"]) / (args.steps - WARMUP)


def embedding(args, device) -> tuple[float, float]:
    cfg = config(args)
    torch.manual_seed(0)
    model = SpectrumMaskedModelling(cfg).model.eval()
    flux, ivar, mask = desi_spectra(args.n_embed, seed=1)
    with tempfile.TemporaryDirectory() as tmp:
        embedder = astroembed.load(export_spectrum_encoder(model, cfg.preprocess, Path(tmp) / "model"), device=device,
                                   precision=args.precision)
    bs = args.embed_batch
    ours = []
    for _ in range(2):
        sync(device)
        t = time.perf_counter()
        embedder.embed_spectrum(flux, ivar, DESI, mask=mask, batch_size=bs)
        sync(device)
        ours.append(time.perf_counter() - t)
    model = model.to(device)
    prepared = [prepare_batch(flux[i:i + bs], ivar[i:i + bs], mask[i:i + bs], DESI, cfg.preprocess, device=device)
                for i in range(0, len(flux), bs)]
    bare = []
    with torch.inference_mode(), autocast(device.type, args.precision):
        for _ in range(2):
            sync(device)
            t = time.perf_counter()
            for batch in prepared:
                model(batch).float().cpu()
            sync(device)
            bare.append(time.perf_counter() - t)
    return min(ours), min(bare), count_flops(lambda: model(prepared[0]))


def step_flops(args, loader, device) -> int:
    """Matrix FLOPs of one masked-modelling training step (forward + backward), counted by torch."""
    torch.manual_seed(0)
    networks = SpectrumMaskedModelling(config(args)).to(device).train()
    batch = {k: v.to(device) for k, v in next(iter(loader)).items()}

    def step():
        with autocast(device.type, args.precision):
            loss = networks.training_loss(networks.inputs(batch, device))
        loss.backward()

    return count_flops(step)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--wave-step", type=float, default=2.0)
    parser.add_argument("--n-embed", type=int, default=4096)
    parser.add_argument("--embed-batch", type=int, default=256)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--precision", default="auto", help="auto (bf16 where the device has bf16 units), "
                        "32-true, bf16-mixed")
    parser.add_argument("--clock-ghz", type=float, default=None, help="override the clock read from /proc/cpuinfo")
    args = parser.parse_args()
    # Both sides of every comparison run with the allocator setting the package uses (runtime.py);
    # without it CPU figures mostly measure the kernel's page faults.
    print(f"keep_freed_memory: {keep_freed_memory()}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device("cuda" if args.device == "auto" and torch.cuda.is_available()
                          else ("cpu" if args.device == "auto" else args.device))
    args.device = device.type
    args.precision = resolve_precision(args.precision, device.type)
    data = StoredBatches(args.batch * args.steps)
    loader = torch.utils.data.DataLoader(data, batch_size=args.batch, shuffle=False, drop_last=True)
    bare, ours = [], []
    for _ in range(args.repeats):
        bare.append(bare_loop(args, loader, device))
        ours.append(lightning_loop(args, loader, device))
    bare, ours = float(np.median(bare)), float(np.median(ours))
    pre = SpectrumPreprocessConfig(wave_step=args.wave_step)
    print(f"device={device} threads={torch.get_num_threads()} dim={args.dim} depth={args.depth} "
          f"batch={args.batch} model grid {pre.n_pixels} px / {pre.n_patches} patches, input 7781 px DESI grid")
    print(f"pretrain bare PyTorch loop : {args.batch / bare:9.1f} spectra/s ({bare * 1000:.1f} ms/step)")
    print(f"pretrain astroembed stage  : {args.batch / ours:9.1f} spectra/s ({ours * 1000:.1f} ms/step)")
    print(f"pretrain overhead ratio ours/bare: {ours / bare:.3f}")
    peak = machine_peak(args.precision, clock=args.clock_ghz) if device.type == "cpu" else None
    if peak:
        print(f"pretrain {args.precision}: {efficiency_line(step_flops(args, loader, device), ours, peak)}")
    emb, emb_bare, forward_flops = embedding(args, device)
    print(f"embed SpectrumEmbedder on raw DESI arrays : {args.n_embed / emb:9.1f} spectra/s")
    print(f"embed bare model on prepared tensors      : {args.n_embed / emb_bare:9.1f} spectra/s")
    print(f"embed ratio raw-input / bare-forward time: {emb / emb_bare:.3f}")
    if peak:  # FLOPs of one batch's forward x batches, over the embedder's time on all of them
        n_batches = -(-args.n_embed // args.embed_batch)
        print(f"embed {args.precision}: {efficiency_line(forward_flops * n_batches, emb, peak)}")


if __name__ == "__main__":
    main()
