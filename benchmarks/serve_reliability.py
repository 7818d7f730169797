"""Reliability benchmark of `facescan serve` on 127.0.0.1: bad inputs, oversized and slow uploads (issue 13).

    python benchmarks/serve_reliability.py [--photo ../shared/data/photos/single_face.jpg] [--seconds 20]

It starts ``facescan serve`` (uvicorn, one process, the builtin backend) on a free port of
127.0.0.1 and measures:

(a) ``--clients`` good clients posting the photo in a loop, plus one client sending a corrupt file
    every 0.5 s (a truncated JPEG, and an AVIF whose header reads but whose pixels do not decode,
    where Pillow can write AVIF), for ``--seconds`` seconds: good requests sent / failed, bad ones
    and their statuses. Twice: with the stock pipeline (whose loader turns a decoder's exception into
    that image's error), then with a server whose analysis raises for the whole batch when a decoder
    raises, as the loader and pipeline did when issue 13 was filed: then only the service's per-item
    isolation (the batcher's) keeps the bad file's batch-mates' results;
(b) a chunked upload of 100 MB with no Content-Length (multipart with one big file, and JSON; and
    one claiming Content-Length: 10 while chunked): the status; the bytes the server process wrote
    to storage (``write_bytes``) and through write() at all (``wchar``) during it, from its
    ``/proc/<pid>/io``; its memory (VmRSS, VmHWM from ``/proc/<pid>/status``); and how much of the
    body the server had taken from its socket when last seen (``ss -ti``: bytes_received − Recv-Q);
(c) a body sent at 1 byte a second, and headers sent at 1 byte a second: when the server cuts
    each off, and with what.

All traffic goes to 127.0.0.1 only; every loop is bounded in count and in time. The photo is read
at run time and never copied anywhere.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
import numpy as np

from serve_load import free_port, wait_healthy  # benchmarks/ is on sys.path when a script in it runs

DEFAULT_PHOTO = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "photos" / "single_face.jpg"
MB = 1024 * 1024


# `facescan serve` whose analysis raises for a whole batch when one of its images' decoder raises: the
# loader and pipeline as they were when issue 13 was filed (both now make it that image's error)
RAISING_DECODER = """
import sys
import facescan.imageio, facescan.pipeline
real = facescan.pipeline.Analyzer.iter_analyzed
def iter_analyzed(self, sources, *args, **kwargs):
    sources = list(sources)
    for source in sources:
        if isinstance(source, bytes) and source[4:12] == b"ftypavif":
            try:
                facescan.imageio.load_image(source)
            except facescan.imageio.ImageLoadError as e:
                if "RuntimeError" in str(e):
                    raise RuntimeError(str(e)) from None
    return real(self, sources, *args, **kwargs)
