"""Training-step speed of minilstm (numba and numpy backends) against PyTorch, torch-rnn style.

The workload is torch-rnn's benchmark: a character language model (embedding 65 -> H, L LSTM
layers of H units, linear H -> 65, softmax cross-entropy, one Adam step), batch B=50, T=50,
H in {64, 128, 256, 512}, L in {1, 2, 3}, plus B=64, T=100, H=512, L=2. Every contender runs in
this one process, alternated A B C A B C over several passes (the machine drifts); in each
pass a contender runs back to back for at least ``--burst`` seconds, as steps do in training,
and we report the median call. PyTorch gets the faster of its default (oneDNN's fused LSTM) and
``torch.backends.mkldnn.enabled = False``, per configuration.

minilstm's step is the library's own ``minilstm.train.train_step`` (forward, backward, global
norm, Adam) on ``minilstm.model.LanguageModel``: nothing here re-implements the loop.

    python benchmarks/bench_kernels.py            # the whole grid, Markdown tables on stdout
    python benchmarks/bench_kernels.py --quick    # a subset, under a minute
"""
from __future__ import annotations

import common  # noqa: F401  (first: sets the thread count before numpy loads)

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

import minilstm
import minilstm.parallel
from minilstm.model import LanguageModel, ModelConfig
from minilstm.optimizers import make_optimizer
from minilstm.train import train_step

V = 65
GRID = [(50, 50, H, L) for H in (64, 128, 256, 512) for L in (1, 2, 3)] + [(64, 100, 512, 2)]
QUICK = [(50, 50, 64, 1), (50, 50, 128, 2), (50, 50, 512, 1)]


def batch(B, T, seed=0):
    rng = np.random.default_rng(seed)
    ids = rng.integers(0, V, size=(B, T + 1))
    return ids[:, :-1], ids[:, 1:]


def minilstm_contender(backend, B, T, H, L, threads=None):
    model = LanguageModel(ModelConfig(vocab_size=V, embedding_dim=H, hidden_sizes=(H,) * L))
    model.threads = threads
    optimizer = make_optimizer("adam", model.params)
    ids, targets = batch(B, T)

    def step():
        with minilstm.use_backend(backend):
            train_step(model, optimizer, ids, targets, lr=2e-3)

    def forward():
        with minilstm.use_backend(backend):
            model.eval().forward(ids)
            model.train()

    step()          # compile (numba) and warm the caches; never timed
    forward()
    return step, forward


def torch_contender(torch, mkldnn, B, T, H, L, seed=0):
    model = common.build_torch_char_lm(torch, V, H, H, L)
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
    ids, targets = (torch.from_numpy(np.ascontiguousarray(a.T)) for a in batch(B, T, seed))
    cross_entropy = torch.nn.functional.cross_entropy

    def step():
        torch.backends.mkldnn.enabled = mkldnn
        optimizer.zero_grad(set_to_none=True)
        logits, _ = model(ids)
        cross_entropy(logits.reshape(-1, V), targets.reshape(-1)).backward()
        optimizer.step()

    def forward():
        torch.backends.mkldnn.enabled = mkldnn
        with torch.inference_mode():
            model(ids)

    step()
    forward()
    return step, forward


def measure_config(torch, B, T, H, L, passes, repeats, burst):
    steps, forwards = {}, {}
    backends = ["numba", "numpy"] if minilstm.core.numba_available() else ["numpy"]
    for backend in backends:
        steps[backend], forwards[backend] = minilstm_contender(backend, B, T, H, L)
    if "numba" in backends:      # the same step unsharded: BLAS's threads share each product
        steps["numba-1"], forwards["numba-1"] = minilstm_contender("numba", B, T, H, L, threads=1)
    if torch is not None:
        for mkldnn in (True, False):
            name = "torch" if mkldnn else "torch-no-onednn"
            steps[name], forwards[name] = torch_contender(torch, mkldnn, B, T, H, L)
    step_times = {k: common.median(v) for k, v in common.alternate(steps, passes, repeats, min_seconds=burst).items()}
    forward_times = {k: common.median(v)
                     for k, v in common.alternate(forwards, passes, repeats, min_seconds=burst).items()}
    if torch is not None:
        torch.backends.mkldnn.enabled = True
    return step_times, forward_times


