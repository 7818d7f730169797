"""The command line's first hour: --version, -h, one-line errors for missing extras, quiet native logs,
tables as wide as the terminal (or 160 columns when piped)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from typer.testing import CliRunner

import facescan
from facescan.cli import app
from tests.conftest import shared


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], capture_output=True, text=True,
                          timeout=300)


def test_version_and_short_help():
    r = CliRunner().invoke(app, ["--version"])
    assert r.exit_code == 0 and r.output.strip() == f"facescan {facescan.__version__}"
    for argv in (["-h"], ["analyze", "-h"], ["eval", "-h"], ["train", "-h"]):
        r = CliRunner().invoke(app, argv)
        assert r.exit_code == 0 and "Usage" in r.output, argv


MISSING = """
import sys
for module in sys.argv[1].split(","):
    sys.modules[module] = None  # as if it were not installed
from facescan.cli import main
sys.argv = ["facescan", *sys.argv[2:]]
main()
"""


def test_a_missing_extra_is_one_line_with_the_install_command():
    photo = str(shared("photos", "single_face.jpg"))
    cases = [("torch,transformers", ["analyze", photo, "-b", "hf:org/model"], "facescan[vlm]"),
             ("openai", ["analyze", photo, "-b", "openai:gpt-4o"], "facescan[api]"),
             ("sklearn", ["eval", "--dataset", "fairface:/nowhere", "--limit", "2"], "facescan[eval]")]
    for modules, argv, extra in cases:
        r = _python(MISSING, modules, *argv)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2, (argv, r.stderr[-2000:])
        assert len(lines) == 1 and f"pip install '{extra}'" in lines[0] and "Traceback" not in r.stderr, lines


def test_native_log_lines_are_filtered_and_the_rest_passes():
    r = _python("""
        import os, sys
        from facescan.nativelogs import quiet_native_logs
        quiet_native_logs()
        os.write(2, b"W0000 00:00:1796015362.298138   32181 inference_feedback_manager.cc:114] Feedback\\n")
        os.write(2, b"I0000 00:00:1796015362.298138   32181 gl_context.cc:357] GL version\\n")
        os.write(2, b"INFO: Created TensorFlow Lite XNNPACK delegate for CPU.\\n")
        os.write(2, b"E0000 00:00:1796015362.298138   32181 calculator.cc:1] a real error\\n")
        os.write(2, b"native text without a newline")
        print("python's stderr", file=sys.stderr)
    """)
    assert r.returncode == 0
    assert "Feedback" not in r.stderr and "GL version" not in r.stderr and "XNNPACK" not in r.stderr
    assert "a real error" in r.stderr and "python's stderr" in r.stderr and "without a newline" in r.stderr


def test_explain_and_describe_print_no_native_logs():
    photo = str(shared("photos", "multi_face.jpg"))
    r = subprocess.run([sys.executable, "-m", "facescan.cli", "analyze", photo, "--explain", "--describe", "-q"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert [line for line in r.stderr.splitlines() if line.strip()] == ["1 image(s), 5 face(s), 0 failed"]


def test_piped_tables_are_not_cut_at_80_columns():
    photo = str(shared("photos", "multi_face.jpg"))
    r = subprocess.run([sys.executable, "-m", "facescan.cli", "analyze", photo, "-a", "age,gender,race,emotion"],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0
    widths = [len(line) for line in r.stdout.splitlines() if line.startswith(("┃", "│"))]
    assert widths and max(widths) > 80 and len(set(widths)) == 1  # one row per face, not wrapped


def test_a_hub_model_that_cannot_be_had_fails_fast_in_one_line():
    import os
    import time

    photo = str(shared("photos", "single_face.jpg"))
    for env in ({"HF_HUB_OFFLINE": "1"}, {}):
        started = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "facescan.cli", "analyze", photo, "-b", "hf:typo-org/no-such-model"],
                           capture_output=True, text=True, timeout=300, env={**os.environ, **env})
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        assert r.returncode == 2 and len(lines) == 1 and "typo-org/no-such-model" in lines[0], r.stderr[-2000:]
        assert ("HF_HUB_OFFLINE" in lines[0]) if env else ("cannot be reached" in lines[0] or "no model" in lines[0])
        assert time.monotonic() - started < 90