facescan.pipeline.Analyzer.iter_analyzed = iter_analyzed
from facescan.cli import main
sys.argv[0] = "facescan"
main()
"""


def start_server(port: int, log: Path, raising_decoder: bool = False) -> subprocess.Popen:
    entry = ["-c", RAISING_DECODER] if raising_decoder else ["-m", "facescan.cli"]
    cmd = [sys.executable, *entry, "serve", "--port", str(port), "--max-queue", "256", "--timeout", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=log.open("wb"), env={**os.environ})
    return wait_healthy(proc, port, f"the server did not start; see {log}")


# ---------------------------------------------------------------- bad files
def truncated_jpeg(photo: bytes) -> bytes:
    return photo[: len(photo) // 2]


def corrupt_avif(max_tries: int = 5000) -> bytes | None:
    """An AVIF whose header Pillow reads but whose pixels fail to decode with a non-OSError (a seeded search)."""
    from PIL import Image, features

    if not features.check("avif"):
        return None
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(buf, "AVIF")
    good = buf.getvalue()
    rng = np.random.default_rng(2)
    for _ in range(max_tries):
        data = bytearray(good)
        for _ in range(2):
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
        try:
            img = Image.open(io.BytesIO(bytes(data)))  # the header must read: the service queues the file
        except Exception:  # noqa: BLE001 - refused at the header check
            continue
        try:
            img.load()
        except (OSError, SyntaxError, ValueError):
            continue  # refused cleanly by the loader
        except Exception:  # noqa: BLE001 - what the loader did not expect while decoding: the file we want
            return bytes(data)
    return None


# ---------------------------------------------------------------- (a) good clients and a bad one
async def mixed_load(url: str, photo: bytes, bad: dict[str, bytes], clients: int, seconds: float) -> dict:
    stop = time.perf_counter() + seconds
    good, bad_codes, latencies, details = Counter(), Counter(), [], {}

    async def good_client(http: httpx.AsyncClient) -> None:
        for _ in range(100_000):  # bounded in count as well as in time
            if time.perf_counter() >= stop:
                return
            t0 = time.perf_counter()
            try:
                r = await http.post(f"{url}/v1/analyze", files={"image": ("photo.jpg", photo, "image/jpeg")})
                good[r.status_code] += 1
                if r.status_code == 200:
                    latencies.append(time.perf_counter() - t0)
            except httpx.HTTPError as e:
                good[type(e).__name__] += 1

    async def one_bad(http: httpx.AsyncClient, name: str, data: bytes) -> None:
        try:
            r = await http.post(f"{url}/v1/analyze", files={"image": (name, data, "application/octet-stream")})
            bad_codes[(name, r.status_code)] += 1
            details.setdefault((name, r.status_code), r.text[:160])
        except httpx.HTTPError as e:
            bad_codes[(name, type(e).__name__)] += 1

    async def bad_client(http: httpx.AsyncClient) -> None:
        kinds, sent = list(bad.items()), []
        for i in range(int(seconds / 0.5) + 1):  # one every 0.5 s, whether or not the last one was answered
            if time.perf_counter() >= stop:
                break
            sent.append(asyncio.create_task(one_bad(http, *kinds[i % len(kinds)])))
            await asyncio.sleep(0.5)
        await asyncio.gather(*sent)

    async with httpx.AsyncClient(timeout=120, limits=httpx.Limits(max_connections=clients + 8)) as http:
        await asyncio.gather(bad_client(http), *(good_client(http) for _ in range(clients)))
    lat = np.array(latencies or [np.nan])
    return {"good": good, "bad": bad_codes, "details": details, "p50": float(np.percentile(lat, 50)),
            "p99": float(np.percentile(lat, 99))}


def batch_summary(url: str) -> str:
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values = {}
    for line in text.splitlines():
        if line.startswith(("facescan_batch_size_count", "facescan_batch_size_sum")):
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    count, total = values.get("facescan_batch_size_count", 0), values.get("facescan_batch_size_sum", 0)
    return f"{int(count)} model batches, {total / max(count, 1):.1f} images per batch on average"


# ---------------------------------------------------------------- (b), (c): raw sockets
def proc_stats(pid: int) -> dict[str, int]:
    stats = {}
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        key, value = line.split(":")
        stats[key] = int(value)
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(("VmRSS", "VmHWM")):
            key, value = line.split(":")
            stats[key] = int(value.split()[0]) * 1024
    return stats


class SocketWatch:
    """Samples, every 20 ms, how many bytes the server side of one connection took from its socket."""

    def __init__(self, port: int, client_port: int):
        self.filter = f"( sport = :{port} and dport = :{client_port} )"
        self.taken, self._stop = None, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        for _ in range(3000):  # at most a minute
            if self._stop.is_set():
                return
            try:
                out = subprocess.run(["ss", "-tinH", "state", "established", self.filter], capture_output=True,
                                     text=True, timeout=5).stdout
            except (OSError, subprocess.SubprocessError):
                return
            received = re.search(r"bytes_received:(\d+)", out)
            if received and out.split():
                self.taken = int(received.group(1)) - int(out.split()[0])  # received minus still queued
            time.sleep(0.02)

    def stop(self) -> int | None:
        self._stop.set()
        self._thread.join(timeout=10)
        return self.taken


def raw_exchange(port: int, head: bytes, chunks, delay: float = 0.0, limit_s: float = 60.0, watch: bool = False):
    """Send ``head``, then chunks until the server answers or closes (at most ``limit_s``); returns
    (status or None, seconds from the head to the answer's first byte and to the close, body bytes
    sent, the answer's first line, the bytes the server had taken from its socket when last seen)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit_s)
    watcher = SocketWatch(port, sock.getsockname()[1]) if watch and shutil.which("ss") else None
    sent, answer, started, answered = 0, b"", time.monotonic(), None
    try:
        sock.sendall(head)
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0] or time.monotonic() - started > limit_s:
                break
            try:
                sock.sendall(chunk)
            except OSError:
                break
            sent += len(chunk)
            if delay:
                select.select([sock], [], [], delay)  # a pause that ends as soon as the server answers
        sock.settimeout(max(0.5, limit_s - (time.monotonic() - started)))
        while len(answer) < 1 * MB:
            try:
                data = sock.recv(65536)
            except (ConnectionResetError, TimeoutError):
                break
            if not data:
                break
            answered = answered or time.monotonic() - started
            answer += data
    finally:
        closed = time.monotonic() - started
        taken = watcher.stop() if watcher else None
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else None
    return status, (answered, closed), sent, answer.split(b"\r\n", 1)[0].decode("latin-1"), taken


def timing(times: tuple[float | None, float], limit_s: float) -> str:
    answered, closed = times
    first = f"answered after {answered:.2f} s" if answered is not None else "no answer"
    end = f"still open when the client gave up at {closed:.0f} s" if closed >= limit_s - 0.5 else \
        f"connection closed by the server after {closed:.2f} s"
    return f"{first}, {end}"


