"""Fuzz the loader, the Python API and the CLI with byte-mutated images (issue 13), at scale.

    python benchmarks/fuzz_inputs.py [--mutants 4000] [--seed 13] [--batch 500] [--folder-size 400]

Small valid images in every format this Pillow writes (tests/badinputs.py: ``fuzz_seeds``) are mutated
(bit flips, truncation, chunk duplication, header bytes, length fields, zeroed spans, inserted bytes)
and sent through (1) ``load_image`` one by one, timed; (2) the Python API in batches, alternating
``facescan.analyze([...])`` on paths and ``Analyzer.analyze_many`` on bytes; (3) ``facescan analyze
FOLDER --crops --csv`` in a subprocess per folder of mutants. It prints the mutants per format, the
exceptions that escaped, the batches aborted and the inputs left without a result (all must be 0), the
error messages grouped by kind, and the slowest decodes. libtiff/libjpeg print warnings straight to
the process's stderr; they are silenced while the loader and the API run.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the fuzzer lives with the tests' corpus

from tests.badinputs import Mutant, fuzz_seeds, mutants  # noqa: E402

import facescan  # noqa: E402
from facescan.imageio import ImageLoadError, load_image  # noqa: E402
from facescan.pipeline import Analyzer  # noqa: E402

_stderr = os.fdopen(os.dup(2), "w")  # the report's stream: stays on the terminal while fd 2 is muted
console = Console(file=_stderr, highlight=False, width=None if _stderr.isatty() else 120)


@dataclass
class Tally:
    escaped: list[str] = field(default_factory=list)  # exceptions other than a result with ``error``
    aborted: list[str] = field(default_factory=list)  # API calls or CLI runs that did not complete
    missing: list[str] = field(default_factory=list)  # inputs without a result
    mismatched: list[str] = field(default_factory=list)  # API/CLI outcome differs from load_image's
    loaded: dict[int, str | None] = field(default_factory=dict)  # mutant index → None (loads) or its problem
    decode_s: list[tuple[float, str]] = field(default_factory=list)


@contextlib.contextmanager
def muted_stderr():
    """Send fd 2 (C libraries' warnings) to /dev/null for the duration."""
    sys.stderr.flush()
    saved, null = os.dup(2), os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 2)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(null)


def kind_of(problem: str) -> str:
    """An error message without its variable parts, to group messages by kind."""
    problem = re.sub(r"b?'[^']*'|\"[^\"]*\"", "'…'", problem)
    problem = re.sub(r"\d+", "N", problem)
    return problem if len(problem) <= 100 else problem[:99] + "…"


def decode_all(items: list[Mutant], tally: Tally, progress: Progress) -> None:
    task = progress.add_task("load_image", total=len(items))
    for m in items:
        started = time.perf_counter()
        try:
            load_image(m.data, name=m.filename)
            tally.loaded[m.index] = None
        except ImageLoadError as e:
            tally.loaded[m.index] = e.problem
        except Exception as e:  # noqa: BLE001 - counted: must be none
            tally.escaped.append(f"load_image {m.filename}: {type(e).__name__}: {e}")
        tally.decode_s.append((time.perf_counter() - started, m.filename))
        progress.advance(task)


def _check(batch: list[Mutant], sources: list, results: list, tally: Tally, via: str) -> None:
    if len(results) != len(sources):
        tally.missing.append(f"{via}: {len(sources) - len(results)} of {len(sources)} inputs without a result")
    for m, result in zip(batch, results):
        expected = tally.loaded.get(m.index, "escaped")
        if (expected is None) != result.ok or (expected and expected not in (result.error or "")):
            tally.mismatched.append(f"{via} {m.filename}: load_image said {expected!r}, got {result.error!r}")


def api_all(items: list[Mutant], folder: Path, batch_size: int, tally: Tally, progress: Progress) -> None:
    task = progress.add_task("Python API", total=len(items))
    analyzer = Analyzer(attributes="gender", crops=True)
    for n, start in enumerate(range(0, len(items), batch_size)):
        batch = items[start:start + batch_size]
        by_path = n % 2 == 0
        via = f"facescan.analyze batch {n}" if by_path else f"Analyzer.analyze_many batch {n}"
        sources = [folder / m.filename for m in batch] if by_path else [m.data for m in batch]
        try:
            if by_path:
                results = facescan.analyze(sources, attributes="gender", crops=True)
            else:
                results = list(analyzer.analyze_many(sources, on_result=lambda _: progress.advance(task)))
        except Exception as e:  # noqa: BLE001 - counted: must be none
            tally.aborted.append(f"{via}: {type(e).__name__}: {e}")
            tally.escaped.append(f"{via}: {type(e).__name__}: {e}")
            continue
        if by_path:
            progress.advance(task, len(batch))
        _check(batch, sources, results, tally, via)


