"""A cluster run's output folder: Parquet shards written by the driver, read back as one table.

The folder (a local path or an fsspec URI: ``s3://bucket/run/``) holds ``part-<run>-<n>.parquet``
shards with the rows of ``facescan analyze --parquet`` (one per face; one per image without faces
or that failed; one per frame × face of a video), video persons' rows in the sibling folder
``<name>.tracks`` (as ``r.parquet`` has ``r.tracks.parquet``), and ``_facescan.json``, the run's
settings. Only the driver writes, one shard at a time, each under a hidden name first and then
renamed into place (object stores publish a file whole anyway), and an input's rows always go into
one shard together: a shard is either there with all of its inputs or not there at all.

Rerunning on the folder skips every input that a shard holds (:meth:`ShardWriter.done`); a
run killed in the middle loses only the rows it had not written yet (at most
``shard_seconds``' worth), and those inputs are redone by the rerun. A folder holding a run of other
settings is refused, so shards of two different runs never mix.
"""

from __future__ import annotations

import json
import os
import secrets
import time
from collections.abc import Mapping
from pathlib import PurePosixPath

from facescan import taxonomy
from facescan.tables import _INTEGERS, _TEXT

MANIFEST = "_facescan.json"
#: A shard is written when this many rows wait, or when the oldest waits this long.
SHARD_ROWS = 50_000
SHARD_SECONDS = 30.0

_TEXT_COLUMNS = {*_TEXT, *taxonomy.ATTRIBUTES, "dominant_emotion", "hair_colour", "hair_length", "eyewear",
                 "clothing_texture", "describe_error"}
_TEXT_SUFFIXES = ("_model", "_error", "_raw", "_mode", "_prompt")


class RunFolderError(ValueError):
    """The output folder cannot take this run (another run's settings, not a facescan folder, a file…)."""


def filesystem(uri: str):
    """``(fsspec filesystem, path)`` of a local path or URI."""
    import fsspec

    try:
        return fsspec.core.url_to_fs(str(uri))
    except (ImportError, ValueError) as e:
        raise RunFolderError(f"{uri}: no filesystem for it here ({e}); install its fsspec package (s3fs, gcsfs, "
                             "adlfs…)") from None


def tracks_folder(path: str) -> str:
    """The sibling folder of video persons' rows: ``out/r.parquet`` → ``out/r.tracks.parquet``,
    ``out/r`` → ``out/r.tracks``."""
    p = PurePosixPath(path.rstrip("/"))
    return str(p.with_name(f"{p.stem}.tracks{p.suffix}"))


def shard_files(fs, folder: str) -> list[str]:
    """The shards of ``folder`` (sorted), hidden and temporary files left out."""
    if not fs.exists(folder):
        return []
    return sorted(p for p in fs.ls(folder, detail=False)
                  if PurePosixPath(p).name.startswith("part-") and p.endswith(".parquet"))


