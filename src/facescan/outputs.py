"""Result files written while a run goes on, so a killed run keeps what it finished.

JSONL gets one line per image as each result arrives. JSON, CSV and Parquet are whole-file formats:
they are rewritten atomically (a temporary file, then ``os.replace``) from time to time and at the
end, never left half-written. Their rows wait in unnamed temporary files (one JSON text per line),
not in memory, so a run's memory does not grow with its number of results. Rewrites are spaced so
that they cost at most about a tenth of the run (at least :data:`CHECKPOINT_SECONDS` apart, and ten
times as long as the last rewrite took).

With ``resume=True`` the files already there are read back first: their images are reported by
:attr:`ResultOutputs.done` so the caller can skip them, and new results are added to them.
"""

from __future__ import annotations

import csv
import functools
import json
import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Mapping
from pathlib import Path

from facescan.schema import ImageResult, VideoResult
from facescan.tables import result_rows, video_frame_rows, video_track_rows

FORMATS = ("json", "jsonl", "csv", "parquet")
CHECKPOINT_SECONDS = 5.0


class OutputError(ValueError):
    """An output cannot be written; the message names the file and the problem."""


def check_writable(path: Path, what: str) -> None:
    """Create ``path``'s folder and prove the file can be written there, before any work starts."""
    if path.is_dir():
        raise OutputError(f"{what} {path}: is a folder; name a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        probe = path.with_name(path.name + ".facescan-tmp")
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as e:
        raise OutputError(f"{what} {path}: cannot be written ({e.strerror or e})") from None


class ResultOutputs:
    """The result files of one run: ``{"csv": Path, …}``; call :meth:`add` per result, then :meth:`close`."""

    def __init__(self, paths: Mapping[str, Path], resume: bool = False):
        self.paths = {fmt: Path(p) for fmt, p in paths.items() if p is not None}
        # "-" is standard output (JSON, JSONL, CSV): JSONL streams there, the others at the end
        self.to_stdout = {fmt for fmt, p in self.paths.items() if str(p) == "-"}
        if len(self.to_stdout) > 1 or self.to_stdout & {"parquet"}:
            raise OutputError("only one of --json, --jsonl or --csv can be '-' (standard output); Parquet needs a file")
        if resume and self.to_stdout:
            raise OutputError("--resume needs result files, not standard output ('-')")
        for fmt, path in self.paths.items():
            if fmt not in FORMATS:
                raise OutputError(f"unknown output format {fmt!r}; choose from {', '.join(FORMATS)}")
            if fmt not in self.to_stdout:
                check_writable(path, f"--{fmt}")
        self.resume = resume
        spool = functools.partial(_Spool, next((p.parent for f, p in self.paths.items() if f not in self.to_stdout),
                                               None))
        self._records = spool() if "json" in self.paths else None  # JSON records (model_dump) for the JSON output
        self._tables: dict[str, _Spool] = {f: spool() for f in ("csv", "parquet") if f in self.paths}  # table rows
        self._tracks: dict[str, _Spool] = {f: spool() for f in self._tables}  # one row per person of a video
        self.done: set[str] = set()  # sources already in every output (resume)
        self.failed_before: dict[str, str] = {}  # source → error, of the inputs already there (resume)
        self._present: dict[str, set[str]] = {fmt: set() for fmt in self.paths}  # per output, on resume
        self._jsonl = None
        self._dirty = False
        self._last = time.monotonic()
        self._cost = 0.0
        if resume:
            self._read_existing()
        if "jsonl" in self.to_stdout:
            self._jsonl = sys.stdout
        elif "jsonl" in self.paths:
            self._jsonl = self.paths["jsonl"].open("a" if resume else "w", encoding="utf-8")

    def _read_existing(self) -> None:
        for fmt, path in self.paths.items():
            if path.exists():
                try:
                    self._present[fmt] = self._load(fmt, path)
                except (OSError, ValueError, KeyError) as e:
                    raise OutputError(f"--resume: {path} cannot be read back ({e}); move it away to start over") \
                        from None
        self.done = set.intersection(*self._present.values()) if self._present else set()
        for fmt in self._tracks:
            if tracks_path(self.paths[fmt]).exists():
                self._tracks[fmt].extend(self._read_table(fmt, tracks_path(self.paths[fmt])))

    def _load(self, fmt: str, path: Path) -> set[str]:
        if fmt == "jsonl":
            records = _read_jsonl(path)
        elif fmt == "json":
            records = json.loads(path.read_text(encoding="utf-8"))
            self._records.extend(records)
        if fmt in ("jsonl", "json"):
            self.failed_before.update({r["source"]: r["error"] for r in records if r.get("error")})
            return {r["source"] for r in records}
        rows = self._read_table(fmt, path)
        self._tables[fmt].extend(rows)
        self.failed_before.update({r["source"]: r["error"] for r in rows if r.get("error")})
        return {r["source"] for r in rows}

    @staticmethod
    def _read_table(fmt: str, path: Path) -> list[dict]:
        if fmt == "csv":
            with path.open(newline="", encoding="utf-8") as f:
                return list(csv.DictReader(f))
        import pyarrow.parquet as pq

        return pq.read_table(str(path)).to_pylist()

    def add(self, result: ImageResult | VideoResult) -> None:
        """Record one result (JSONL at once; the other files at the next checkpoint); an output that
        already holds this image (a resumed run) is left as it is."""
        new = {fmt for fmt in self.paths if result.source not in self._present[fmt]}
        if self._jsonl is not None and "jsonl" in new:
            self._jsonl.write(result.model_dump_json() + "\n")
            self._jsonl.flush()
        if "json" in new:
            self._records.extend([result.model_dump(mode="json")])
        if new & set(self._tables):
            video = isinstance(result, VideoResult)
            rows = video_frame_rows(result) if video else result_rows([result])
            for fmt in new & set(self._tables):
                self._tables[fmt].extend(rows)
                self._tracks[fmt].extend(video_track_rows(result) if video else [])
        self._dirty = True
        if time.monotonic() - self._last >= max(CHECKPOINT_SECONDS, 10 * self._cost):
            self.checkpoint()

    def checkpoint(self) -> None:
        """Rewrite the whole-file outputs with every result so far (atomically)."""
        if not self._dirty:
            return
        started = time.monotonic()
        for fmt, path in self.paths.items():
            if fmt == "jsonl" or fmt in self.to_stdout:
                continue
            writer = getattr(self, f"_write_{fmt}")
            _replace(path, writer, self._tables.get(fmt))
            if self._tracks.get(fmt):
                _replace(tracks_path(path), writer, self._tracks[fmt])
        self._dirty = False
        self._last = time.monotonic()
        self._cost = self._last - started

    def close(self) -> None:
        """Write everything and close the files."""
        self.checkpoint()
        for fmt in self.to_stdout - {"jsonl"}:  # tables of videos' persons have no place on stdout
            self._stdout_writer(fmt)
        if self._jsonl is not None:
            if self._jsonl is not sys.stdout:
                self._jsonl.close()
            self._jsonl = None
        for spool in [self._records, *self._tables.values(), *self._tracks.values()]:
            if spool is not None:
                spool.close()

    def _stdout_writer(self, fmt: str) -> None:
        if fmt == "json":
            _write_json_array(sys.stdout, self._records)
            sys.stdout.write("\n")
        else:
            writer = csv.DictWriter(sys.stdout, fieldnames=list(self._tables[fmt].columns))
            writer.writeheader()
            writer.writerows(self._tables[fmt])
        sys.stdout.flush()

    def __enter__(self) -> ResultOutputs:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _write_json(self, path: Path, rows=None) -> None:
        with path.open("w", encoding="utf-8") as f:
            _write_json_array(f, self._records)

    @staticmethod
    def _write_csv(path: Path, rows: _Spool) -> None:
        with path.open("w", newline="", encoding="utf-8") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows.columns))
            writer.writeheader()
            writer.writerows(rows)

    @staticmethod
    def _write_parquet(path: Path, rows: _Spool) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(rows.columns)
        # written in row groups, so only one group's rows are in memory at a time; a first pass finds the
        # types (a column that is null throughout one group takes its type from the others)
        schemas = [pa.Table.from_pylist(g).schema for g in rows.batches(PARQUET_GROUP_ROWS, cols)]
        if not schemas:
            pq.write_table(pa.table({}), str(path))
            return
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        with pq.ParquetWriter(str(path), schema) as writer:
            for g in rows.batches(PARQUET_GROUP_ROWS, cols):
                writer.write_table(pa.Table.from_pylist(g, schema=schema))


