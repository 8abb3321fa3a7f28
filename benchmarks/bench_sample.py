"""Generation speed: characters per second at batch 1, minilstm (numba, numpy) against PyTorch.

Protocol: a character model (65 symbols, embedding 65 -> H, L LSTM layers of H units), a
100-character prompt, then 2,000 sampled characters at temperature 1, for H in {128, 512} and
L in {1, 2}. The PyTorch contender is the usual generation loop: the prompt through nn.LSTM in
one call, then one nn.LSTM step per character carrying (h, c), linear, softmax and
torch.multinomial, under torch.inference_mode() with 2 threads; we take the faster of its
default and ``torch.backends.mkldnn.enabled = False``. Contenders alternate (A B C A B C ...)
and we report medians.

Every character reads every weight once (at H=512, L=2 about 12.1 MB in float32), so how fast
the weights can be read bounds any batch-1 sampler. The script measures that bound per model:
where the weights fit in the last-level cache, as the time BLAS's matrix-vector product (numpy's,
with the benchmark's threads) takes over a matrix of the same bytes, already in cache; where they
do not, as memory read bandwidth / bytes. It reports the bound and how close minilstm comes.

    python benchmarks/bench_sample.py [--quick]
"""
from __future__ import annotations

import common  # noqa: F401  (first: sets the thread count before numpy loads)

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

import minilstm
from minilstm.data import CharVocab
from minilstm.model import LanguageModel, ModelConfig
from minilstm.sample import SampleConfig, Sampler, default_threads

SIZES = [(128, 1), (128, 2), (512, 1), (512, 2)]
PROMPT, LENGTH = 100, 2000


def vocabulary():
    symbols = "\n !$&',-.3:;?" + "".join(chr(c) for c in range(65, 91)) + "".join(chr(c) for c in range(97, 123))
    return CharVocab.build(symbols)          # the 65 symbols of tiny Shakespeare


def minilstm_contender(backend, H, L, vocab, prompt):
    model = LanguageModel(ModelConfig(vocab_size=len(vocab), embedding_dim=H, hidden_sizes=(H,) * L))
    sampler = Sampler(model, vocab)
    cfg = SampleConfig(prompt=prompt, length=LENGTH, seed=0, chunk=LENGTH)

    def run():
        with minilstm.use_backend(backend):
            sampler.generate(cfg)
    with minilstm.use_backend(backend):      # compile (numba) outside the timing
        sampler.generate(SampleConfig(prompt=prompt[:5], length=5))
    return run


def torch_contender(torch, mkldnn, H, L, prompt_ids):
    model = common.build_torch_char_lm(torch, 65, H, H, L).eval()
    prompt = torch.as_tensor(prompt_ids, dtype=torch.long).reshape(-1, 1)
    generator = torch.Generator().manual_seed(0)

    def run():
        torch.backends.mkldnn.enabled = mkldnn
        with torch.inference_mode():
            logits, state = model(prompt)
            for _ in range(LENGTH):
                probs = torch.softmax(logits[-1, 0], dim=-1)
                token = torch.multinomial(probs, 1, generator=generator)
                logits, state = model(token.reshape(1, 1), state)
    run()
    return run


def last_level_cache_bytes() -> int:
    """Size of the largest CPU cache Linux reports (0 when unknown)."""
    sizes = []
    for path in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*/size"):
        text = path.read_text().strip()
        scale = {"K": 2**10, "M": 2**20, "G": 2**30}.get(text[-1:], 1)
        sizes.append(int(text.rstrip("KMG")) * scale)
    return max(sizes, default=0)


