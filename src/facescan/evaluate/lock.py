"""One ``facescan eval`` at a time per run folder: an exclusive ``flock`` on ``<out>/.lock``.

The lock is taken without waiting: a second run on a folder that is being written is refused at
once (:class:`RunLocked`, naming the writer's pid). The operating system releases the lock when
its process ends, however it ends, so a killed run never blocks the next one. Where ``fcntl`` is
missing (Windows) runs are not serialized.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None


class RunLocked(ValueError):
    """Another process is writing the run folder."""


@contextlib.contextmanager
def run_lock(folder: Path):
    """Hold ``folder``'s lock (creating the folder) for the ``with`` block, or raise :class:`RunLocked`."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                pid = os.pread(fd, 32, 0).decode(errors="replace").strip()
                writer = f"another facescan eval (pid {pid})" if pid.isdigit() else "another facescan eval"
                raise RunLocked(f"{folder} is being written by {writer}; wait for it to finish or choose "
                                "another --out folder") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        try:
            yield
        finally:
            os.ftruncate(fd, 0)  # the pid of a finished run would name the wrong process
    finally:
        os.close(fd)  # releases the lock
