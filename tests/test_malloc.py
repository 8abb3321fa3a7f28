"""The allocator settings applied on import (``minilstm/_malloc.py``): measured by their effect,
the page faults of reallocating a few megabytes, in fresh processes."""
import os
import subprocess
import sys

import pytest

from minilstm import _malloc

GLIBC = sys.platform.startswith("linux") and bool(_malloc._glibc_version())

# A training step's pattern after importing minilstm: eight 2 MB arrays allocated, written and
# freed, 20 times. Prints the import's status line and the minor page faults per round.
CHILD = """
import resource
import numpy as np
import minilstm
print(minilstm.malloc_status())

def step():
    arrays = [np.ones(1 << 19, np.float32) for _ in range(8)]    # 8 x 2 MB = 4,096 pages of 4 KB
    del arrays

step()                                   # outside the count: the heap grows once
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    step()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 20)
"""


def run_child(**env):
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("MINILSTM_MALLOC", "MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_")}
    environment.update(env)
    out = subprocess.run([sys.executable, "-c", CHILD], env=environment, capture_output=True,
                         text=True, check=True).stdout.splitlines()
    return out[0], float(out[1])


@pytest.mark.skipif(not GLIBC, reason="the settings are glibc's; elsewhere the import leaves malloc alone")
def test_reallocation_reuses_memory_and_the_opt_outs_restore_the_defaults():
    status, faults = run_child()
    assert status.startswith("freed memory kept for reuse")
    # Reused memory is already mapped: a handful of faults per round at most (measured 0).
    # With glibc's defaults the 16 MB freed at the top of the heap exceed its trim threshold
    # (twice the 2 MB blocks) and go back to the kernel: about 4,096 faults every round.
    assert faults < 100
    status, faults = run_child(MINILSTM_MALLOC="system")
    assert status == "system defaults (MINILSTM_MALLOC=system)"
    assert faults > 2000
    status, faults = run_child(MALLOC_MMAP_THRESHOLD_="131072")     # the user's own setting wins
    assert status == "system defaults (MALLOC_MMAP_THRESHOLD_ set by the user)"
    assert faults > 2000


def test_status_is_reported_once_applied():
    import minilstm
    assert minilstm.malloc_status() == _malloc.keep_freed_memory()   # idempotent: applied once
    assert minilstm.malloc_status()


def test_benchmark_runs_both_settings_in_fresh_processes():
    """``benchmarks/bench_malloc.py`` at a tiny size: every contender under both settings, the
    status each child process reported, and a row per contender."""
    from conftest import REPO
    out = subprocess.run([sys.executable, str(REPO / "benchmarks" / "bench_malloc.py"), "--rounds", "1",
                          "--configs", "8,1"], capture_output=True, text=True, check=True).stdout
    assert "- glibc defaults: system defaults (MINILSTM_MALLOC=system)" in out
    rows = [line for line in out.splitlines() if line.startswith("| B=50 T=50 H=8 L=1 |")]
    assert rows and rows[0].split("|")[2].strip() == "minilstm"
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert float(cells[2]) > 0 and float(cells[3]) > 0 and cells[4].endswith("x")