def best_torch(times):
    candidates = {k: v for k, v in times.items() if k.startswith("torch")}
    if not candidates:
        return None, None
    name = min(candidates, key=candidates.get)
    return candidates[name], ("default" if name == "torch" else "oneDNN off")


# ----------------------------------------------------------------------------- subprocesses

def child_memory(contender, B, T, H, L):
    """Run in a fresh process: resident memory before the first step and the peak after two."""
    def rss_mb():
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    if contender == "torch":
        torch = common.load_torch()
        step, _ = torch_contender(torch, True, B, T, H, L)
    else:
        step, _ = minilstm_contender(contender, B, T, H, L)
    before = rss_mb()
    step()
    step()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"before_mb": before, "peak_mb": peak}))


def child_startup():
    """Run in a fresh process: seconds for `import minilstm` and for the first training step."""
    start = time.perf_counter()
    import minilstm as _  # noqa: F401  (already imported at module level; re-import is free)
    imported = time.perf_counter()
    model = LanguageModel(ModelConfig(vocab_size=V, embedding_dim=128, hidden_sizes=(128, 128)))
    optimizer = make_optimizer("adam", model.params)
    ids, targets = batch(50, 50)
    train_step(model, optimizer, ids, targets, lr=2e-3)
    print(json.dumps({"first_step_s": time.perf_counter() - imported, "import_s": imported - start}))


