"""What every pretraining stage shares: run settings, the Lightning Trainer, resume, export.

A run folder holds

    RUN/config.yaml          the full stage config, as run
    RUN/checkpoints/         Lightning checkpoints (last.ckpt is rewritten every N steps: resume point)
    RUN/logs/version_K/      CSV logs (metrics.csv), one folder per attempt so a crash loses no log
    RUN/model/               the exported model: config.json + model.safetensors (+ preprocessing)

Rerunning the same command after a crash (even kill -9) resumes from ``checkpoints/last.ckpt``. The
checkpoints are our own files written by this run, read back by Lightning with ``weights_only=True``:
torch's restricted unpickler, which rebuilds tensors, containers and primitives but runs no other code,
so a tampered ``last.ckpt`` in a shared run folder cannot execute anything. Exported models never are
pickles.
"""

from __future__ import annotations

import contextlib
import logging
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

from astroembed.config import Config


@dataclass
class RunConfig(Config):
    """Hardware and schedule settings shared by all stages (``device``, precision, strategy are data)."""

    device: str = "auto"            # "auto", "cpu", "cuda", "gpu"
    devices: int | str = 1          # number of devices (processes under DDP); "auto" = all
    precision: str = "auto"         # "auto" (bf16-mixed where the GPU/CPU has bf16 units), "32-true", "bf16-mixed"
    strategy: str = "auto"          # "auto", "ddp", "ddp_spawn", ...
    max_epochs: int = 100
    max_steps: int = -1
    max_minutes: float | None = None  # wall-clock budget for CPU users; the model is exported when it ends
    batch_size: int = 128
    num_workers: int = 2
    learning_rate: float = 1e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 100
    checkpoint_every_n_steps: int = 50
    log_every_n_steps: int = 10
    seed: int = 0
    progress: bool = True

    def accelerator(self) -> str:
        import torch

        from astroembed.runtime import check_device

        if self.device == "auto":
            return "gpu" if torch.cuda.is_available() else "cpu"
        check_device(self.device)  # a clear message, not Lightning's "No supported gpu backend found"
        return {"cuda": "gpu"}.get(self.device, self.device)

    def resolved_precision(self) -> str:
        """Lightning's precision: ``auto`` is bf16-mixed on hardware with bf16 units (runtime.resolve_precision)."""
        from astroembed.runtime import resolve_precision

        return resolve_precision(self.precision, self.accelerator())


class TimeBudget:
    """Lightning callback: stop cleanly (at a step boundary) when the wall-clock budget is spent.

    Lightning's own ``max_time`` counts from each (re)start; this one too, by design: a resumed run gets
    a fresh budget, which is what a CPU user re-running the command expects.
    """

    def __new__(cls, minutes: float):
        import lightning.pytorch as pl

        class _Budget(pl.Callback):
            def __init__(self):
                self.deadline = time.monotonic() + 60.0 * minutes

            def on_train_batch_end(self, trainer, *args, **kwargs):
                if time.monotonic() >= self.deadline:
                    trainer.should_stop = True

        return _Budget()


def build_trainer(run: RunConfig, run_dir: Path, extra_callbacks=()):
    """A Lightning Trainer writing checkpoints and CSV logs into ``run_dir``."""
    import lightning.pytorch as pl
    from lightning.pytorch.callbacks import ModelCheckpoint, TQDMProgressBar
    from lightning.pytorch.loggers import CSVLogger

    callbacks = [ModelCheckpoint(dirpath=run_dir / "checkpoints", filename="step{step}", save_last=True,
                                 every_n_train_steps=run.checkpoint_every_n_steps, save_top_k=1,
                                 monitor=None, auto_insert_metric_name=False),
                 *extra_callbacks]
    if run.max_minutes is not None:
        callbacks.append(TimeBudget(run.max_minutes))
    if run.progress:
        callbacks.append(TQDMProgressBar(refresh_rate=1))
    return pl.Trainer(
        accelerator=run.accelerator(), devices=run.devices, strategy=run.strategy,
        precision=run.resolved_precision(), max_epochs=run.max_epochs, max_steps=run.max_steps,
        logger=CSVLogger(run_dir, name="logs", flush_logs_every_n_steps=run.log_every_n_steps),
        callbacks=callbacks,
        log_every_n_steps=run.log_every_n_steps, enable_progress_bar=run.progress,
        enable_model_summary=False, default_root_dir=run_dir, num_sanity_val_steps=0,
        use_distributed_sampler=True, deterministic=False)


