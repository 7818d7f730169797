"""Load benchmark of `facescan serve` on 127.0.0.1: dynamic batching against batch-size-1 serving.

    python benchmarks/serve_load.py --data ../shared/data [--clients 32] [--seconds 30]

For each setting (``--max-batch 1``, then ``--max-batch 16``) it starts a server process, waits
until /healthz answers, and runs ``--clients`` concurrent clients for ``--seconds`` seconds, each
posting the shared photos (every image in photos/, in turn) to /v1/analyze. It prints errors,
p50 / p99 latency and throughput per setting, and the throughput ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(port: int, max_batch: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "facescan.cli", "serve", "--port", str(port), "--max-batch", str(max_batch),
           "--max-queue", "256", "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ})
    return wait_healthy(proc, port, "the server did not start")


def wait_healthy(proc: subprocess.Popen, port: int, failure: str) -> subprocess.Popen:
    """Wait (up to 120 s) until the server on ``port`` answers /healthz; kill it and raise ``failure`` if not."""
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc
        except httpx.HTTPError:
            time.sleep(0.3)
    proc.kill()
    raise RuntimeError(failure)


async def load(url: str, photos: list[tuple[str, bytes]], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    faces = 0
    stop = time.perf_counter() + seconds

    async def client(k: int, http: httpx.AsyncClient) -> None:
        nonlocal faces
        i = k
        while time.perf_counter() < stop:
            name, data = photos[i % len(photos)]
            i += 1
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/analyze", files={"image": (name, data)})
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
                    faces += len(r.json()["faces"])
                else:
                    errors[str(r.status_code)] = errors.get(str(r.status_code), 0) + 1
            except httpx.HTTPError as e:
                errors[type(e).__name__] = errors.get(type(e).__name__, 0) + 1

    started = time.perf_counter()
    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients)) as http:
        await asyncio.gather(*(client(k, http) for k in range(clients)))
    wall = time.perf_counter() - started
    lat = np.array(latencies) if latencies else np.array([np.nan])
    return {"requests": len(latencies), "errors": errors, "wall": wall, "throughput": len(latencies) / wall,
            "p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)), "faces": faces}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=30)
    ap.add_argument("--batch", type=int, default=16, help="--max-batch of the batching server")
    args = ap.parse_args()
    photos = [(p.name, p.read_bytes()) for p in sorted(Path(args.data, "photos").iterdir())
              if p.suffix.lower() in IMAGE_SUFFIXES]
    print(f"{len(photos)} photos: {', '.join(n for n, _ in photos)}; {args.clients} clients × {args.seconds:g} s; "
          f"{os.cpu_count()} CPU cores")
    results = {}
    for max_batch in (1, args.batch):
        port = free_port()
        proc = start_server(port, max_batch)
        try:
            asyncio.run(load(f"http://127.0.0.1:{port}", photos, args.clients, 3))  # warm-up
            r = asyncio.run(load(f"http://127.0.0.1:{port}", photos, args.clients, args.seconds))
        finally:
            proc.terminate()
            proc.wait(timeout=30)
        results[max_batch] = r
        label = "batch-size-1 serving" if max_batch == 1 else f"dynamic batching (max {max_batch})"
        print(f"{label:<30} {r['requests']} ok, errors {r['errors'] or 0}, p50 {1000 * r['p50']:.0f} ms, "
              f"p99 {1000 * r['p99']:.0f} ms, {r['throughput']:.1f} req/s ({r['faces'] / r['wall']:.1f} faces/s)")
    ratio = results[args.batch]["throughput"] / results[1]["throughput"]
    print(f"throughput with dynamic batching / batch-size-1: {ratio:.2f}x")


if __name__ == "__main__":
    main()
