"""Issue 13, seeded fuzzing: byte-mutated images in every format Pillow writes here never escape the loader
or the pipeline. The same fuzzer at scale: benchmarks/fuzz_inputs.py."""

from __future__ import annotations

import time

import pytest

from facescan.imageio import ImageLoadError, load_image
from facescan.pipeline import Analyzer

from .badinputs import fuzz_seeds, mutants

SEED = 13
COUNT = 400
SLOWEST_DECODE_S = 10.0  # a mutant that makes a decoder spin this long is a bug worth its own issue


@pytest.fixture(scope="module")
def fuzzed():
    seeds = fuzz_seeds()
    assert len(seeds) >= 15, f"only {len(seeds)} formats can be written here: {sorted(seeds)}"
    return mutants(COUNT, SEED, seeds)


@pytest.fixture(scope="module")
def decoded(fuzzed) -> dict[int, str | None]:
    """Mutant index → None when it loads, else its error; fails on any other exception or a slow decode."""
    outcome, escaped, slowest = {}, [], (0.0, "")
    for m in fuzzed:
        started = time.perf_counter()
        try:
            load_image(m.data, name=m.filename)
            outcome[m.index] = None
        except ImageLoadError as e:
            assert str(e).startswith(m.filename)
            outcome[m.index] = str(e)
        except Exception as e:  # noqa: BLE001 - exactly what must not happen
            escaped.append(f"{m.filename}: {type(e).__name__}: {e}")
        slowest = max(slowest, (time.perf_counter() - started, m.filename))
    assert not escaped, "\n".join(escaped)
    assert slowest[0] < SLOWEST_DECODE_S, f"{slowest[1]} took {slowest[0]:.1f} s to decode"
    return outcome


def test_fuzz_covers_many_formats_and_mutations(fuzzed, decoded):
    assert len({m.seed_name for m in fuzzed}) >= 15 and len({m.mutation for m in fuzzed}) >= 5
    failed = sum(1 for e in decoded.values() if e)
    assert 0 < failed < len(fuzzed), "the mutants must include both broken and still-readable images"


def test_fuzzed_paths_and_bytes_through_analyze_many(fuzzed, decoded, tmp_path):
    inputs = []
    for m in fuzzed:
        if m.index % 2:
            inputs.append(m.data)
        else:
            path = tmp_path / m.filename
            path.write_bytes(m.data)
            inputs.append(path)
    results = list(Analyzer(attributes="gender", crops=True).analyze_many(inputs))
    assert len(results) == len(inputs), "every mutant gets exactly one result"
    for m, result in zip(fuzzed, results):
        if decoded[m.index] is None:
            assert result.ok and len(result.faces) == 1, (m.filename, result.error)
        else:
            assert result.error and result.error.startswith(result.source), m.filename
            assert result.error.split(": ", 1)[1] == decoded[m.index].split(": ", 1)[1], m.filename
