"""keep_freed_memory: glibc stops unmapping freed blocks, so repeated forward passes on CPU stop
faulting their activations' pages in again (measured as the process's minor page faults, in fresh
interpreters with and without it)."""

import json
import subprocess
import sys

import pytest

from astroembed.runtime import OPT_OUT_ENV, _glibc

PROBE = """
import json, resource, torch
from astroembed.runtime import keep_freed_memory
applied = keep_freed_memory()
conv = torch.nn.Conv2d(3, 32, 3, padding=1)
x = torch.randn(64, 3, 96, 96)  # activations of 75 MB per forward
def forward():
    with torch.inference_mode():
        conv(x).relu_()
forward()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    forward()
print(json.dumps({"applied": applied,
                  "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 4}))
"""


def probe(opt_out: bool) -> dict:
    env = {"PATH": "/usr/bin:/bin", OPT_OUT_ENV: "1" if opt_out else "0"}
    out = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(_glibc() is None, reason="not glibc: keep_freed_memory is a no-op here")
def test_forward_passes_stop_faulting_pages_in():
    tuned, system = probe(opt_out=False), probe(opt_out=True)
    assert tuned["applied"] and not system["applied"]
    # system malloc: every forward faults its ~75 MB of activations in again (~18,000 pages of 4 KiB)
    assert system["faults"] > 5000
    assert tuned["faults"] < 0.25 * system["faults"]  # (measured: 0 with 2 threads, 12 % with 1)


def test_check_device_refuses_what_this_machine_cannot_run():
    import torch

    from astroembed.runtime import DeviceUnavailableError, check_device

    for always in ("cpu", "auto", "meta"):
        check_device(always)
    with pytest.raises(ValueError, match="'cuda:x'.*cuda:N"):
        check_device("cuda:x")
    if not torch.cuda.is_available():
        for name in ("cuda", "cuda:0", "gpu"):
            with pytest.raises(DeviceUnavailableError, match=f"'{name}'.*no CUDA GPU.*--device cpu"):
                check_device(name)
    else:  # on a GPU machine: every visible device passes, the one past the last is named
        count = torch.cuda.device_count()
        for name in ["cuda", "gpu"] + [f"cuda:{i}" for i in range(count)]:
            check_device(name)
        with pytest.raises(DeviceUnavailableError, match=f"'cuda:{count}'.*has {count} CUDA device"):
            check_device(f"cuda:{count}")



def test_resolve_device_picks_the_gpu_only_when_there_is_one_and_checks_names():
    # The one resolver every stage and loader uses (inference, frozen alignment, decoder, evaluate).
    import torch

    from astroembed.runtime import DeviceUnavailableError, resolve_device

    expected = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device(None) == resolve_device("auto") == expected
    assert resolve_device("cpu") == torch.device("cpu")
    if not torch.cuda.is_available():
        with pytest.raises(DeviceUnavailableError, match="'cuda'.*no CUDA GPU"):
            resolve_device("cuda")

# ------------------------------------------------------------------ precision: what --precision auto means

SAPPHIRE_RAPIDS = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512_bf16 amx_bf16 amx_tile amx_int8\n"
SKYLAKE = "processor\t: 0\nflags\t\t: fpu sse2 avx2 fma avx512f avx512dq avx512_vnni\n"
GRAVITON3 = "processor\t: 0\nFeatures\t: fp asimd sve i8mm bf16 svebf16\nCPU implementer\t: 0x41\n"


def test_bf16_units_are_read_from_the_cpu_flags():
    from astroembed.runtime import cpu_bf16_flags, cpu_supports_bf16

    assert cpu_bf16_flags(SAPPHIRE_RAPIDS) == ("amx_bf16", "avx512_bf16")
    assert cpu_bf16_flags(GRAVITON3) == ("bf16",)
    # avx512f, vnni (int8) and "svebf16" are not whole-word bf16 dot-product flags
    assert cpu_bf16_flags(SKYLAKE) == () and not cpu_supports_bf16(SKYLAKE)
    assert cpu_bf16_flags("model name\t: some CPU\n") == ()


@pytest.mark.parametrize("cpuinfo, expected", [(SAPPHIRE_RAPIDS, "bf16-mixed"), (SKYLAKE, "32-true"),
                                               (GRAVITON3, "bf16-mixed")])
def test_auto_precision_follows_the_cpu_for_training_and_embedding(monkeypatch, cpuinfo, expected):
    import astroembed.runtime as runtime
    from astroembed.train.common import RunConfig

    real = runtime.cpu_bf16_flags
    monkeypatch.setattr(runtime, "cpu_bf16_flags", lambda text=None: real(cpuinfo))
    assert runtime.resolve_precision("auto", "cpu") == expected
    assert RunConfig(device="cpu").resolved_precision() == expected
    # a forced choice is kept whatever the CPU has
    assert RunConfig(device="cpu", precision="32").resolved_precision() == "32-true"
    assert RunConfig(device="cpu", precision="bf16-mixed").resolved_precision() == "bf16-mixed"
    assert runtime.resolve_precision("32-true", "cpu") == "32-true"


def test_autocast_computes_in_bf16_only_when_asked():
    import torch

    from astroembed.runtime import autocast

    a, b = torch.randn(4, 8), torch.randn(8, 3)
    with autocast("cpu", "bf16-mixed"):
        assert (a @ b).dtype == torch.bfloat16
    with autocast("cpu", "32-true"):
        assert (a @ b).dtype == torch.float32
