"""Run every benchmark once with its default (CPU-sized) arguments; `make bench`.

Each script prints its own figures and the ratio against the reference it measures in the same run.
"""

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent
BENCHMARKS = [
    ["bench_render.py", "200"],
    ["bench_hdf5_read.py", "--n", "2000"],
    ["bench_augment.py"],
    ["bench_train_step.py"],
    ["bench_embed.py", "--n", "1000"],
    ["bench_spectrum.py"],
    ["bench_index.py", "--n", "100000", "--dim", "128"],
    ["bench_serve.py", "--n", "1000000", "--dim", "128", "--clients", "20", "100", "--seconds", "30"],
]

if __name__ == "__main__":
    failed = []
    for script, *args in BENCHMARKS:
        print(f"\n=== {script} {' '.join(args)}", flush=True)
        if subprocess.call([sys.executable, str(HERE / script), *args]) != 0:
            failed.append(script)
    if failed:
        sys.exit(f"failed: {failed}")
