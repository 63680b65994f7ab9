"""What a CPU user gets per model and precision: training and embedding throughput, FLOP/s, % of peak.

    python bench/bench_precision.py [--models small_cnn resnet18 spectrum] [--repeats 3] [--clock-ghz G]
                                    [--channels-last]

For each model (the small CNN and ResNet-18 at 64 px, 3 bands, as the image stages train them; the
spectrum transformer of ``spectrum_masked_demo``, dim 128, depth 4, on its 4 A grid) it times

* a training step: forward, a scalar loss, backward and an AdamW step on a fixed batch (the network
  alone: augmentations and data loading are the other benchmarks' subject);
* an embedding forward: ``inference_mode`` on a batch of 256 (64 for the spectrum transformer),

in fp32 (``32-true``) and in bf16 autocast (``bf16-mixed``, what ``--precision auto`` runs on a CPU with
bf16 units), alternating the two precisions ``--repeats`` times and keeping the best of each (the
machine is shared: its speed drifts from one minute to the next). The FLOPs of each call are counted
by torch (bench/peak.py: matrix work only); the achieved FLOP/s is set against the machine's peak for
the precision (fp32: AVX-512 FMA units; bf16: AMX where the CPU has it). ``--channels-last`` puts the
image models and their input in NHWC, the layout oneDNN's bf16 convolutions compute in (in NCHW every
convolution reorders its input and output).
"""

from __future__ import annotations

import argparse
import time

import torch

from astroembed.models.image_encoder import ImageEncoderConfig, build_image_encoder
from astroembed.runtime import autocast, keep_freed_memory
from peak import count_flops, machine_peak

PRECISIONS = ("32-true", "bf16-mixed")


def image_model(arch: str, channels_last: bool = False):
    torch.manual_seed(0)
    model = build_image_encoder(ImageEncoderConfig(arch=arch, in_channels=3, image_size=64))
    layout = torch.channels_last if channels_last else torch.contiguous_format
    return model.to(memory_format=layout), lambda n: torch.randn(n, 3, 64, 64).contiguous(memory_format=layout)


def spectrum_model():
    from astroembed.config import load_yaml_config
    from astroembed.models.spectrum_transformer import SpectrumTransformer
    from astroembed.preprocess.spectrum import prepare_batch
    from astroembed.train.spectrum import SpectrumPretrainConfig

    cfg = load_yaml_config(SpectrumPretrainConfig, "spectrum_masked_demo", {"data": "-", "out": "-"})
    torch.manual_seed(0)
    model = SpectrumTransformer(cfg.model)
    wave = torch.arange(3600.0, 9824.0, 0.8).numpy()

    def batch(n):
        flux = torch.rand(n, wave.size).numpy() + 1.0
        return prepare_batch(flux, flux * 0 + 4.0, flux * 0, wave, cfg.preprocess)

    return model, batch


def timed(call, repeats: int = 1) -> float:
    call()  # warm-up: oneDNN picks and caches its kernels on the first call of a shape
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - t0)
    return best


def measure(name: str, model, make_batch, train_batch: int, embed_batch: int, precision: str) -> dict:
    train_x, embed_x = make_batch(train_batch), make_batch(embed_batch)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def train_step():
        model.train()
        with autocast("cpu", precision):
            loss = model(train_x).float().square().mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def embed():
        model.eval()
        with torch.inference_mode(), autocast("cpu", precision):
            model(embed_x).float()

    return {"train_s": timed(train_step), "embed_s": timed(embed),
            "train_flops": count_flops(train_step), "embed_flops": count_flops(embed)}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["small_cnn", "resnet18", "spectrum"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--clock-ghz", type=float, default=None)
    parser.add_argument("--channels-last", action="store_true", help="image models and inputs in NHWC")
    args = parser.parse_args()
    print(f"keep_freed_memory: {keep_freed_memory()}; torch threads {torch.get_num_threads()}")
    peaks = {p: machine_peak(p, clock=args.clock_ghz) for p in PRECISIONS}
    for p, peak in peaks.items():
        print(f"{p}: {peak.describe()}")
    for name in args.models:
        model, make_batch = spectrum_model() if name == "spectrum" else image_model(name, args.channels_last)
        train_batch, embed_batch = (32, 64) if name == "spectrum" else (64, 256)
        best = {p: None for p in PRECISIONS}
        for _ in range(args.repeats):  # alternating, so drift hits both precisions alike
            for p in PRECISIONS:
                r = measure(name, model, make_batch, train_batch, embed_batch, p)
                if best[p] is None or r["train_s"] + r["embed_s"] < best[p]["train_s"] + best[p]["embed_s"]:
                    best[p] = r
        for p, r in best.items():
            for what, n in (("train", train_batch), ("embed", embed_batch)):
                seconds, flops = r[f"{what}_s"], r[f"{what}_flops"]
                print(f"{name:9s} {what} {p:10s}: {n / seconds:8.1f} objects/s, {flops / n / 1e9:.3f} GFLOP/object, "
                      f"{flops / seconds / 1e9:7.1f} GFLOP/s = {100 * flops / seconds / peaks[p].flops:5.2f} % of peak")
        for what in ("train", "embed"):
            print(f"{name:9s} {what} bf16/fp32 throughput: "
                  f"{best['32-true'][f'{what}_s'] / best['bf16-mixed'][f'{what}_s']:.2f}x")


if __name__ == "__main__":
    main()
