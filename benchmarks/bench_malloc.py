"""What keeping freed memory for reuse (``minilstm/_malloc.py``) does to training steps.

The setting is per process, so each measurement runs in a fresh process: minilstm's step (numba,
batch shards; the numpy build when numba is disabled) and PyTorch's (its default mode), on
torch-rnn's char LM as in ``bench_kernels.py``, once with the settings minilstm applies on
import and once with glibc's defaults
(``MINILSTM_MALLOC=system``). The two settings alternate over several rounds (the machine
drifts); the table gives the median over rounds of each process's median step time, and the
minor page faults per step.

    python benchmarks/bench_malloc.py [--rounds 3] [--configs 64,1 128,2 512,1]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (sets thread counts before numpy loads)

DEFAULT_CONFIGS = ["64,1", "64,2", "128,1", "128,2", "512,1"]
SETTINGS = {"kept": "default", "glibc defaults": "system"}    # label -> MINILSTM_MALLOC


def child(contender: str, configs: list) -> None:
    """In a fresh process: per config, median seconds per step and minor faults per step."""
    import bench_kernels as bk
    results = {}
    for config in configs:
        H, L = (int(v) for v in config.split(","))
        if contender == "torch":
            step, _ = bk.torch_contender(common.load_torch(), True, 50, 50, H, L)
        else:                  # numba when it is usable, else the numpy build (MINILSTM_DISABLE_JIT)
            backend = "numba" if bk.minilstm.core.numba_available() else "numpy"
            step, _ = bk.minilstm_contender(backend, 50, 50, H, L)
        for _ in range(3):
            step()                                  # warm: first allocations, caches
        repeats = 30 if H < 256 else 12
        before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        times = common.timed(step, repeats)
        faults = (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / repeats
        results[config] = {"seconds": common.median(times), "faults": faults}
    from minilstm import malloc_status
    print(json.dumps({"status": malloc_status(), "results": results}))


def run(contender: str, setting: str, configs: list) -> dict:
    env = {**os.environ, "MINILSTM_MALLOC": setting}
    out = subprocess.run([sys.executable, __file__, "--child", contender, "--configs", *configs],
                         env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{contender} with MINILSTM_MALLOC={setting} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="alternation rounds (default 3)")
    parser.add_argument("--configs", nargs="+", default=DEFAULT_CONFIGS, metavar="H,L",
                        help="hidden size and layers, B=50 T=50 (default: %(default)s)")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.configs)
        return
    contenders = ["minilstm"] + (["torch"] if common.load_torch() is not None else [])
    runs = {(c, label): [] for c in contenders for label in SETTINGS}
    statuses = {}
    for _ in range(args.rounds):
        for contender in contenders:
            for label, setting in SETTINGS.items():
                result = run(contender, setting, args.configs)
                statuses[label] = result["status"]
                runs[contender, label].append(result["results"])
    print(common.machine_summary().rsplit("; malloc:", 1)[0] + "\n")
    for label, status in statuses.items():
        print(f"- {label}: {status}")
    print(f"\nMedian over {args.rounds} alternated rounds of each process's median step (ms), and "
          "minor page faults per step:\n")
    rows = []
    for config in args.configs:
        H, L = config.split(",")
        for contender in contenders:
            seconds, faults = ([common.median([r[config][key] for r in runs[contender, label]])
                                for label in SETTINGS] for key in ("seconds", "faults"))
            rows.append([f"B=50 T=50 H={H} L={L}", contender, f"{1e3 * seconds[0]:.2f}",
                         f"{1e3 * seconds[1]:.2f}", f"{seconds[1] / seconds[0]:.2f}x",
                         f"{faults[0]:,.0f}", f"{faults[1]:,.0f}"])
    print(common.markdown_table(["config", "contender", "ms, kept", "ms, glibc defaults",
                                 "speed-up", "faults, kept", "faults, glibc defaults"], rows))


if __name__ == "__main__":
    main()