def resume_checkpoint(run_dir: Path) -> str | None:
    """The checkpoint to resume from, if a previous run of this folder left one."""
    last = run_dir / "checkpoints" / "last.ckpt"
    return str(last) if last.is_file() else None


def fit_stage(module, dataset, run: RunConfig, run_dir: Path, data_name: str, export) -> Path:
    """Train (or resume) a stage's LightningModule on ``dataset`` and export its model on rank 0.

    ``export(model_dir, extra)`` writes ``RUN/model``; ``extra`` carries the global step. Shared by the
    image, spectrum and CLIP stages so they checkpoint, resume and export identically.
    """
    import torch

    from astroembed.runtime import keep_freed_memory

    keep_freed_memory()  # CPU steps spend as long in page faults as in compute otherwise (runtime.py)

    loader = torch.utils.data.DataLoader(
        dataset, batch_size=run.batch_size, shuffle=True, drop_last=True,
        num_workers=run.num_workers, persistent_workers=run.num_workers > 0)
    if len(loader) == 0:
        raise ValueError(f"{data_name}: {len(dataset)} objects is fewer than one batch of "
                         f"{run.batch_size}; lower --batch-size")
    with lightning_notices_off():
        trainer = build_trainer(run, run_dir)
        # weights_only=True explicitly (not torch's default of the day, which an environment variable can
        # turn off): our checkpoints hold only tensors, containers, numbers and strings (no hyper-parameters
        # are saved), so the restricted unpickler reads them; anything else in the file fails loudly.
        trainer.fit(module, train_dataloaders=loader, ckpt_path=resume_checkpoint(run_dir), weights_only=True)
        finish_checkpoint(trainer, run_dir)
    model_dir = run_dir / "model"
    if trainer.is_global_zero:
        export(model_dir, {"global_step": int(trainer.global_step), "data": data_name,
                           "world_size": int(trainer.world_size)})
    return model_dir


# Lightning's notices that speak to ML engineers, not to the astronomer running a stage: the hardware
# summary, tips for cloud services, the stopping reason, a logging interval longer than a tiny epoch,
# modules deliberately kept in eval mode (frozen backbones), a deprecation inside Lightning itself.
# On a resume: the checkpoint folder is not empty (it holds the resume point) and the shuffled loader
# restarts its epoch (every sample is drawn afresh, so nothing is lost or repeated that matters).
_LIGHTNING_NOTICES = (r".*is smaller than the logging interval.*", r".*module\(s\) in eval mode.*",
                      r".*isinstance\(treespec, LeafSpec\).*", r".*does not have many workers.*",
                      r".*Checkpoint directory .* exists and is not empty.*",
                      r".*resuming from a checkpoint that ended before the epoch ended.*")


@contextlib.contextmanager
def lightning_notices_off():
    """Silence Lightning's informational logging and notices (listed above) for the duration of a fit.

    Our own progress bar and the stage's summary line stay; Lightning's real warnings (anything not listed)
    still show. Logging levels are restored afterwards.
    """
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    try:
        with warnings.catch_warnings():
            for pattern in _LIGHTNING_NOTICES:
                warnings.filterwarnings("ignore", message=pattern)
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def finish_checkpoint(trainer, run_dir: Path) -> None:
    """Checkpoint the final state, so rerunning a finished command resumes at its end (a no-op)."""
    trainer.save_checkpoint(run_dir / "checkpoints" / "last.ckpt")


def cosine_with_warmup(optimizer, warmup_steps: int, total_steps: int):
    """Linear warmup then cosine decay to 0; total_steps may be unknown (-1: constant after warmup)."""
    import math

    import torch

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / max(1, warmup_steps)
        if total_steps <= 0:
            return 1.0
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