def run_child(args, env=None):
    """Run this script in a fresh process with ``args``; its last stdout line is JSON."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, __file__] + args, capture_output=True, text=True,
                         env={**os.environ, **(env or {})})
    if out.returncode != 0:
        raise RuntimeError(f"benchmark subprocess {args} failed:\n{out.stderr[-2000:]}")
    total = time.perf_counter() - start
    return json.loads(out.stdout.strip().splitlines()[-1]), total


def startup_report():
    """Cold cache (empty NUMBA_CACHE_DIR: everything compiles) then warm (cached code)."""
    rows = []
    with tempfile.TemporaryDirectory() as cache:
        for label in ("cold cache", "warm cache"):
            result, total = run_child(["--child-startup"], {"NUMBA_CACHE_DIR": cache})
            rows.append([label, f"{total:.2f}", f"{result['first_step_s']:.2f}"])
    return common.markdown_table(
        ["numba cache", "process start to first step done (s)", "first step incl. compile/load (s)"], rows)


# ----------------------------------------------------------------------------- main

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="three configurations, under a minute")
    parser.add_argument("--passes", type=int, default=None, help="alternation rounds (default 3; 2 with --quick)")
    parser.add_argument("--repeats", type=int, default=2, help="timed calls per contender per round, at least")
    parser.add_argument("--burst", type=float, default=None,
                        help="seconds of back-to-back timed calls per contender per round, at least "
                             "(default 0.3; 0.1 with --quick)")
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--json", help="also write the raw results to this file")
    parser.add_argument("--child-memory", nargs=5, help=argparse.SUPPRESS)
    parser.add_argument("--child-startup", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_memory:
        contender, *dims = args.child_memory
        return child_memory(contender, *map(int, dims))
    if args.child_startup:
        return child_startup()

    if args.burst is None:
        args.burst = 0.1 if args.quick else 0.3
    if args.passes is None:
        args.passes = 2 if args.quick else 3
    torch = common.load_torch()
    configs = QUICK if args.quick else GRID
    measure_memory = not (args.quick or args.no_memory)
    print(f"# minilstm training-step benchmark\n\n{common.machine_summary()}\n")
    step_rows, forward_rows, raw = [], [], []
    for B, T, H, L in configs:
        steps, forwards = measure_config(torch, B, T, H, L, args.passes, args.repeats, args.burst)
        flops = common.char_lm_flops(B, T, V, H, (H,) * L)
        torch_step, torch_kind = best_torch(steps)
        torch_fwd, _ = best_torch(forwards)
        ours = steps.get("numba", steps["numpy"])
        memory = {}
        if measure_memory:
            for contender in ["numba"] + (["torch"] if torch else []):
                if contender == "numba" and not minilstm.core.numba_available():
                    continue
                result, _ = run_child(["--child-memory", contender, str(B), str(T), str(H), str(L)])
                memory[contender] = result["peak_mb"] - result["before_mb"]
        fmt = lambda x: "n/a" if x is None else f"{x:.4f}"  # noqa: E731
        step_rows.append([
            f"B={B} T={T} H={H} L={L}", fmt(steps.get("numba")), fmt(steps.get("numba-1")), fmt(steps["numpy"]),
            f"{fmt(torch_step)} ({torch_kind})" if torch_step else "n/a",
            f"{torch_step / ours:.2f}x" if torch_step else "n/a",
            f"{B * T / ours:,.0f}", f"{flops / ours / 1e9:.1f}",
            f"{flops / torch_step / 1e9:.1f}" if torch_step else "n/a",
            f"{memory['numba']:.0f}" if "numba" in memory else "n/a",
            f"{memory['torch']:.0f}" if "torch" in memory else "n/a"])
        ours_fwd = forwards.get("numba", forwards["numpy"])
        forward_rows.append([f"B={B} T={T} H={H} L={L}", fmt(forwards.get("numba")), fmt(forwards.get("numba-1")),
                             fmt(forwards["numpy"]),
                             fmt(torch_fwd), f"{torch_fwd / ours_fwd:.2f}x" if torch_fwd else "n/a"])
        raw.append(dict(B=B, T=T, H=H, L=L, step=steps, forward=forwards, flops=flops, memory_mb=memory))
        print(f"  measured B={B} T={T} H={H} L={L}: " + " | ".join(step_rows[-1]), file=sys.stderr, flush=True)

    print("## Training step (forward + backward + clip norm + Adam), median seconds\n")
    print(common.markdown_table(
        ["config", "minilstm numba", "minilstm numba, 1 shard", "minilstm numpy", "PyTorch (best mode)",
         "PyTorch / minilstm", "minilstm chars/s", "minilstm GFLOP/s", "PyTorch GFLOP/s", "minilstm peak MB", "PyTorch peak MB"],
        step_rows))
    print(f"\nEach contender ran {args.passes} rounds of back-to-back calls (at least {args.repeats} calls "
          f"and {args.burst:g} s a round, after a pause and one untimed call); the median call is shown. "
          "GFLOP/s counts 2 FLOPs per multiply-add of the products PyTorch performs (see "
          "`char_lm_flops`); peak MB is resident memory added by two training steps in a fresh process. "
          f"minilstm numba cuts the batch into shards, one thread each (`minilstm.parallel`; here "
          f"up to {minilstm.parallel.available_threads()} shards of at least "
          f"{minilstm.parallel.MIN_SHARD_ROWS} sequences; where `parallel.team_pays`, at "
          f"H >= {minilstm.parallel.TEAM_MIN_H} with thin shards, the shards' threads run each LSTM "
          "layer's time loop together, each its block of hidden units); '1 shard' is the same step on "
          "the whole batch with BLAS's threads sharing each product.\n")
    print("## Forward only (inference mode), median seconds\n")
    print(common.markdown_table(["config", "minilstm numba", "minilstm numba, 1 shard", "minilstm numpy",
                                 "PyTorch (best mode)", "PyTorch / minilstm"], forward_rows))
    if minilstm.core.numba_available():
        print("\n## Start-up: import, compile or load compiled code, one step (B=50 T=50 H=128 L=2)\n")
        print(startup_report())
    if args.json:
        with open(args.json, "w") as f:
            json.dump(raw, f, indent=1)


if __name__ == "__main__":
    main()