class ShardWriter:
    """The driver's writer of one run's folder: call :meth:`add` per input, then :meth:`close`."""

    def __init__(self, out: str, settings: Mapping, shard_rows: int = SHARD_ROWS,
                 shard_seconds: float = SHARD_SECONDS):
        self.out = str(out)
        self.fs, self.root = filesystem(self.out)
        self.local = "file" in (self.fs.protocol if isinstance(self.fs.protocol, tuple) else (self.fs.protocol,))
        self.tracks = tracks_folder(self.root)
        self.settings = json.loads(json.dumps(dict(settings)))
        self.shard_rows, self.shard_seconds = shard_rows, shard_seconds
        self.run = time.strftime("%Y%m%d-%H%M%S") + "-" + secrets.token_hex(3)
        self._rows: list[dict] = []
        self._tracks: list[dict] = []
        self._sources = 0
        self._since = time.monotonic()
        self.shards = 0
        self.rows_written = 0
        self._check_folder()

    def _check_folder(self) -> None:
        fs, root = self.fs, self.root
        if fs.exists(root) and not fs.isdir(root):
            raise RunFolderError(f"--parquet {self.out}: is a file; with --engine ray it names a folder of shards")
        manifest = f"{root.rstrip('/')}/{MANIFEST}"
        if fs.exists(manifest):
            with fs.open(manifest, "rb") as f:
                try:
                    stored = json.loads(f.read().decode("utf-8"))
                except ValueError:
                    raise RunFolderError(f"{self.out}: its {MANIFEST} is not readable; choose another folder") from None
            if stored.get("settings") != self.settings:
                diff = [k for k in {**stored.get("settings", {}), **self.settings}
                        if stored.get("settings", {}).get(k) != self.settings.get(k)]
                shown = "; ".join(f"{k} {stored.get('settings', {}).get(k)!r} (this run: {self.settings.get(k)!r})"
                                  for k in diff)
                raise RunFolderError(f"{self.out} holds a run of other settings: {shown}; choose another folder")
            return
        if shard_files(fs, root):
            raise RunFolderError(f"{self.out} holds part-*.parquet files but no {MANIFEST}: it is not a facescan "
                                 "run folder; choose another folder")
        fs.makedirs(root, exist_ok=True)
        from facescan import __version__

        self._put(manifest, json.dumps({"settings": self.settings, "facescan_version": __version__},
                                       indent=2).encode())

    def done(self) -> tuple[set[str], dict[str, str]]:
        """The inputs already in the folder's shards, and the error of those among them that failed."""
        import pyarrow.parquet as pq

        sources: set[str] = set()
        failed: dict[str, str] = {}
        for path in shard_files(self.fs, self.root):
            with self.fs.open(path, "rb") as f:
                parquet = pq.ParquetFile(f)
                table = parquet.read(columns=[c for c in ("source", "error") if c in parquet.schema_arrow.names])
            errors = table.column("error").to_pylist() if "error" in table.column_names else [None] * len(table)
            for source, error in zip(table.column("source").to_pylist(), errors):
                sources.add(source)
                if error:
                    failed[source] = error
        return sources, failed

    def add(self, rows: list[dict], track_rows: list[dict] = ()) -> None:
        """One input's rows (and its video persons' rows); a shard is written when enough are waiting."""
        if not self._rows and not self._tracks:
            self._since = time.monotonic()
        self._rows.extend(rows)
        self._tracks.extend(track_rows)
        self._sources += 1
        if len(self._rows) + len(self._tracks) >= self.shard_rows or \
                time.monotonic() - self._since >= self.shard_seconds:
            self.flush()

    def flush(self) -> None:
        """Write the waiting rows as one shard (and the persons' rows as one in the tracks folder)."""
        if not self._rows and not self._tracks:
            return
        name = f"part-{self.run}-{self.shards:05d}.parquet"
        # persons' rows first: a shard of frame rows marks its videos done, so theirs must be there by then
        if self._tracks:
            self.fs.makedirs(self.tracks, exist_ok=True)
            self._put(f"{self.tracks}/{name}", _parquet_bytes(self._tracks))
        if self._rows:
            self._put(f"{self.root.rstrip('/')}/{name}", _parquet_bytes(self._rows))
        self.rows_written += len(self._rows)
        self.shards += 1
        self._rows, self._tracks, self._sources = [], [], 0
        self._since = time.monotonic()

    def _put(self, path: str, data: bytes) -> None:
        """Write ``path`` whole: a hidden temporary file renamed into place (object stores: one upload)."""
        if not self.local:
            with self.fs.open(path, "wb") as f:
                f.write(data)
            return
        parent, name = os.path.split(path)
        tmp = os.path.join(parent, f".{name}.{secrets.token_hex(4)}.tmp")
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> ShardWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def column_type(name: str):
    """The Arrow type of a result column known by name (None: inferred from its values)."""
    import pyarrow as pa

    if name in _INTEGERS:
        return pa.int64()
    if name in _TEXT_COLUMNS or name.endswith(_TEXT_SUFFIXES):
        return pa.string()
    return None


def rows_table(rows: list[dict]):
    """Rows as an Arrow table with the columns ``facescan analyze --parquet`` writes, typed the same in
    every shard (text columns as strings and counts as integers even when all of a shard's are empty)."""
    import pyarrow as pa

    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row))
    arrays, fields = [], []
    for name in columns:
        values = [row.get(name) for row in rows]
        kind = column_type(name)
        array = pa.array(values, type=kind) if kind is not None else pa.array(values)
        if pa.types.is_null(array.type):  # all empty here: a number elsewhere (probabilities, boxes, AUs)
            array = pa.array(values, type=pa.float64())
        arrays.append(array)
        fields.append(pa.field(name, array.type))
    return pa.Table.from_arrays(arrays, schema=pa.schema(fields))


def _parquet_bytes(rows: list[dict]) -> bytes:
    import pyarrow as pa
    import pyarrow.parquet as pq

    sink = pa.BufferOutputStream()
    pq.write_table(rows_table(rows), sink)
    return sink.getvalue().to_pybytes()


def read_results(out: str, tracks: bool = False):
    """A run folder's rows as one Arrow table (``.to_pandas()`` for a DataFrame): every shard, columns
    unified by name (a column some shards lack is empty there). ``tracks=True``: the video persons' rows.

    Other readers work as well when told to unify by name: DuckDB's ``read_parquet('out/*.parquet',
    union_by_name=true)``, Spark's ``mergeSchema``, polars' ``scan_parquet(..., allow_missing_columns=True)``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    fs, root = filesystem(out)
    folder = tracks_folder(root) if tracks else root
    tables = []
    for path in shard_files(fs, folder):
        with fs.open(path, "rb") as f:
            tables.append(pq.read_table(f))
    if not tables:
        return pa.table({})
    return pa.concat_tables(tables, promote_options="permissive")
