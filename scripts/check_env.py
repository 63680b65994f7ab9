"""Fail loudly on a bad install: torch must be the pinned CPU-compatible 2.13.0, torchvision absent
(its wheels here are CUDA builds whose import fails and whose presence breaks `import lightning`), and
no nvidia-* or triton packages (they mean pip pulled a CUDA build of torch)."""

import sys
from importlib import metadata

problems = []
try:
    torch_version = metadata.version("torch")
except metadata.PackageNotFoundError:
    torch_version = None
user_torch = "--user-torch" in sys.argv  # `make demo TORCH=`: a GPU user brought their own torch build
if torch_version is None or not (user_torch or torch_version.startswith("2.13.0")):
    problems.append(f"torch must be 2.13.0, found {torch_version}")
names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
for bad in ("torchvision", "timm", "lightly", "open-clip-torch"):
    if bad in names:
        problems.append(f"{bad} is installed; it breaks lightning here (uninstall it)")
cuda = sorted(n for n in names if n.startswith("nvidia-") or n == "triton")
if cuda and not user_torch:
    problems.append(f"CUDA packages installed ({', '.join(cuda)}): pip pulled a CUDA build of torch")
if problems:
    print("environment check failed:\n  " + "\n  ".join(problems), file=sys.stderr)
    sys.exit(1)
print(f"environment ok: torch {torch_version}, no torchvision, no CUDA packages")
