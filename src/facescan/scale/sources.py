"""What a cluster run reads: folders, glob patterns, lists of paths, files and URIs, as one list of inputs.

Each input is a pair: ``source``, the name its rows carry, and ``location``, where a worker reads it.
Local paths are made absolute (workers do not share the driver's working folder), so a run's rows
name the same files whatever folder it was started from. URIs with a scheme (``s3://``, ``gs://``,
``abfs://``, ``hdfs://``…) are read with fsspec on the workers (the cluster needs the matching
filesystem package: s3fs, gcsfs, adlfs); http(s) URLs are fetched as ``facescan analyze`` fetches them.

A ``.txt`` (one path or URI a line; blank lines and ``#`` comments skipped), ``.csv`` or ``.parquet``
named as an input is a **list** of inputs: its ``path``, ``source``, ``file``, ``uri`` or ``url``
column (else its first column). Relative paths in a list are relative to the list's own folder,
so ``fairface_label_val.csv`` (``val/1.jpg``…) lists FairFace's crops wherever it is run from.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections.abc import Iterable, Sequence
from pathlib import Path, PurePosixPath

from facescan.imageio import MAX_BYTES, VIDEO_SUFFIXES, ImageLoadError, expand_inputs, is_url

#: Suffixes of an input that lists other inputs.
LIST_SUFFIXES = (".txt", ".lst", ".csv", ".parquet")
#: Columns of a CSV or Parquet list that name the inputs, in order of preference.
LIST_COLUMNS = ("path", "source", "file", "uri", "url", "location")

_SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*://")


def is_uri(text: str) -> bool:
    """Whether ``text`` is a URI read with fsspec (a scheme other than http(s) and file)."""
    return bool(_SCHEME.match(text)) and not is_url(text) and not text.lower().startswith("file://")


def is_video_name(name: str) -> bool:
    """Whether an input's name has a video suffix (by name only)."""
    return PurePosixPath(name.split("?")[0]).suffix.lower() in VIDEO_SUFFIXES


def list_inputs(inputs: Sequence[str] | str | os.PathLike, skipped: list[str] | None = None) -> list[tuple[str, str]]:
    """``(source, location)`` of every input named by ``inputs`` (one name, or a sequence of them), in
    order, each once.

    Files in folders whose suffix is neither an image's nor a video's go to ``skipped`` (as
    ``facescan analyze`` skips them). Raises ``ValueError`` for what cannot be listed (a missing
    list file, a list without a usable column, ``-``)."""
    if isinstance(inputs, (str, os.PathLike)):  # one input, not a sequence of its characters
        inputs = [inputs]
    out: dict[str, str] = {}
    for entry in inputs:
        text = str(entry)
        if text == "-":
            raise ValueError("--engine ray reads files, folders, lists and URIs, not standard input (-)")
        for source, location in _one(text, skipped):
            out.setdefault(source, location)
    return list(out.items())


def _one(text: str, skipped: list[str] | None) -> Iterable[tuple[str, str]]:
    if is_url(text):
        return [(text, text)]
    if text.lower().startswith("file://"):
        text = text[len("file://"):]
    if is_uri(text):
        return _remote(text, skipped)
    path = Path(text).expanduser()
    if path.suffix.lower() in LIST_SUFFIXES and path.is_file():
        return _listed(read_list(path.read_bytes(), path.suffix.lower(), text), str(path.absolute().parent))
    found: list = []
    local_skipped: list[Path] = []
    for p in expand_inputs([str(path)], skipped=local_skipped):
        found.append(str(p) if is_url(str(p)) else os.path.abspath(p))
    if skipped is not None:
        skipped.extend(str(p) for p in local_skipped)
    return [(p, p) for p in found]


def _listed(entries: list[str], base: str) -> list[tuple[str, str]]:
    """A list's entries as inputs: URIs and URLs as they are, relative paths against ``base``."""
    out = []
    for entry in entries:
        if is_url(entry) or is_uri(entry):
            out.append((entry, entry))
        elif _SCHEME.match(base):  # a list stored on a remote filesystem names files next to it
            uri = f"{base.rstrip('/')}/{entry.lstrip('/')}"
            out.append((uri, uri))
        else:
            p = entry[len("file://"):] if entry.lower().startswith("file://") else entry
            absolute = os.path.abspath(os.path.join(base, os.path.expanduser(p)))
            out.append((absolute, absolute))
    return out