def cli_all(items: list[Mutant], folder: Path, folder_size: int, tally: Tally, progress: Progress) -> None:
    task = progress.add_task("facescan analyze FOLDER", total=len(items))
    for n, start in enumerate(range(0, len(items), folder_size)):
        batch = items[start:start + folder_size]
        sub = folder / f"cli_{n:03d}"
        sub.mkdir()
        for m in batch:
            os.link(folder / m.filename, sub / m.filename)
        out = folder / f"cli_{n:03d}.csv"
        cmd = [sys.executable, "-m", "facescan.cli", "analyze", str(sub), "--crops", "-a", "gender", "-q",
               "--csv", str(out)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
        except subprocess.TimeoutExpired:
            tally.aborted.append(f"CLI folder {n}: still running after 600 s")
            continue
        if "Traceback (most recent call last)" in run.stderr:
            tally.escaped.append(f"CLI folder {n}: {run.stderr.strip().splitlines()[-1]}")
        if run.returncode not in (0, 1) or not out.exists():
            tally.aborted.append(f"CLI folder {n}: exit {run.returncode}: {run.stderr.strip()[-300:]}")
        else:
            rows = {r["source"]: r for r in csv.DictReader(out.open(encoding="utf-8"))}
            results = [_CsvResult(rows[str(sub / m.filename)]) for m in batch if str(sub / m.filename) in rows]
            _check(batch, batch, results, tally, f"CLI folder {n}")
        progress.advance(task, len(batch))


class _CsvResult:
    def __init__(self, row: dict):
        self.error = row["error"] or None
        self.ok = self.error is None and row.get("gender") in ("male", "female")


def report(items: list[Mutant], seeds: dict[str, bytes], tally: Tally, seconds: dict[str, float]) -> None:
    table = Table(title="mutants per format", title_justify="left")
    for col in ("format", "seed bytes", "mutants", "still load", "errors"):
        table.add_column(col, justify="left" if col == "format" else "right")
    per = collections.defaultdict(lambda: [0, 0])
    for m in items:
        per[m.seed_name][0 if tally.loaded.get(m.index) is None else 1] += 1
    for name in sorted(per):
        table.add_row(name, str(len(seeds[name])), str(sum(per[name])), str(per[name][0]), str(per[name][1]))
    console.print(table)
    mutations = collections.Counter(m.mutation for m in items)
    console.print("mutations: " + ", ".join(f"{k} {v}" for k, v in sorted(mutations.items())))
    kinds = collections.Counter(kind_of(p) for p in tally.loaded.values() if p)
    errors = Table(title=f"error messages by kind (top 10 of {len(kinds)})", title_justify="left")
    errors.add_column("count", justify="right")
    errors.add_column("problem")
    for text, count in kinds.most_common(10):
        errors.add_row(str(count), text)
    console.print(errors)
    console.print("slowest decodes: " + ", ".join(f"{s * 1000:.0f} ms {name}" for s, name in
                                                  sorted(tally.decode_s, reverse=True)[:5]))
    console.print("wall time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))
    for label, found in (("exceptions escaped", tally.escaped), ("batches aborted", tally.aborted),
                         ("inputs without a result", tally.missing), ("outcomes differing from load_image",
                                                                      tally.mismatched)):
        colour = "green" if not found else "red"
        console.print(f"[{colour}]{label}: {len(found)}[/{colour}]")
        for line in found[:10]:
            console.print(f"  {line}", markup=False)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--mutants", type=int, default=4000)
    ap.add_argument("--seed", type=int, default=13)
    ap.add_argument("--batch", type=int, default=500, help="inputs per Python API call")
    ap.add_argument("--folder-size", type=int, default=400, help="mutants per `facescan analyze FOLDER` run")
    args = ap.parse_args()
    seeds = fuzz_seeds()
    items = mutants(args.mutants, args.seed, seeds)
    console.print(f"{len(items)} mutants of {len(seeds)} formats (seed {args.seed}), Pillow "
                  f"{__import__('PIL').__version__}")
    tally, seconds = Tally(), {}
    with tempfile.TemporaryDirectory(prefix="facescan-fuzz-") as tmp, \
            Progress(TextColumn("{task.description:<24}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                     console=console) as progress:
        folder = Path(tmp)
        for m in items:
            (folder / m.filename).write_bytes(m.data)
        for stage, run in (("load_image", lambda: decode_all(items, tally, progress)),
                           ("Python API", lambda: api_all(items, folder, args.batch, tally, progress)),
                           ("CLI", lambda: cli_all(items, folder, args.folder_size, tally, progress))):
            started = time.perf_counter()
            with muted_stderr() if stage != "CLI" else contextlib.nullcontext():
                run()
            seconds[stage] = time.perf_counter() - started
    report(items, seeds, tally, seconds)
    return 1 if tally.escaped or tally.aborted or tally.missing or tally.mismatched else 0


if __name__ == "__main__":
    sys.exit(main())