def read_bandwidth_gbs(threads: int) -> float:
    """Streaming read bandwidth with ``threads`` threads (NumPy sums of equal slices, which
    release the GIL) over a float32 array twice the last-level cache (at least 256 MB, at most
    2 GB), best of 5."""
    nbytes = min(max(2 * last_level_cache_bytes(), 256 * 2**20), 2 * 2**30)
    a = np.ones(nbytes // 4, dtype=np.float32)
    parts = np.array_split(a, threads)
    with ThreadPoolExecutor(threads) as pool:
        best = min(_time(lambda: list(pool.map(np.sum, parts))) for _ in range(5))
    return a.nbytes / best / 1e9


def _time(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def cached_read_seconds(nbytes: int, min_seconds: float = 0.2) -> float:
    """Median seconds of one BLAS matrix-vector product over ``nbytes`` of float32 weights (a
    (rows, 1024) matrix times a vector), repeated on the same matrix so that, where it fits, it is
    read from cache as a sampler's weights are. A tuned product that reads every weight once:
    what a batch-1 step's products cost at best, summed into one call."""
    M = np.ones((max(nbytes // 4096, 1), 1024), dtype=np.float32)
    x, y = np.ones(1024, dtype=np.float32), np.empty(M.shape[0], dtype=np.float32)
    np.dot(M, x, y)
    reps = max(int(min_seconds / max(_time(lambda: np.dot(M, x, y)), 1e-7)), 10)
    return common.median([_time(lambda: [np.dot(M, x, y) for _ in range(reps)]) / reps for _ in range(5)])


def weight_bytes_per_char(H, L, V=65):
    """float32 bytes read per generated character: every Wh, every Wx above the first layer
    (the first layer's input is one row of its table), the output layer and one table row."""
    return 4 * (L * H * 4 * H + (L - 1) * H * 4 * H + H * V + 4 * H)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="H=128 only")
    parser.add_argument("--passes", type=int, default=3)
    args = parser.parse_args()
    torch = common.load_torch()
    vocab = vocabulary()
    rng = np.random.default_rng(0)
    prompt_ids = rng.integers(0, len(vocab), size=PROMPT)
    prompt = vocab.decode(prompt_ids)
    sizes = SIZES[:2] if args.quick else SIZES
    print(f"# minilstm generation benchmark\n\n{common.machine_summary()}\n")
    with minilstm.use_backend("numba" if minilstm.core.numba_available() else "numpy"):
        threads = default_threads(LanguageModel(ModelConfig(vocab_size=len(vocab), hidden_sizes=(512,))))
    bandwidth = read_bandwidth_gbs(threads)
    cache = last_level_cache_bytes()
    rows = []
    for H, L in sizes:
        contenders = {}
        for backend in (["numba"] if minilstm.core.numba_available() else []) + ["numpy"]:
            contenders[backend] = minilstm_contender(backend, H, L, vocab, prompt)
        if torch is not None:
            contenders["torch"] = torch_contender(torch, True, H, L, prompt_ids)
            contenders["torch-no-onednn"] = torch_contender(torch, False, H, L, prompt_ids)
        times = {k: common.median(v) for k, v in common.alternate(contenders, args.passes, 1).items()}
        speed = {k: LENGTH / t for k, t in times.items()}
        ours = speed.get("numba", speed["numpy"])
        best_torch = max((v for k, v in speed.items() if k.startswith("torch")), default=None)
        nbytes = weight_bytes_per_char(H, L)
        in_cache = nbytes <= cache
        bound = 1.0 / cached_read_seconds(nbytes) if in_cache else bandwidth * 1e9 / nbytes
        rows.append([f"H={H} L={L}", f"{speed.get('numba', float('nan')):,.0f}", f"{speed['numpy']:,.0f}",
                     f"{best_torch:,.0f}" if best_torch else "n/a",
                     f"{ours / best_torch:.1f}x" if best_torch else "n/a",
                     f"{nbytes / 2**20:.1f}", "cache (BLAS matvec)" if in_cache else "memory",
                     f"{bound:,.0f}", f"{ours / bound:.0%}"])
        print(f"  measured H={H} L={L}", file=sys.stderr, flush=True)
    print(f"Characters per second, batch 1, {LENGTH:,} characters after a {PROMPT}-character prompt "
          f"(medians of {args.passes}). Last-level cache {cache / 2**20:.0f} MB; memory read "
          f"bandwidth with {threads} thread(s), as the numba sampler uses at H=512: "
          f"{bandwidth:.1f} GB/s.\n")
    print(common.markdown_table(
        ["model", "minilstm numba", "minilstm numpy", "PyTorch (best mode)", "minilstm / PyTorch",
         "weights read per char (MB)", "read from", "read bound (chars/s)", "numba vs bound"], rows))
    print("\nThe read bound is what a sampler that does nothing but read every weight once per "
          "character could reach: where the weights fit in the last-level cache, 1 / the time of "
          "one BLAS matrix-vector product over the same number of bytes (numpy's BLAS, "
          f"{common.THREADS} thread(s), matrix already in cache); where they do not, memory read "
          "bandwidth / bytes per character.")


if __name__ == "__main__":
    main()