def read_list(data: bytes, suffix: str, name: str) -> list[str]:
    """The entries of a list file's bytes (``.txt``/``.lst``, ``.csv`` or ``.parquet``)."""
    if suffix == ".parquet":
        import pyarrow.parquet as pq

        table = pq.read_table(io.BytesIO(data))
        column = next((c for c in LIST_COLUMNS if c in table.column_names), table.column_names[0] if
                      table.column_names else None)
        if column is None:
            raise ValueError(f"{name}: the list has no columns")
        return [str(v) for v in table.column(column).to_pylist() if v not in (None, "")]
    text = data.decode("utf-8-sig")
    if suffix == ".csv":
        rows = list(csv.reader(io.StringIO(text)))
        if not rows:
            return []
        header = [h.strip().lower() for h in rows[0]]
        column = next((header.index(c) for c in LIST_COLUMNS if c in header), None)
        if column is None:  # no known header: the first column, the first row included if it names a file
            column, body = 0, rows if _looks_like_input(rows[0][0]) else rows[1:]
        else:
            body = rows[1:]
        return [r[column].strip() for r in body if len(r) > column and r[column].strip()]
    return [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]


def _looks_like_input(cell: str) -> bool:
    return "/" in cell or "\\" in cell or "." in PurePosixPath(cell).name


def _filesystem(uri: str):
    import fsspec

    try:
        return fsspec.core.url_to_fs(uri)
    except (ImportError, ValueError) as e:
        raise ValueError(f"{uri}: no filesystem for it here ({e}); install its fsspec package (s3fs, gcsfs, "
                         "adlfs…) where the run is started and on the cluster") from None


def _remote(uri: str, skipped: list[str] | None) -> list[tuple[str, str]]:
    """A remote file, folder, glob pattern or list, listed with fsspec."""
    fs, path = _filesystem(uri)
    scheme = uri.split("://", 1)[0]
    name = lambda p: p if _SCHEME.match(p) else f"{scheme}://{p.lstrip('/')}"  # noqa: E731
    suffix = PurePosixPath(path).suffix.lower()
    if suffix in LIST_SUFFIXES and fs.isfile(path):
        with fs.open(path, "rb") as f:
            data = f.read()
        return _listed(read_list(data, suffix, uri), name(str(PurePosixPath(path).parent)))
    if any(c in path for c in "*?["):
        paths = sorted(fs.glob(path))
    elif fs.isdir(path):
        paths = sorted(fs.find(path))
    else:
        return [(uri, uri)]
    media = _media_suffixes()
    out = []
    for p in paths:
        if PurePosixPath(p).name.startswith("."):
            continue
        if PurePosixPath(p).suffix.lower() not in media:
            if skipped is not None:
                skipped.append(name(p))
            continue
        out.append((name(p), name(p)))
    return out


def _media_suffixes() -> set[str]:
    from PIL import Image

    Image.init()
    return {s.lower() for s in Image.registered_extensions()} | set(VIDEO_SUFFIXES) | {".heic", ".heif", ".avif"}


def read_remote(uri: str, limit: int = MAX_BYTES) -> io.BytesIO:
    """A remote image's bytes as a file object named ``uri`` (so its result is named ``uri``), or
    :class:`~facescan.imageio.ImageLoadError` naming it."""
    try:
        fs, path = _filesystem(uri)
        with fs.open(path, "rb") as f:
            data = f.read(limit + 1)
    except ImageLoadError:
        raise
    except FileNotFoundError:
        raise ImageLoadError(uri, "file not found") from None
    except Exception as e:  # noqa: BLE001 - any filesystem failure is this input's error
        raise ImageLoadError(uri, f"cannot read ({type(e).__name__}: {str(e)[:200]})") from None
    if len(data) > limit:
        raise ImageLoadError(uri, f"file is over the {limit / 1e6:.0f} MB limit")
    stream = io.BytesIO(data)
    stream.name = uri
    return stream


def download(uri: str, folder: str) -> str:
    """Copy a remote file (a video) into ``folder``; its local path."""
    fs, path = _filesystem(uri)
    local = os.path.join(folder, PurePosixPath(path).name or "input")
    fs.get(path, local)
    return local
