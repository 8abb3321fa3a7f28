"""Peak memory and time of loading a large text: read + vocabulary + encode (``load_corpus``).

A synthetic text of ``--mb`` megabytes (default 100) is written to a temporary directory, then
each case is measured in fresh subprocesses so no measurement inherits another's allocations:

* ``rss``: the peak resident set during the load minus the resident set just before it — what
  the operating system sees, interpreter overheads included — and the time. On Linux the peak
  (``VmHWM``) is reset before the load through ``/proc/self/clear_refs``; elsewhere the growth
  of ``ru_maxrss`` is reported, which misses a load whose peak stays below the imports' peak;
* ``traced``: the ``tracemalloc`` peak of Python and NumPy allocations during the load alone
  (run separately because tracing slows the word tokenizer down several times).

Cases: ``ascii-char`` (English-like words, character vocabulary), ``ascii-word`` (the same file,
word vocabulary), ``cjk-char`` (Chinese characters, 3 UTF-8 bytes each, plus a few emoji).

    python benchmarks/data_memory.py                    # 100 MB, all cases
    python benchmarks/data_memory.py --mb 20 --cases ascii-char
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CASES = {"ascii-char": ("ascii", "char"), "ascii-word": ("ascii", "word"), "cjk-char": ("cjk", "char")}
BLOCK = 1 << 20   # symbols generated per step


def _zipf_choice(rng, n_symbols: int, size: int) -> np.ndarray:
    p = 1.0 / np.arange(1, n_symbols + 1)
    return rng.choice(n_symbols, size=size, p=p / p.sum())


def write_synthetic(path: Path, kind: str, size_bytes: int, seed: int = 0) -> None:
    """A deterministic text of exactly ``size_bytes`` UTF-8 bytes."""
    rng = np.random.default_rng(seed)
    if kind == "ascii":
        letters = np.array(list("etaoinshrdlcumwfgypbvkjxqz"))
        words = ["".join(rng.choice(letters, rng.integers(1, 10))) for _ in range(5000)]
        symbols = np.array(words + ["the", "and", "I", "you"] + [w.capitalize() for w in words[:500]], dtype=object)
        separators = np.array([" "] * 14 + [", ", ".\n", ";\n", "!\n", "?\n"], dtype=object)
    else:
        symbols = np.array([chr(0x4E00 + i) for i in range(4000)] + ["🎉", "🌙"], dtype=object)
        separators = np.array([""] * 5 + ["，"] + ["。\n"], dtype=object)
    written = 0
    with open(path, "wb") as handle:
        while written < size_bytes:
            chosen = symbols[_zipf_choice(rng, len(symbols), BLOCK)]
            seps = separators[rng.integers(0, len(separators), BLOCK)]
            block = "".join((chosen + seps).tolist()).encode("utf-8")
            if written + len(block) > size_bytes:   # end on a character boundary
                block = block[:size_bytes - written].decode("utf-8", "ignore").encode("utf-8")
                block += b" " * (size_bytes - written - len(block))
            handle.write(block)
            written += len(block)


def _status_bytes(field: str) -> int | None:
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) * 1024   # reported in kB
    except OSError:
        pass
    return None


def _reset_peak_rss() -> bool:
    """Reset VmHWM to the current resident set (Linux >= 4.0); False where that is impossible."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as handle:
            handle.write("5")
        return _status_bytes("VmHWM") is not None
    except OSError:
        return False


def child(path: str, level: str, mode: str) -> None:
    """Runs in a subprocess: load the corpus once and print one JSON line of figures."""
    import tracemalloc

    from minilstm.data import load_corpus
    exact = _reset_peak_rss()
    baseline = _status_bytes("VmRSS") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if mode == "traced":
        tracemalloc.start()
    start = time.perf_counter()
    corpus = load_corpus(path, level=level)
    seconds = time.perf_counter() - start
    figures = {"seconds": seconds, "ids_bytes": int(corpus.ids.nbytes), "ids_dtype": str(corpus.ids.dtype),
               "vocab": corpus.vocab.size, "tokens": len(corpus.ids)}
    if mode == "traced":
        figures["traced_peak"] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    else:
        peak = _status_bytes("VmHWM") if exact else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        figures["rss_growth"], figures["rss_exact"] = peak - baseline, exact
    print(json.dumps(figures))


def measure(path: Path, level: str, mode: str) -> dict:
    command = [sys.executable, __file__, "--child", str(path), level, mode]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=float, default=100.0, help="text size in megabytes (10^6 bytes)")
    parser.add_argument("--cases", nargs="+", choices=sorted(CASES), default=list(CASES))
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    size = int(args.mb * 1e6)
    with tempfile.TemporaryDirectory(prefix="minilstm-data-memory-") as tmp:
        files = {}
        print("| case | file MB | tokens | V | ids dtype | ids MB | peak RSS growth MB (x file) | "
              "tracemalloc peak MB (x file) | load s | MB/s |")
        print("|---|---:|---:|---:|---|---:|---:|---:|---:|---:|")
        for case in args.cases:
            kind, level = CASES[case]
            if kind not in files:
                files[kind] = Path(tmp) / f"{kind}.txt"
                write_synthetic(files[kind], kind, size)
            rss = measure(files[kind], level, "rss")
            traced = measure(files[kind], level, "traced")
            mb = size / 1e6
            if not rss["rss_exact"]:
                print("(peak RSS from ru_maxrss: a lower bound)")
            print(f"| {case} | {mb:.0f} | {rss['tokens']:,} | {rss['vocab']:,} | {rss['ids_dtype']} | "
                  f"{rss['ids_bytes'] / 1e6:.1f} | {rss['rss_growth'] / 1e6:.1f} ({rss['rss_growth'] / size:.2f}) | "
                  f"{traced['traced_peak'] / 1e6:.1f} ({traced['traced_peak'] / size:.2f}) | "
                  f"{rss['seconds']:.2f} | {mb / rss['seconds']:.0f} |", flush=True)


if __name__ == "__main__":
    main()
