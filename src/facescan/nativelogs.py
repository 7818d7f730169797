"""Keep MediaPipe's and TensorFlow Lite's native log lines off the terminal of the command line.

Their C++ code logs through absl straight to file descriptor 2 (``W0000 00:00:… inference_feedback_
manager.cc:114] …``), from graph threads and at any time, where neither Python's logging nor
``sys.stderr`` can reach; absl's C++ verbosity has no environment switch in these wheels. So the
CLI gives Python's ``sys.stderr`` a descriptor of its own on the real terminal (progress bars still
see a TTY), points descriptor 2 at a pipe, and a thread copies what arrives there to the terminal
except absl's info and warning lines. Errors and fatal messages (``E…``/``F…``) and anything else
pass through. Written by hand because no library filters another library's native stderr.
``FACESCAN_NATIVE_LOGS=1`` turns the filter off.
"""

from __future__ import annotations

import atexit
import os
import re
import sys
import threading

# absl's info/warning lines, TensorFlow Lite's "INFO: Created … delegate", absl's note about itself, and
# Ray's own C++ info/warning lines ("[2026-01-01 10:00:00,000 I 123 123] logging.cc:…", --engine ray)
_ABSL_QUIET = re.compile(rb"^([IW]\d{4} [\d:.]+\s+\d+ \S+:\d+\] |INFO: |WARNING: All log messages before absl::"
                         rb"|\[[\d-]+ [\d:,]+ [IW] \d+ \d+\] )")
_installed = False


def quiet_native_logs() -> None:
    """Install the filter once, for this process (a no-op when stderr has no file descriptor)."""
    global _installed
    if _installed or os.environ.get("FACESCAN_NATIVE_LOGS") == "1":
        return
    try:
        fd = sys.stderr.fileno()
    except (AttributeError, OSError, ValueError):
        return
    sys.stderr.flush()
    terminal = os.dup(fd)  # the real stderr, for Python's writes and the filtered native lines
    read_end, write_end = os.pipe()
    os.dup2(write_end, fd)
    os.close(write_end)
    sys.stderr = os.fdopen(terminal, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                           errors="backslashreplace")
    thread = threading.Thread(target=_copy, args=(read_end, terminal), name="native-log-filter", daemon=True)
    thread.start()
    _installed = True

    def finish() -> None:  # let the last native lines through before the process ends
        os.dup2(terminal, fd)  # closes the pipe's write end held by descriptor 2
        thread.join(timeout=1.0)

    atexit.register(finish)


def _copy(read_end: int, terminal: int) -> None:
    pending = b""
    while True:
        chunk = os.read(read_end, 65536)
        if not chunk:
            break
        pending += chunk
        *lines, pending = pending.split(b"\n")
        kept = [line + b"\n" for line in lines if not _ABSL_QUIET.match(line)]
        if kept:
            os.write(terminal, b"".join(kept))
    if pending and not _ABSL_QUIET.match(pending):
        os.write(terminal, pending)
    os.close(read_end)
