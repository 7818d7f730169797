"""Speed and memory of video analysis (built-in backend, video detector) on this machine.

    python benchmarks/video_speed.py --data ../shared/data

Generates (in a temporary folder) a 30-s 1280×720 25-fps clip of three FairFace faces moving over a
background, a 10-s one, and a 10-minute one made of the 10-s clip looped (packets remuxed, not re-encoded).
Each measurement runs in its own process, models loaded and warmed up before the clock starts (a 1-s clip
analyzed first: the tracker's imports alone take 1.3 s here); one more row times the whole cold command,
``facescan analyze clip.mp4 --fps 5``, start-up included:

* × real time at 5 fps and at every frame (targets: ≥ 5× and ≥ 1×), with where the 5-fps time
  goes: decoding alone, then decoding + detection + tracking (a stub backend), then everything
  with the defaults (two frames detected at a time, age and gender once a second, the emotion on
  every analyzed frame), then with one worker, and with age and gender on every analyzed frame.
  Wall-clock numbers depend on what else runs on the machine: the load average is printed, and
  "x real/CPU s" is the clip's duration over the CPU time the run used (user + system, all threads);
* peak RSS of the 10-minute vs the 10-second clip at 5 fps (target: within 1.5×).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests.clips: the clip generator the tests use

FACES = (7, 25, 34)


def make_clip(path: Path, data: Path, seconds: float, fps: int = 25, size=(1280, 720)) -> Path:
    """Three faces wandering on Lissajous-like paths that never leave the picture."""
    from tests.clips import Person, load_faces, scene_clip

    faces = load_faces(data / "fairface" / "val", FACES, 200)
    width, height = size

    def wander(k: int):
        def at(t: float):
            x = (width - 200) * (0.5 + 0.45 * math.sin(0.31 * t * (k + 1) + 2 * k))
            y = (height - 200) * (0.5 + 0.4 * math.sin(0.23 * t * (k + 2) + k))
            return x, y

        return at

    scene_clip(path, [Person(face, wander(k)) for k, face in enumerate(faces)], seconds, fps=fps, size=size)
    return path


def loop_clip(src: Path, dst: Path, times: int) -> Path:
    """``src`` played ``times`` times in a row, by remuxing its packets with shifted timestamps (no re-encoding)."""
    import av

    with av.open(str(dst), "w") as out:
        out_stream = None
        offset = 0
        for _ in range(times):
            with av.open(str(src)) as inp:
                in_stream = inp.streams.video[0]
                out_stream = out_stream or out.add_stream_from_template(in_stream)
                end = offset
                for p in inp.demux(in_stream):
                    if p.dts is None:
                        continue
                    p.pts, p.dts = p.pts + offset, p.dts + offset
                    end = max(end, p.pts + (p.duration or 0))
                    p.stream = out_stream
                    out.mux(p)
                offset = end
    return dst


def child(spec: dict) -> dict:
    """One measurement in this process: prints {"seconds", "frames", "video_s", "rss_mb", ...}."""
    import numpy as np

    from facescan.pipeline import Analyzer
    from facescan.video import VideoDetector, analyze_video, iter_frames

    sampling = {k: spec[k] for k in ("fps", "every", "workers") if spec.get(k)}
    if "person_fps" in spec:
        sampling["person_fps"] = spec["person_fps"]
    if spec["stage"] == "decode":
        cpu0, t0 = _cpu(), time.perf_counter()
        frames = sum(1 for _ in iter_frames(spec["clip"], **sampling))
        seconds, tracks = time.perf_counter() - t0, 0
    else:
        from tests.clips import StubBackend

        backend = StubBackend() if spec["stage"] == "detect" else "builtin"
        analyzer = Analyzer(backend=backend, detector=VideoDetector())
        warm = analyzer.prepare(np.full((720, 1280, 3), 100, np.uint8))
        analyzer.predict([warm])
        analyze_video(spec["warm_clip"], analyzer, **sampling)  # imports, per-thread graphs, batch shapes
        cpu0, t0 = _cpu(), time.perf_counter()
        result = analyze_video(spec["clip"], analyzer, keep_frames=spec.get("keep_frames", True), **sampling)
        seconds, frames, tracks = time.perf_counter() - t0, result.frames_analyzed, len(result.tracks)
        assert result.error is None, result.error
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"seconds": seconds, "cpu": _cpu() - cpu0, "frames": frames, "tracks": tracks, "rss_mb": rss_mb}


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def run_child(spec: dict) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", json.dumps(spec)], capture_output=True, text=True)
    if proc.returncode:
        raise SystemExit(f"child {spec} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def cold_command(clip: Path) -> float:
    """Seconds of ``facescan analyze CLIP --fps 5`` as a user runs it: interpreter, imports, models, the clip."""
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "facescan.cli", "analyze", str(clip), "--fps", "5", "-q", "--json",
                        str(Path(tmp) / "out.json")], check=True, capture_output=True)
        return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--long-minutes", type=float, default=10.0)
    parser.add_argument("--lean", action="store_true", help="also measure the long clip with keep_frames=False")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    with tempfile.TemporaryDirectory(prefix="facescan-video-") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        clip = make_clip(tmp / "clip30.mp4", args.data, 30)
        short = make_clip(tmp / "clip10s.mp4", args.data, 10)
        long = loop_clip(short, tmp / "clip10min.mp4", round(args.long_minutes * 6))
        warm = make_clip(tmp / "clip1s.mp4", args.data, 1)
        print(f"clips generated in {time.perf_counter() - t0:.0f} s\n")
        speed = [("5 fps: decode only", {"stage": "decode", "fps": 5}),
                 ("5 fps: decode + detect + track", {"stage": "detect", "fps": 5}),
                 ("5 fps: everything", {"stage": "full", "fps": 5}),
                 ("5 fps: everything, 1 worker", {"stage": "full", "fps": 5, "workers": 1}),
                 ("5 fps: age/gender every frame", {"stage": "full", "fps": 5, "person_fps": None}),
                 ("every frame: everything", {"stage": "full"}),
                 ("every frame: age/gender every frame", {"stage": "full", "person_fps": None})]
        print(f"load average {_load()}; {os.cpu_count()} CPUs\n")
        print(f"{'30-s 1280x720 25-fps clip, 3 faces':<36} {'frames':>7} {'wall s':>7} {'frames/s':>9} {'x real':>7}"
              f" {'CPU s':>7} {'x real/CPU s':>13}")
        measured = {}
        for label, spec in speed:
            r = run_child({**spec, "clip": str(clip), "warm_clip": str(warm)})
            measured[label] = 30 / r["seconds"]
            print(f"{label:<36} {r['frames']:>7} {r['seconds']:>7.1f} {r['frames'] / r['seconds']:>9.1f} "
                  f"{30 / r['seconds']:>6.2f}x {r['cpu']:>7.1f} {30 / r['cpu']:>12.2f}x")
        cold = cold_command(clip)
        print(f"{'cold: facescan analyze --fps 5':<36} {150:>7} {cold:>7.1f} {150 / cold:>9.1f} {30 / cold:>6.2f}x"
              f" {'':>7} {'(whole command)':>13}")
        print(f"\n{'peak RSS at 5 fps':<36} {'frames':>7} {'seconds':>8} {'tracks':>7} {'RSS MB':>8}")
        rss = {}
        runs = [("10-s clip", short, True), (f"{args.long_minutes:g}-min clip", long, True)]
        if args.lean:
            runs.append((f"{args.long_minutes:g}-min clip, keep_frames=False", long, False))
        for label, path, keep in runs:
            r = run_child({"stage": "full", "fps": 5, "clip": str(path), "keep_frames": keep, "warm_clip": str(warm)})
            rss[label] = r["rss_mb"]
            print(f"{label:<36} {r['frames']:>7} {r['seconds']:>8.1f} {r['tracks']:>7} {r['rss_mb']:>8.0f}")
        ratio = rss[f"{args.long_minutes:g}-min clip"] / rss["10-s clip"]
        print(f"\nload average {_load()}\ntargets:")
        for name, value, goal in (("5 fps x real time", measured["5 fps: everything"], "≥ 5"),
                                  ("every frame x real time", measured["every frame: everything"], "≥ 1"),
                                  ("peak RSS long/short", ratio, "≤ 1.5")):
            ok = value >= float(goal[2:]) if goal[0] == "≥" else value <= float(goal[2:])
            print(f"  {name:<26} {value:6.2f}  (target {goal}) {'met' if ok else 'MISSED'}")


if __name__ == "__main__":
    main()
