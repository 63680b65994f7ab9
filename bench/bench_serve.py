"""Load on `astroembed serve`: concurrent clients searching a 1,000,000-vector index over loopback HTTP.

    python bench/bench_serve.py --n 1000000 --dim 128 --clients 20 100 --seconds 30

1. Builds (once; reused from ``--workdir`` when its stamp matches) an embedding catalogue of ``--n``
   vectors from bench_index.py's ``clustered_embeddings`` (shaped like real embeddings) at random sky
   positions, and an index over it with ``astroembed index``'s code (default: IVF-PQ with an 8-bit
   refinement, nprobe 5, the settings BENCHMARKS.md found to give recall@10 0.96 at 1M x 128).
2. Starts ``python -m astroembed serve`` on 127.0.0.1 in a subprocess and waits for /healthz.
3. Reference, same run: the search alone, in this process, one query at a time
   (``Explorer.search_object``, what the route calls), so the HTTP and server overhead is visible.
4. One client, requests one after another: wall latency and the server process's CPU time per request
   (from /proc/<pid>/stat), the machine-independent cost of a request: on a quiet machine with C cores
   the server can answer about C / (CPU per request) requests per second.
5. For each ``--clients`` count: that many keep-alive connections (asyncio) send GET /api/search?object_id=<random
   catalogue id>&k=10 back to back for ``--seconds`` (after ``--warmup`` seconds not counted). A request
   is an error unless it is a 200 with exactly k neighbours. Prints p50 / p99 latency, requests/s, errors.

Client and server share the machine (2 cores here), so the clients' own CPU time is in the figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from bench_index import clustered_embeddings  # noqa: E402


def build(workdir: Path, n: int, dim: int, kind: str, refine: str | None, nprobe: int) -> Path:
    """Embedding catalogue + index under ``workdir`` (skipped when already built with these settings)."""
    import pyarrow as pa

    from astroembed.embed.store import write_part_atomic
    from astroembed.search.catalog_search import build_index

    stamp = {"n": n, "dim": dim, "kind": kind, "refine": refine, "nprobe": nprobe}
    index_dir = workdir / "index"
    if (workdir / "stamp.json").is_file() and json.loads((workdir / "stamp.json").read_text()) == stamp:
        print(f"reusing {index_dir}", flush=True)
        return index_dir
    t0 = time.perf_counter()
    vectors = clustered_embeddings(n, dim, seed=0)
    rng = np.random.default_rng(0)
    ra, dec = rng.uniform(0, 360, n), np.degrees(np.arcsin(rng.uniform(-1, 1, n)))
    table = pa.table({"object_id": [f"obj-{i:07d}" for i in range(n)], "ra": ra, "dec": dec,
                      "healpix": np.zeros(n, np.int64),
                      "embedding_image": pa.FixedSizeListArray.from_arrays(pa.array(vectors.ravel()), dim)})
    meta = {"model_name": "bench", "model_hash": "bench", "model_path": "", "modality": "image",
            "embed_dim": str(dim), "astroembed_version": "bench", "source_tile": "", "source_rows": str(n),
            "n_skipped": "0"}
    write_part_atomic(table.replace_schema_metadata(meta), workdir / "embeddings" / "healpix=0" / "part-0.parquet")
    print(f"catalogue of {n} x {dim} written in {time.perf_counter() - t0:.0f} s", flush=True)
    t0 = time.perf_counter()
    build_index([workdir / "embeddings"], index_dir, kind=kind, refine=refine, nprobe=nprobe)
    print(f"{kind} index built in {time.perf_counter() - t0:.0f} s", flush=True)
    (workdir / "stamp.json").write_text(json.dumps(stamp))
    return index_dir


def reference(index_dir: Path, ids: np.ndarray, k: int, seconds: float) -> dict:
    """The search alone, one query at a time, in this process."""
    from astroembed.app.explorer import Explorer

    explorer = Explorer(index_dir)
    rng = np.random.default_rng(1)
    explorer.search_object(str(ids[0]), "image", "image", k)  # loads the catalogue vectors
    times = []
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        oid = str(ids[rng.integers(len(ids))])
        t0 = time.perf_counter()
        explorer.search_object(oid, "image", "image", k)
        times.append(time.perf_counter() - t0)
    return {**_summary(np.array(times), len(times), 0, seconds), "load": os.getloadavg()[0]}


def _summary(latencies: np.ndarray, n: int, errors: int, seconds: float) -> dict:
    return {"p50_ms": 1000 * float(np.percentile(latencies, 50)), "p99_ms": 1000 * float(np.percentile(latencies, 99)),
            "rps": n / seconds, "requests": n, "errors": errors}


async def _get(reader, writer, path: str) -> tuple[int, bytes]:
    """One HTTP/1.1 keep-alive GET on an open connection: (status, body)."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode())
    await writer.drain()
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = next(int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length:"))
    return status, await reader.readexactly(length)


async def load(url: str, ids: np.ndarray, clients: int, k: int, seconds: float, warmup: float) -> dict:
    """``clients`` concurrent keep-alive connections sending searches back to back.

    A bare asyncio HTTP/1.1 client rather than httpx: httpx's async client spent ~5 ms of CPU per
    request here, more than the server, so on a 2-core machine the clients measured themselves."""
    host, port = url.removeprefix("http://").split(":")
    latencies: list[float] = []
    errors = 0
    counted = 0
    start = time.perf_counter()
    measure_from, stop = start + warmup, start + warmup + seconds

    async def worker(seed: int):
        nonlocal errors, counted
        rng = np.random.default_rng(seed)
        reader, writer = await asyncio.open_connection(host, int(port))
        try:
            while (now := time.perf_counter()) < stop:
                oid = str(ids[rng.integers(len(ids))])
                t0 = time.perf_counter()
                try:
                    status, body = await _get(reader, writer, f"/api/search?object_id={oid}&k={k}")
                    ok = status == 200 and body.count(b'"rank"') == k
                except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                    ok = False
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, int(port))
                t1 = time.perf_counter()
                if now >= measure_from and t1 <= stop:
                    counted += 1
                    latencies.append(t1 - t0)
                    errors += not ok
        finally:
            writer.close()

    cpu0 = time.process_time()
    await asyncio.gather(*(worker(i) for i in range(clients)))
    total = time.perf_counter() - start
    return {**_summary(np.array(latencies), counted, errors, seconds),
            "client_cpu": (time.process_time() - cpu0) / total}


