"""Speed of the built-in backend on this machine.

    python benchmarks/speed_builtin.py --data ../shared/data [--backends builtin,builtin?tta=0]

Prints (1) face crops per second for all four attributes, batched (preprocessing included,
JPEG decoding excluded), and that as a fraction of the ceiling this CPU's int8 convolutions set (the graphs'
multiply-accumulates per crop, counted, against a large int8 convolution timed here); (2) p50/p90 latency of
analyzing multi_face.jpg (decode + detect + five faces, all attributes) after warm-up; (3) wall time of the CLI
``facescan analyze --crops`` over the FairFace val folder (process start and model loading included); (4) once, for
the default backend: the cold one-photo command ``facescan analyze multi_face.jpg`` (median of 5).
Each for every backend spec of ``--backends`` (default: the shipped default and ``tta=0``, which skips the
mirror-image view). The CPU's model and vector extensions are printed first: int8 convolutions run
several times faster where the CPU has AVX-512 VNNI, so numbers from different machines differ.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from facescan.backends.base import FaceInput, load_backend
from facescan.imageio import load_image
from facescan.pipeline import Analyzer

ALL = ("age", "gender", "race", "emotion")


def crops_per_second(data: Path, spec: str, n: int = 1024, batch: int = 64) -> float:
    files = sorted((data / "fairface" / "val").glob("*.jpg"))[:n]
    chips = [load_image(f).pixels for f in files]
    faces = [FaceInput(chip=c, padding=0.25) for c in chips]
    backend = load_backend(spec)
    backend.predict(faces[:batch], ALL)  # warm-up
    t0 = time.perf_counter()
    for i in range(0, len(faces), batch):
        backend.predict(faces[i : i + batch], ALL)
    return len(faces) / (time.perf_counter() - t0)


def int8_ops_per_second() -> float:
    """Multiply-accumulates per second of one large QLinearConv (128 -> 128 channels, 3x3, 40x40, batch 64):
    the most this CPU does with onnxruntime's int8 kernels, the ceiling for the shipped graphs. It runs with
    onnxruntime's default thread count, as the backend does."""
    import onnxruntime as ort
    from onnx import TensorProto, helper, numpy_helper

    c, side, batch = 128, 40, 64
    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array(v, n) for n, v in [
        ("xs", np.float32(0.02)), ("xz", np.uint8(128)), ("w", rng.integers(-127, 127, (c, c, 3, 3), dtype=np.int8)),
        ("ws", np.full(c, 0.01, np.float32)), ("wz", np.zeros(c, np.int8)), ("ys", np.float32(0.05)),
        ("yz", np.uint8(128))]]
    node = helper.make_node("QLinearConv", ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"], ["y"], pads=[1, 1, 1, 1])
    graph = helper.make_graph([node], "conv", [helper.make_tensor_value_info("x", TensorProto.UINT8,
                                                                             [batch, c, side, side])],
                              [helper.make_tensor_value_info("y", TensorProto.UINT8, None)], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = rng.integers(0, 255, (batch, c, side, side), dtype=np.uint8)
    session.run(None, {"x": x})
    t0, runs = time.perf_counter(), 0
    while time.perf_counter() - t0 < 3:
        session.run(None, {"x": x})
        runs += 1
    return runs * batch * c * c * 9 * side * side / (time.perf_counter() - t0)


def macs_per_crop(spec: str) -> float:
    """Multiply-accumulates one face costs the backend for all four attributes: each graph's convolutions and
    linear layers, counted from the shapes one run gives, times the views (2 with the mirror image)."""
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    backend = load_backend(spec)
    total = 0.0
    for m in backend._models:
        model = onnx.load(str(backend.folder / m.spec.file))
        weights = {i.name: numpy_helper.to_array(i).shape for i in model.graph.initializer}
        producers = {o: n for n in model.graph.node for o in n.output}
        nodes = [n for n in model.graph.node if n.op_type in ("Conv", "Gemm")]
        del model.graph.output[:]
        model.graph.output.extend(onnx.helper.make_empty_tensor_value_info(n.output[0]) for n in nodes)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = np.zeros((1, m.spec.channels, m.spec.crop, m.spec.crop), np.float32)
        for node, out in zip(nodes, session.run(None, {"pixels": x})):
            w = node.input[1]
            while w not in weights:  # through the DequantizeLinear that holds the int8 weights
                w = producers[w].input[0]
            shape = weights[w]
            total += out.size * int(np.prod(shape[1:]))  # Conv: Cout*H*W x Cin/g*kh*kw; Gemm: N x K
    return total * (2 if backend.tta else 1)


def photo_latency(photo: Path, spec: str, runs: int = 30) -> tuple[float, float, int]:
    analyzer = Analyzer(backend=spec, attributes=ALL)
    for _ in range(3):
        result = analyzer.analyze(photo)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = analyzer.analyze(photo)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), float(np.percentile(times, 90)), len(result.faces)


def cli_crops_wall(data: Path, spec: str) -> tuple[float, str]:
    cmd = [sys.executable, "-m", "facescan.cli", "analyze", "--crops", "-q", "-a", ",".join(ALL), "--workers", "2",
           "-b", spec, str(data / "fairface" / "val")]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "COLUMNS": "120"})
    wall = time.perf_counter() - t0
    return wall, proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else f"exit {proc.returncode}"


def cold_command(photo: Path, runs: int = 5) -> float:
    """Median wall time of ``facescan analyze PHOTO`` in a new process (imports and model loading included)."""
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "facescan.cli", "analyze", "-q", str(photo)], capture_output=True,
                       check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data")
    ap.add_argument("--backends", default="builtin,builtin?tta=0", help="comma-separated backend specs")
    args = ap.parse_args()
    data = Path(args.data)
    print(f"cpu: {os.cpu_count()} cores, {cpu_description()}")
    ceiling = int8_ops_per_second()
    print(f"int8 convolution ceiling (onnxruntime, default threads): {ceiling / 1e9:.0f} G multiply-accumulates/s")
    print(f"cold: facescan analyze multi_face.jpg: {cold_command(data / 'photos' / 'multi_face.jpg'):.2f} s "
          "(median of 5)")
    for spec in args.backends.split(","):
        print(f"\n{spec}")
        rate, macs = crops_per_second(data, spec), macs_per_crop(spec)
        print(f"  batched crops/s (all 4 attributes, batch 64): {rate:.0f}; {macs / 1e6:.0f} M multiply-accumulates "
              f"per crop, ceiling {ceiling / macs:.0f} crops/s, reached {rate * macs / ceiling:.0%}")
        p50, p90, n = photo_latency(data / "photos" / "multi_face.jpg", spec)
        print(f"  analyze multi_face.jpg ({n} faces, all attributes): p50 {p50 * 1000:.1f} ms, p90 {p90 * 1000:.1f} ms")
        wall, summary = cli_crops_wall(data, spec)
        print(f"  facescan analyze --crops fairface/val: {wall:.1f} s wall ({summary})")


def cpu_description() -> str:
    """The CPU's model name and its AVX-512/VNNI/AMX extensions (Linux; "unknown CPU" elsewhere)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "unknown CPU"
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "?")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    wide = sorted(f for f in flags if f.startswith(("avx512", "amx")) or "vnni" in f) or \
        [f for f in ("avx2",) if f in flags]
    return f"{model} ({' '.join(wide) or 'no AVX2'})"


if __name__ == "__main__":
    main()