def tracks_path(path: Path) -> Path:
    """Where a table's per-person rows of videos go: ``r.csv`` → ``r.tracks.csv``."""
    return path.with_name(f"{path.stem}.tracks{path.suffix}")


def _replace(path: Path, writer, rows) -> None:
    """``writer(tmp, rows)`` then rename ``tmp`` into place, so the file is never half-written."""
    tmp = path.with_name(path.name + ".facescan-tmp")
    writer(tmp, rows)
    os.replace(tmp, path)


def _read_jsonl(path: Path) -> list[dict]:
    """The records of a JSONL file; a last line torn by a kill mid-write is cut off the file."""
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines(keepends=True)
    records = []
    for k, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            if k < len(lines) - 1 or line.endswith("\n"):
                raise ValueError(f"line {k + 1} is not JSON") from None
            with path.open("r+", encoding="utf-8") as f:  # only the unfinished last line is dropped
                f.truncate(len("".join(lines[:k]).encode()))
    return records


class _Spool:
    """Rows (JSON-able dicts) in an unnamed temporary file, one JSON text per line, read back in order by
    iterating; ``columns`` holds every key seen, in first-seen order."""

    def __init__(self, folder: Path | None = None):
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8", dir=folder, prefix=".facescan-rows-")
        self.columns: dict[str, None] = {}
        self._count = 0

    def extend(self, rows: Iterable[dict]) -> None:
        for row in rows:
            self._file.write(json.dumps(row) + "\n")
            self.columns.update(dict.fromkeys(row))
            self._count += 1

    def __len__(self) -> int:
        return self._count

    def close(self) -> None:
        """Delete the file (its rows are gone)."""
        self._file.close()

    def __iter__(self):
        self._file.flush()
        self._file.seek(0)
        try:
            for line in self._file:
                yield json.loads(line)
        finally:
            self._file.seek(0, os.SEEK_END)

    def batches(self, size: int, columns: list[str]):
        """Lists of up to ``size`` rows, each row with every column (None where a row lacks one)."""
        batch = []
        for row in self:
            batch.append({c: row.get(c) for c in columns})
            if len(batch) == size:
                yield batch
                batch = []
        if batch:
            yield batch


