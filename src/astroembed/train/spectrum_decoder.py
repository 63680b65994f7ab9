"""Train a spectrum decoder on a frozen aligned (CLIP) model: shared-space vector -> spectrum on the grid.

    astroembed train-spectrum-decoder --model RUN_CLIP/model --data SURVEY --out RUN

The aligned model stays frozen, so every galaxy is embedded once (and its spectrum put on the model grid
once) and cached in ``RUN/training_set.npz``; the epochs then cost a few matrix products each. That is
why this stage is a short plain loop over tensors rather than a Lightning run over the survey: there is
no data loading, augmentation or distribution to manage. A tenth of the training galaxies is held back
to choose the epoch (the decoder with the lowest validation chi^2 is kept); training stops after
``patience`` epochs without improvement.

The loss is :func:`astroembed.objectives.spectrum_chi2.spectrum_chi2_loss` (chi^2 per valid pixel with
the observed ivar; masked pixels excluded, plus the log10 scale). The decoder is saved into
``<model>/spectrum_decoder/`` (see :mod:`astroembed.models.spectrum_decoder`), where
``astroembed.load(model).predict_spectrum`` finds it; ``RUN/history.json`` holds the losses.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..config import Config, save_yaml_config
from ..data.records import InvalidDataError
from ..evaluate.spectrum_prediction import galaxy_table
from ..files import atomic_path, atomic_write_text
from ..inference import load
from ..models.spectrum_decoder import SpectrumDecoder, save_decoder
from ..objectives.spectrum_chi2 import spectrum_chi2_loss
from ..runtime import resolve_device

__all__ = ["SpectrumDecoderConfig", "train_spectrum_decoder", "fit_decoder", "cached_table"]

TABLE_KEYS = ("object_id", "index", "vector", "flux", "ivar", "valid", "log10_scale")


@dataclass
class SpectrumDecoderConfig(Config):
    """Everything a decoder run needs; loadable from YAML (``configs/decoder_*.yaml``)."""

    model: str = ""                 # exported aligned model folder (RUN/model); the decoder is saved inside it
    data: str = ""                  # MMU survey with the input modalities and spectra
    out: str = "runs/spectrum_decoder"  # run folder: cached training set, config.yaml, history.json
    inputs: list[str] = field(default_factory=lambda: ["image"])  # modalities whose vectors are decoded
    hidden: int = 512
    depth: int = 2
    dropout: float = 0.3
    epochs: int = 300
    patience: int = 40              # epochs without a better validation chi^2 before stopping
    batch_size: int = 128
    learning_rate: float = 1e-3
    weight_decay: float = 1e-2
    scale_weight: float = 1.0       # weight of the log10-scale term of the loss
    systematic: float = 0.0         # noise floor of the chi^2 (normalised flux units); 0 = plain chi^2
    val_fraction: float = 0.1
    train_indices: list[int] | None = None
    seed: int = 0
    device: str = "cpu"             # cpu, cuda, cuda:N or auto

    def __post_init__(self):
        unknown = set(self.inputs) - {"image", "photometry"}
        if not self.inputs or unknown:
            raise ValueError(f"inputs must be a non-empty subset of image, photometry; got {self.inputs}")
        if not 0 < self.val_fraction < 1:
            raise ValueError(f"val_fraction must be in (0, 1), got {self.val_fraction}")
        for name in ("epochs", "patience", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


def cached_table(embedder, config: SpectrumDecoderConfig, path: Path) -> dict[str, np.ndarray]:
    """The training galaxies embedded and on the grid; read from ``path`` when it was made by these exact
    weights, inputs and indices, else computed and written there (``.npz``, no pickled objects)."""
    key = json.dumps({"model": embedder.content_hash, "inputs": list(config.inputs), "data": str(config.data),
                      "indices": config.train_indices})
    if path.is_file():
        with np.load(path, allow_pickle=False) as cached:
            if str(cached["key"]) == key:
                return {k: cached[k] for k in TABLE_KEYS}
    table = galaxy_table(embedder, config.data, config.train_indices, tuple(config.inputs), labels=())
    # Written whole or not at all: a run killed mid-write must not leave a truncated cache the rerun trips on.
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a handle: np.savez would add ".npz" to the name
        np.savez(f, key=np.array(key), **{k: (table[k].astype(str) if k == "object_id" else table[k])
                                          for k in TABLE_KEYS})
    return table


def _tensors(table: dict, rows: np.ndarray, device) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(table[k][rows], device=device) for k in ("vector", "flux", "ivar", "valid",
                                                                        "log10_scale")}


def _loss(decoder, t: dict, config: SpectrumDecoderConfig) -> torch.Tensor:
    shape, log10_scale = decoder(t["vector"])
    return spectrum_chi2_loss(shape, log10_scale, t["flux"], t["ivar"], t["valid"], t["log10_scale"],
                              config.scale_weight, config.systematic)


def fit_decoder(table: dict[str, np.ndarray], config: SpectrumDecoderConfig, log=None
                ) -> tuple[SpectrumDecoder, dict]:
    """Train a decoder on an embedded table (:func:`galaxy_table` output); returns it and its history.

    Inputs are standardised with the training vectors' statistics; the output bias starts at the training
    mean spectrum (per pixel over valid pixels) and mean log10 scale; AdamW with a cosine learning rate;
    the epoch with the lowest validation loss is kept.
    """
    n = len(table["vector"])
    if n < 4:
        raise InvalidDataError(f"{n} galaxies with spectra: too few to train a decoder", field="spectrum_flux")
    generator = torch.Generator().manual_seed(config.seed)
    torch.manual_seed(config.seed)
    order = np.random.default_rng(config.seed).permutation(n)
    n_val = max(1, int(round(config.val_fraction * n)))
    fit_rows, val_rows = order[n_val:], order[:n_val]
    device = resolve_device(config.device)
    fit, val = _tensors(table, fit_rows, device), _tensors(table, val_rows, device)
    decoder = SpectrumDecoder(fit["vector"].shape[1], fit["flux"].shape[1], config.hidden, config.depth,
                              config.dropout).to(device)
    valid = fit["valid"].float()
    decoder.start_from(fit["vector"], (fit["flux"] * valid).sum(0) / valid.sum(0).clamp_min(1.0),
                       float(fit["log10_scale"].mean()))
    optimizer = torch.optim.AdamW(decoder.parameters(), lr=config.learning_rate, weight_decay=config.weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=config.epochs)
    history: dict = {"train": [], "val": [], "best_epoch": 0}
    best, best_state, waited = float("inf"), None, 0
    for epoch in range(config.epochs):
        decoder.train()
        total = 0.0
        for batch in torch.randperm(len(fit_rows), generator=generator).split(config.batch_size):
            loss = _loss(decoder, {k: v[batch.to(device)] for k, v in fit.items()}, config)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        scheduler.step()
        decoder.eval()
        with torch.no_grad():
            val_loss = float(_loss(decoder, val, config))
        history["train"].append(total / len(fit_rows))
        history["val"].append(val_loss)
        if val_loss < best:
            best, waited, history["best_epoch"] = val_loss, 0, epoch
            best_state = {k: v.detach().clone() for k, v in decoder.state_dict().items()}
        else:
            waited += 1
        if log is not None and (epoch % 25 == 0 or waited == config.patience):
            log(f"epoch {epoch}: train loss {history['train'][-1]:.3f}, validation {val_loss:.3f}")
        if waited >= config.patience:
            break
    decoder.load_state_dict(best_state)
    return decoder.cpu().eval(), history


def train_spectrum_decoder(config: SpectrumDecoderConfig, log=None) -> Path:
    """Run the stage; returns the decoder folder ``<model>/spectrum_decoder``."""
    embedder = load(config.model, device=config.device)
    if getattr(embedder, "modality", None) != "aligned":
        raise InvalidDataError(f"a spectrum decoder reads the shared space of an aligned (CLIP) model; this is a "
                               f"{embedder.config['model_type']!r} model", source=str(config.model),
                               field="model_type")
    missing = [m for m in config.inputs if m not in embedder.modalities]
    if missing:
        raise InvalidDataError(f"the model has no {missing[0]} encoder (it aligns {list(embedder.modalities)})",
                               source=str(config.model), field="inputs")
    run_dir = Path(config.out)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_yaml_config(config, run_dir / "config.yaml")
    table = cached_table(embedder, config, run_dir / "training_set.npz")
    decoder, history = fit_decoder(table, config, log)
    atomic_write_text(run_dir / "history.json", json.dumps(history))
    return save_decoder(decoder, embedder.path, embedder.config["preprocessing"]["spectrum"], list(config.inputs),
                        {"data": str(config.data), "n_train": len(table["vector"]),
                         "best_epoch": history["best_epoch"], "val_loss": min(history["val"]),
                         "aligned_model": str(embedder.path),
                         **{k: getattr(config, k) for k in ("hidden", "depth", "dropout", "systematic", "seed")}})
