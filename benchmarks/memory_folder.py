"""Peak memory of ``facescan analyze FOLDER`` against the number of photos in the folder.

    python benchmarks/memory_folder.py --data ../shared/data [--counts 10,1000]

Each folder holds links to the real photos of ``../shared/data/photos`` (a crowd of five, a portrait, a photo
with no face, a 2560 x 1912 grayscale scan, an RGBA PNG) in turn, so every size of folder has the same mix.
Each run is a new process writing JSON lines (the format that streams; ``--json`` holds one array until the
end by design); its peak resident memory is what the kernel reports for it (``ru_maxrss`` of the child).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHOTOS = ("multi_face.jpg", "single_face.jpg", "no_face.jpg", "BWPictureHuman.jpg", "Image_with_alpha.png")


def peak_of_run(folder: Path, out: Path) -> tuple[float, float]:
    """Peak RSS (MiB) and wall seconds of one ``facescan analyze`` over ``folder`` in a new process."""
    cmd = [sys.executable, "-c",
           "import resource, sys\n"
           "from facescan.cli import main\n"
           "try:\n    main()\nexcept SystemExit as e:\n    code = e.code\nelse:\n    code = 0\n"
           "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, file=sys.stderr)\nsys.exit(code)",
           "analyze", str(folder), "-q", "--jsonl", str(out)]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode:
        raise SystemExit(f"facescan analyze {folder} failed: {done.stderr[-2000:]}")
    return int(done.stderr.strip().splitlines()[-1]) / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default="../shared/data", type=Path)
    ap.add_argument("--counts", default="10,1000", help="comma-separated folder sizes")
    args = ap.parse_args()
    photos = [args.data / "photos" / name for name in PHOTOS]
    missing = [str(p) for p in photos if not p.exists()]
    if missing:
        raise SystemExit(f"missing photos: {', '.join(missing)}")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for count in (int(c) for c in args.counts.split(",")):
            folder = Path(tmp) / f"photos_{count}"
            folder.mkdir()
            for i in range(count):
                photo = photos[i % len(photos)]
                (folder / f"{i:06d}{photo.suffix}").symlink_to(photo.resolve())
            peak, wall = peak_of_run(folder, Path(tmp) / f"out_{count}.jsonl")
            lines = sum(1 for _ in (Path(tmp) / f"out_{count}.jsonl").open())
            rows.append((count, peak, wall, lines))
    first = rows[0][1]
    print("| photos | results written | peak RSS (MiB) | against the first | wall (s) |")
    print("|---:|---:|---:|---:|---:|")
    for count, peak, wall, lines in rows:
        print(f"| {count:,} | {lines:,} | {peak:.0f} | {peak / first:.2f}x | {wall:.1f} |")


if __name__ == "__main__":
    main()