#: Rows per Parquet row group (and per batch turned into Arrow at a time)
PARQUET_GROUP_ROWS = 20_000


def _write_json_array(f, records: Iterable[dict]) -> None:
    """``json.dump(records, f, indent=2)``, one record at a time."""
    first = True
    for record in records:
        f.write(("[\n" if first else ",\n") + textwrap.indent(json.dumps(record, indent=2), "  "))
        first = False
    f.write("[]" if first else "\n]")


def write_results(results: Iterable[ImageResult], path: str | Path, fmt: str) -> None:
    """Write ``results`` to one file in format ``fmt`` (json, jsonl, csv or parquet)."""
    with ResultOutputs({fmt: Path(path)}) as out:
        for r in results:
            out.add(r)


#: format → ``writer(results, path)``
WRITERS = {fmt: functools.partial(write_results, fmt=fmt) for fmt in FORMATS}


def annotation_paths(target: Path, sources: list[Path], is_video=lambda source: False,
                     option: str = "--annotate", kind: str = "annotated") -> dict[str, Path]:
    """Where ``--annotate`` draws each input: ``target`` itself for one input named as a file, else
    ``target/<stem>.annotated.jpg`` (``.mp4`` for a video) with ``-2``, ``-3``… where stems repeat.
    Checked before work starts; ``option``/``kind`` name another picture option (``--timeline``)."""
    if len(sources) == 1 and target.suffix and not target.is_dir():
        if option == "--annotate" and is_video(sources[0]) and not is_video(target):
            raise OutputError(f"--annotate {target}: a video is drawn into a video file (.mp4, .mov, .mkv, .avi, "
                              ".webm)")
        check_writable(target, option)
        return {str(sources[0]): target}
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {target}: is a file; with several inputs, name a folder")
    taken: set[str] = set()
    out = {}
    for source in sources:
        suffix = ".png" if kind != "annotated" else ".mp4" if is_video(source) else ".jpg"
        stem, k = Path(str(source)).stem or "image", 1
        name = f"{stem}.{kind}{suffix}"
        while name in taken:
            k += 1
            name = f"{stem}-{k}.{kind}{suffix}"
        if len(name.encode()) > 255:
            raise OutputError(f"{option}: the picture of {source} would be named {name[:40]}…, "
                              "longer than file names may be (255 bytes); rename the input")
        taken.add(name)
        out[str(source)] = target / name
    check_writable(target / ".facescan-probe", option)
    return out