def server_cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def sequential(url: str, pid: int, ids: np.ndarray, k: int, n: int) -> dict:
    """One client, one request at a time: wall latency and server CPU per request."""
    import httpx

    rng = np.random.default_rng(2)
    times = []
    with httpx.Client(timeout=60) as http:
        cpu0 = server_cpu_seconds(pid)
        for _ in range(n):
            t0 = time.perf_counter()
            response = http.get(f"{url}/api/search", params={"object_id": str(ids[rng.integers(len(ids))]), "k": k})
            times.append(time.perf_counter() - t0)
            assert response.status_code == 200, response.text
        cpu = (server_cpu_seconds(pid) - cpu0) / n
    return {**_summary(np.array(times), n, 0, float(np.sum(times))), "cpu_ms": 1000 * cpu, "load": os.getloadavg()[0]}


def start_server(index_dir: Path, workdir: Path) -> tuple[subprocess.Popen, str]:
    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = open(workdir / "server.log", "w")
    server = subprocess.Popen([sys.executable, "-m", "astroembed", "serve", "--index", str(index_dir),
                               "--host", "127.0.0.1", "--port", str(port), "--cache", str(workdir / "cache")],
                              stdout=log, stderr=subprocess.STDOUT, env=os.environ.copy())
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}; see {workdir / 'server.log'}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return server, url
        except httpx.HTTPError:
            time.sleep(0.5)
    server.terminate()
    sys.exit("the server did not answer /healthz within 600 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--clients", type=int, nargs="+", default=[20, 100])
    parser.add_argument("--seconds", type=float, default=30.0, help="measured time per client count")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--k", type=int, default=10)
    parser.add_argument("--kind", default="ivfpq")
    parser.add_argument("--refine", default="sq8")
    parser.add_argument("--nprobe", type=int, default=5)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/astroembed_bench_serve"))
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    refine = None if args.refine in ("none", "") else args.refine
    index_dir = build(args.workdir, args.n, args.dim, args.kind, refine, args.nprobe)
    import pyarrow.parquet as pq

    ids = np.asarray(pq.read_table(index_dir / "image" / "catalogue.parquet", columns=["object_id"])
                     .column("object_id").to_pylist())
    ref = reference(index_dir, ids, args.k, min(args.seconds, 10.0))
    print(f"reference (search alone, in process, 1 at a time): p50 {ref['p50_ms']:.2f} ms, "
          f"p99 {ref['p99_ms']:.2f} ms, {ref['rps']:.0f} searches/s", flush=True)
    server, url = start_server(index_dir, args.workdir)
    try:
        import httpx

        httpx.get(f"{url}/api/search", params={"object_id": str(ids[0]), "k": args.k}, timeout=600)  # warm
        seq = sequential(url, server.pid, ids, args.k, 500)
        print(f"1 client, sequential: p50 {seq['p50_ms']:.2f} ms, p99 {seq['p99_ms']:.2f} ms; server CPU "
              f"{seq['cpu_ms']:.2f} ms per request (load average {seq['load']:.1f})", flush=True)
        rows = []
        for clients in args.clients:
            r = asyncio.run(load(url, ids, clients, args.k, args.seconds, args.warmup))
            rows.append((clients, r))
            r["load"] = os.getloadavg()[0]
            print(f"{clients} clients (machine load average {r['load']:.1f}): p50 {r['p50_ms']:.1f} ms, "
                  f"p99 {r['p99_ms']:.1f} ms, {r['rps']:.0f} req/s, client CPU {r['client_cpu']:.2f} cores, "
                  f"{r['requests']} requests, {r['errors']} errors", flush=True)
    finally:
        server.terminate()
        server.wait(timeout=30)
    print("\n| index | clients | p50 ms | p99 ms | requests/s | requests | errors | load avg |\n"
          "|---|---|---|---|---|---|---|---|")
    label = f"{args.n:,} x {args.dim} {args.kind}" + (f" + {refine}" if refine else "") + f", nprobe {args.nprobe}"
    print(f"| {label} | in-process, 1 | {ref['p50_ms']:.2f} | {ref['p99_ms']:.2f} | {ref['rps']:.0f} | "
          f"{ref['requests']} | 0 | {ref['load']:.1f} |")
    print(f"| {label} | 1, sequential (server CPU {seq['cpu_ms']:.2f} ms/request) | {seq['p50_ms']:.2f} | "
          f"{seq['p99_ms']:.2f} | {seq['rps']:.0f} | {seq['requests']} | 0 | {seq['load']:.1f} |")
    for clients, r in rows:
        print(f"| {label} | {clients} | {r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {r['rps']:.0f} | {r['requests']} | "
              f"{r['errors']} | {r['load']:.1f} |")


if __name__ == "__main__":
    main()