def chunked(total: int, prefix: bytes = b"", size: int = 64 * 1024):
    """A chunked body: ``prefix``, then zeros up to ``total`` bytes, in ``size``-byte chunks."""
    yield b"%x\r\n" % len(prefix) + prefix + b"\r\n" if prefix else b""
    block = b"%x\r\n" % size + b"\0" * size + b"\r\n"
    for _ in range(total // size):
        yield block
    yield b"0\r\n\r\n"


MULTIPART_FILE = (b'--xyz\r\nContent-Disposition: form-data; name="image"; filename="big.jpg"\r\n'
                  b"Content-Type: image/jpeg\r\n\r\n\xff\xd8\xff\xe0")  # a file part that never ends


def big_upload(port: int, pid: int, label: str, head: bytes, total: int, prefix: bytes = b"") -> None:
    before = proc_stats(pid)
    status, times, sent, line, taken = raw_exchange(port, head, chunked(total, prefix), watch=True)
    time.sleep(0.5)  # let the server finish with the connection
    after = proc_stats(pid)
    seen = "the connection ended before the first 20 ms ss sample"
    if taken is not None:
        seen = f"the server had taken {taken / MB:.1f} MB from its socket at the last 20 ms sample (ss -ti)"
    print(f"  {label}: {line!r}; {timing(times, 60)}")
    print(f"    client pushed {sent / MB:.1f} MB of {total / MB:.0f} MB into its socket (kernel buffers included); "
          f"{seen}")
    print(f"    server process during it: {after['write_bytes'] - before['write_bytes']:,} bytes written to storage "
          f"(write_bytes), {after['wchar'] - before['wchar']:,} bytes through write() (wchar: files, pipes, "
          f"ttys); VmRSS {before['VmRSS'] / MB:.0f} → {after['VmRSS'] / MB:.0f} MB, peak so far "
          f"{after['VmHWM'] / MB:.0f} MB")


def uploads(port: int, pid: int) -> None:
    print("(b) oversized uploads (the limit is 10 MB), measured with /proc/<pid>/io and /proc/<pid>/status")
    ctype = b"Content-Type: multipart/form-data; boundary=xyz\r\n"
    head = b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nTransfer-Encoding: chunked\r\n"
    big_upload(port, pid, "chunked multipart, one 100 MB file, no Content-Length", head + ctype + b"\r\n",
               100 * MB, MULTIPART_FILE)
    json_head = head + b"Content-Type: application/json\r\n\r\n"
    big_upload(port, pid, "chunked JSON, 140 MB, no Content-Length", json_head, 140 * MB, b'{"image_base64": "')
    lying = head + b"Content-Length: 10\r\n" + ctype + b"\r\n"
    big_upload(port, pid, "Content-Length: 10 and chunked, 105 MB", lying, 105 * MB, MULTIPART_FILE)


def slow_clients(port: int) -> None:
    print("(c) slow clients, 1 byte a second (deadlines: --body-timeout 10 s, --header-timeout 10 s)")
    head = (b"POST /v1/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Content-Length: 100\r\n\r\n")
    status, times, sent, line, _ = raw_exchange(port, head, (b"{" for _ in range(100)), delay=1.0, limit_s=40)
    print(f"  body at 1 B/s: {line or '(none)'!r}; {timing(times, 40)} ({sent} body bytes sent)")
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 100 + b"\r\n\r\n"
    status, times, sent, line, _ = raw_exchange(port, b"", (request[i : i + 1] for i in range(len(request))),
                                                delay=1.0, limit_s=40)
    print(f"  headers at 1 B/s: {line or '(none)'!r}; {timing(times, 40)} ({sent} header bytes sent)")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def mixed(label: str, log: Path, photo: bytes, bad: dict[str, bytes], args, raising_decoder: bool) -> None:
    port = free_port()
    proc = start_server(port, log, raising_decoder)
    url = f"http://127.0.0.1:{port}"
    try:
        print(f"(a) {label}: {args.clients} good clients + 1 bad client every 0.5 s, {args.seconds:g} s "
              f"(server pid {proc.pid})")
        out = asyncio.run(mixed_load(url, photo, bad, args.clients, args.seconds))
        sent, ok = sum(out["good"].values()), out["good"].get(200, 0)
        print(f"  good requests sent {sent}, failed {sent - ok} {dict(out['good'])}; p50 {out['p50']:.2f} s, "
              f"p99 {out['p99']:.2f} s")
        for (name, code), n in sorted(out["bad"].items(), key=str):
            print(f"  bad requests {name}: {n} × {code}  {out['details'].get((name, code), '')}")
        print(f"  {batch_summary(url)}")
    finally:
        stop(proc)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--clients", type=int, default=31)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    photo = args.photo.read_bytes()
    bad = {"truncated.jpg": truncated_jpeg(photo)}
    avif = corrupt_avif()
    if avif is not None:
        bad["corrupt.avif"] = avif
    else:
        print("note: Pillow cannot write AVIF here (or no corrupt AVIF was found): the bad client sends JPEGs only")
    with tempfile.TemporaryDirectory() as tmp:
        log = Path(tmp) / "server.log"
        mixed("stock loader", log, photo, bad, args, raising_decoder=False)
        mixed("a batch that raises on a decoder's RuntimeError (the pipeline when the issue was filed)", log,
              photo, bad, args, raising_decoder=True)
        port = free_port()
        proc = start_server(port, log)
        try:
            print(f"server pid {proc.pid} on http://127.0.0.1:{port}")
            uploads(port, proc.pid)
            slow_clients(port)
        finally:
            stop(proc)


if __name__ == "__main__":
    main()
