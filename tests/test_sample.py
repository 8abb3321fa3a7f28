"""The sampler: exactness against the model, identical output across builds and processes,
the decoding rules, constraints, streaming, and input checks."""
import os
import time
import subprocess
import sys
import tracemalloc

import numpy as np
import pytest
from scipy import stats

import minilstm
from minilstm import core
from minilstm.core.decode import choose_token
from minilstm.core.rng import seed_state
from minilstm.core import matvec, step
from minilstm.core.step import forward_token
from minilstm.data import TANG_SPECIALS, CharVocab, UnknownSymbolError
from minilstm.model import LanguageModel, ModelConfig
from minilstm.model_io import save_model
from minilstm import sample
from minilstm.sample import (SampleConfig, Sampler, SamplingError, block_major_columns, default_threads,
                             plan_model, sample_text, team_edges)
from minilstm.sample_team import SampleTeam

needs_numba = pytest.mark.skipif(not core.numba_available(), reason="compares the numba build with the numpy build")

VARIANTS = {
    "embedding": dict(hidden_sizes=(6,)),
    "onehot-2-layers": dict(input_mode="onehot", hidden_sizes=(5, 7)),
    "head-batch-norm": dict(hidden_sizes=(6, 4), head_hidden=5, head_norm="batch"),
    "head-layer-norm-tied": dict(hidden_sizes=(6,), head_hidden=3, head_norm="layer", tie_weights=True),
    # wider than a column panel (64): whole panels and a narrower last one in every product
    "wide-2-layers-head": dict(hidden_sizes=(20, 36), head_hidden=70, head_norm="layer"),
}


def make_model(vocab, dtype="float32", scale=0.5, **overrides):
    cfg = dict(vocab_size=len(vocab), embedding_dim=3, hidden_sizes=(6,), dtype=dtype, seed=1)
    cfg.update(overrides)
    model = LanguageModel(ModelConfig(**cfg))
    model.params.data[:] = np.random.default_rng(0).normal(size=model.num_parameters) * scale
    if model.buffers:
        model.buffers["head.norm.running_mean"][:] = 0.3
        model.buffers["head.norm.running_var"][:] = 2.0
    return model.eval()


@pytest.fixture
def vocab():
    return CharVocab.build("abcdefghij \n.!")


def prime_logits(model, ids, threads=1):
    """Logits, h and c after priming on ids, by a team of ``threads`` threads."""
    sampler = Sampler(model, vocab_of(model))
    sampler.plan = plan_model(model, threads=threads)
    with SampleTeam(threads) as team:
        h, c, logits = sampler._prime(np.asarray(ids, np.int64), team)
    return logits[0], h, c


def vocab_of(model):
    return CharVocab.build("abcdefghij \n.!"[:model.config.vocab_size])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sampler_computes_the_models_function(vocab, variant, dtype):
    model = make_model(vocab, dtype, **VARIANTS[variant])
    ids = vocab.encode("abc dej\nhi!")
    expected = model.forward(ids.reshape(1, -1))[0][0, -1]
    logits, _, _ = prime_logits(model, ids)
    # float64: the same maths, other summation order (1e-12); float32: the sampler's fixed order
    # and rational tanh against the training kernels, a few float32 ulps of O(1) logits
    tol = 1e-12 if dtype == "float64" else 2e-6
    np.testing.assert_allclose(logits, expected, rtol=0, atol=tol)


@needs_numba
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_both_builds_give_bit_identical_logits(vocab, variant, dtype):
    model = make_model(vocab, dtype, **VARIANTS[variant])
    ids = vocab.encode("abc dej\nhi!")
    results = []
    for backend in ("numba", "numpy"):
        with minilstm.use_backend(backend):
            results.append(prime_logits(model, ids))
    for a, b in zip(results[0], results[1]):
        if dtype == "float32":
            np.testing.assert_array_equal(a, b)
        else:        # NumPy's and libm's float64 exp may differ in the last bit (1e-16); through
            # 11 steps of up to two layers and a dense head such differences grew to 1.5e-15
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-13)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("K, N", [(37, 24), (37, 64), (37, 65), (5, 100), (9, 129), (37, 200), (64, 2048)])
def test_column_panel_products_are_bit_identical(K, N, dtype):
    """matvec_panels on the column-panel layout, whole or from a panel edge, against matvec_rows
    on the row-major matrix, in both builds: the same additions in the same order, so equality
    is exact, with whole panels (64 columns) and a narrower last one."""
    rng = np.random.default_rng(K * N)
    x = rng.normal(size=(3, K)).astype(dtype)
    W = rng.normal(size=(K, N)).astype(dtype)
    y0 = rng.normal(size=(3, N)).astype(dtype)
    panels = matvec.column_panels(W)
    assert panels.shape == (K * N,) and sorted(panels) == sorted(W.ravel())
    lo = matvec.PANEL if N > matvec.PANEL else 0      # from the second panel
    builds = ("numba", "numpy") if core.numba_available() else ("numpy",)
    for backend in builds:
        with minilstm.use_backend(backend):
            expected, whole, part = y0.copy(), y0.copy(), y0[:, lo:].copy()
            matvec.matvec_rows(x, W, expected)
            matvec.matvec_panels(x, panels, 0, N, whole, 0)
            matvec.matvec_panels(x, panels, lo, N, part, 0)
        np.testing.assert_array_equal(whole, expected, err_msg=f"{backend}, K={K}, N={N}")
        np.testing.assert_array_equal(part, expected[:, lo:], err_msg=f"{backend}, from column {lo}")
    loops = y0.copy()                   # the numba build's sources, interpreted: the same sums
    matvec.matvec_panels_loops(x, panels, 0, N, loops, 0)
    np.testing.assert_array_equal(loops, expected)
    if N == matvec.PANEL + 1:           # a whole panel and a last panel of one column
        pair = y0.copy()
        matvec.matvec_panel_column_loops(x, panels[:K * matvec.PANEL].reshape(K, matvec.PANEL),
                                         panels[K * matvec.PANEL:], pair, 0)
        np.testing.assert_array_equal(pair, expected)
    if N >= matvec.PANEL:
        first = y0.copy()
        matvec.matvec_panel_loops(x, panels[:K * matvec.PANEL].reshape(K, matvec.PANEL), first, 0)
        np.testing.assert_array_equal(first[:, :matvec.PANEL], expected[:, :matvec.PANEL])
        np.testing.assert_array_equal(first[:, matvec.PANEL:], y0[:, matvec.PANEL:])
    # and the sums are the product: float32 sums of K terms of O(1), a few ulps of O(sqrt K)
    np.testing.assert_allclose(expected, y0 + x.astype(np.float64) @ W, rtol=0, atol=1e-4 if dtype == "float32" else 1e-12)


@pytest.mark.parametrize("parts, lead", [(2, 0), (3, 0), (5, 0), (2, 16)])
@pytest.mark.parametrize("H", [24, 80])
def test_layer_blocks_are_bit_identical_to_one_block(parts, lead, H):
    """A layer step with the hidden units cut into blocks (weights in block-major column order,
    each block's recurrent part, then its input, bias and cell) leaves exactly the state that
    one block leaves with the model's own layout, from a token lookup and from a layer below,
    in both builds; blocks come out empty where parts * 16 > H."""
    rng = np.random.default_rng(parts * H + lead)
    n, D, V = 3, 20, 7
    f32 = lambda *shape: rng.normal(size=shape).astype(np.float32)   # noqa: E731
    table, Wx, Wh, b = f32(V, 4 * H), f32(D, 4 * H), f32(H, 4 * H) * 0.3, f32(4 * H)
    below, h0, c0 = f32(n, D), f32(n, H + 5), f32(n, H + 5)   # 5 state columns of another layer
    tokens = rng.integers(0, V, size=n)
    edges = team_edges(H, parts, lead)
    order = block_major_columns(edges)
    assert edges[0] == 0 and edges[-1] == H and (np.diff(edges) >= 0).all() and (edges % 16 == 0)[:-1].all()
    assert sorted(order) == list(range(4 * H))               # a permutation of the columns
    assert (block_major_columns(team_edges(H, 1)) == np.arange(4 * H)).all()
    builds = ("numba", "numpy") if core.numba_available() else ("numpy",)
    for backend in builds:
        for source, W_in in ((step.INPUT_LOOKUP, table), (step.INPUT_PRODUCT, Wx)):
            states = []
            for cuts, cols in ((np.array([0, H]), np.arange(4 * H)), (edges, order)):
                h, c = h0.copy(), c0.copy()
                h_next = np.full_like(h0, np.nan)               # every unit must be written
                xw, u = np.empty(n * 4 * H, np.float32), np.empty(n * 4 * H, np.float32)
                flat_in = (W_in[:, cols].ravel() if source == step.INPUT_LOOKUP   # row-major table
                           else matvec.column_panels(W_in[:, cols]))
                with minilstm.use_backend(backend):
                    for lo, hi in zip(cuts[:-1], cuts[1:]):
                        xw_p = xw[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo)))
                        step.recurrent_block(h[:, 5:], matvec.column_panels(Wh[:, cols]), lo, hi, xw_p)
                        step.finish_block(source, tokens, below, flat_in, b[cols].copy(), lo, hi, xw_p,
                                          u[n * 4 * lo:n * 4 * hi].reshape((n, 4 * (hi - lo))), c, h_next, 5)
                states.append((h_next, c))
            (h1, c1), (hp, cp) = states
            assert np.isfinite(h1[:, 5:]).all()                 # the step wrote every unit
            np.testing.assert_array_equal(hp, h1, err_msg=f"{backend}, source {source}")
            np.testing.assert_array_equal(cp, c1, err_msg=f"{backend}, source {source}")
            np.testing.assert_array_equal(c1[:, :5], c0[:, :5])   # other layers' columns kept
            assert np.isnan(h1[:, :5]).all()


@pytest.mark.parametrize("backend", ["numba", "numpy"])
@pytest.mark.parametrize("dtype, n", [("float32", 1), ("float64", 3)])
def test_threaded_plan_gives_the_same_text(vocab, backend, dtype, n):
    """A team of threads, each running its block of every layer and meeting the others in
    compiled loops, gives the same text as one thread, for several sequences at once too, and
    with member 0's block shorter (it also chooses the tokens); the numpy build runs the same
    plans' blocks on one thread."""
    if backend == "numba" and not core.numba_available():
        pytest.skip("numba is not installed")
    model = make_model(vocab, dtype=dtype, hidden_sizes=(40, 24))
    cfg = SampleConfig(prompt="abc ", length=150, seed=5, top_k=5, n=n, chunk=40)
    texts = {}
    with minilstm.use_backend(backend):
        for threads, lead in ((1, 0), (2, 0), (2, 16), (3, 0)):
            sampler = Sampler(model, vocab)
            sampler.plan = plan_model(model, threads=threads, lead=lead)
            assert sampler.plan.members == threads and sampler.plan.edges.shape == (2, threads + 1)
            texts[threads, lead] = sampler.generate(cfg)
            if n == 1:                                  # streamed in growing chunks: the same text
                assert "".join(sampler.stream(cfg)) == texts[threads, lead][0]
    assert len(set(map(tuple, texts.values()))) == 1
    assert len(texts[1, 0]) == n and len(texts[1, 0][0]) > 100


def test_priming_equals_feeding_tokens_one_at_a_time(vocab):
    model = make_model(vocab, hidden_sizes=(6, 5), head_hidden=4, head_norm="layer")
    ids = vocab.encode("abcabc ij!")
    logits, h, c = prime_logits(model, ids)
    builds = ("numba", "numpy") if core.numba_available() else ("numpy",)
    for backend in builds:                        # a team that primes together, compiled and
        with minilstm.use_backend(backend):       # interpreted (Python threads, the same meetings)
            for threads in (2, 3):
                team_logits, team_h, team_c = prime_logits(model, ids, threads)
                np.testing.assert_array_equal(team_logits, logits, err_msg=f"{backend}, {threads} threads")
                np.testing.assert_array_equal(team_h, h)
                np.testing.assert_array_equal(team_c, c)
    plan = plan_model(model, threads=2)           # two blocks per layer, run here in order
    h1, c1 = np.zeros_like(h), np.zeros_like(c)
    step_logits = np.zeros((1, len(vocab)), model.dtype)
    scratch = [np.empty(64, model.dtype) for _ in range(3)]
    for token in ids:
        h_next = np.zeros_like(h1)
        forward_token(plan.weights, plan.layers, plan.edges, plan.head, plan.eps, np.array([token]), h1,
                      h_next, c1, *scratch, step_logits)
        h1 = h_next
    np.testing.assert_array_equal(h1, h)          # bit for bit: the same operations in order
    np.testing.assert_array_equal(c1, c)
    np.testing.assert_array_equal(step_logits[0], logits)


@needs_numba
@pytest.mark.parametrize("settings", [dict(), dict(greedy=True), dict(top_k=3, temperature=0.7),
                                      dict(top_p=0.8, repetition_penalty=1.3, n=3),
                                      dict(beam=3, length=20)])
def test_same_seed_same_text_with_and_without_the_jit(vocab, settings):
    model = make_model(vocab, hidden_sizes=(8, 8))
    cfg = SampleConfig(**{"prompt": "abc ", "length": 120, "seed": 7, **settings})
    texts = {}
    for backend in ("numba", "numpy"):
        with minilstm.use_backend(backend):
            texts[backend] = Sampler(model, vocab).generate(cfg)
    assert texts["numba"] == texts["numpy"]
    assert len(texts["numba"][0]) > 0


def test_same_checkpoint_and_seed_in_two_processes(vocab, tmp_path):
    model = make_model(vocab, hidden_sizes=(8,))
    path = tmp_path / "m.ckpt"
    save_model(path, model, vocab)
    code = ("import sys; from minilstm.model_io import load_model; from minilstm.sample import Sampler, SampleConfig;"
            "m = load_model(sys.argv[1]); print(repr(Sampler(m.model, m.vocab).generate("
            "SampleConfig(prompt='ab', length=300, seed=11, top_p=0.9))[0]))")
    outputs = []
    for disable in ("0", "1"):
        env = dict(os.environ, MINILSTM_DISABLE_JIT=disable)
        result = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True,
                                env=env, timeout=600)
        assert result.returncode == 0, result.stderr
        outputs.append(result.stdout)
    assert outputs[0] == outputs[1] and len(outputs[0]) > 300


def test_sampling_follows_the_softmax_at_temperature_one():
    logits = np.array([2.0, 1.0, 0.5, 0.0, -1.0, -3.0], dtype=np.float32)
    probs = np.exp(logits - logits.max())
    probs /= probs.sum()
    draws = 20_000
    counts = np.zeros(6)
    state, p = seed_state(3), np.empty(6)
    allowed, seen = np.ones(6, bool), np.zeros(6, bool)
    for _ in range(draws):
        counts[choose_token(logits, allowed, seen, 1.0, 0, 1.0, False, 1.0, state, p)] += 1
    chi2 = ((counts - draws * probs) ** 2 / (draws * probs)).sum()
    # 5 degrees of freedom: P(chi2 > 20.5) = 0.001 for a correct sampler; a biased one (even
    # a 2% shift of mass between two tokens) lands far above it with 20,000 draws
    assert chi2 < stats.chi2.ppf(0.999, df=5), (chi2, counts / draws, probs)


def test_decoding_rules():
    logits = np.array([0.5, 3.0, 2.0, -1.0, 2.9], dtype=np.float32)
    allowed, seen, p = np.ones(5, bool), np.zeros(5, bool), np.empty(5)
    state = seed_state(0)
    pick = lambda **kw: choose_token(logits, kw.get("allowed", allowed), kw.get("seen", seen),  # noqa: E731
                                     kw.get("t", 1.0), kw.get("k", 0), kw.get("p", 1.0),
                                     kw.get("greedy", False), kw.get("penalty", 1.0), state, p)
    assert pick(greedy=True) == 1
    assert {pick(k=2) for _ in range(200)} == {1, 4}
    assert {pick(p=0.5) for _ in range(200)} <= {1, 4}         # 1 and 4 hold > 0.5 of the mass
    assert pick(t=1e-8) == 1                                    # vanishing temperature: argmax
    assert {pick(t=1e8) for _ in range(300)} == {0, 1, 2, 3, 4}  # huge temperature: near uniform
    assert pick(greedy=True, seen=np.array([0, 1, 0, 0, 0], bool), penalty=1.1) == 4
    assert pick(greedy=True, allowed=np.array([1, 0, 1, 1, 1], bool)) == 4
    nan = logits.copy()
    nan[2] = np.nan
    assert choose_token(nan, allowed, seen, 1.0, 0, 1.0, False, 1.0, state, p) == -1


def test_nan_logits_raise_instead_of_emitting(vocab):
    model = make_model(vocab)
    model.params["out.b"][3] = np.nan
    with pytest.raises(SamplingError, match="NaN or Inf"):
        Sampler(model, vocab).generate(SampleConfig(length=5))


def test_never_emits_padding_start_or_out_of_range():
    vocab = CharVocab.build("abc\n", specials=("pad", "start", "end", "unk"))
    model = make_model(vocab, scale=3.0)
    never = {vocab.specials[s] for s in ("pad", "start", "unk")}
    sampler = Sampler(model, vocab)
    for chunk in sampler.token_chunks(SampleConfig(length=400, n=4, temperature=5.0)):
        ids = chunk[chunk >= 0]
        assert ids.max() < len(vocab) and not (set(ids.tolist()) & never)


def test_stop_tokens_and_strings():
    vocab = CharVocab.build("ab\n", specials=TANG_SPECIALS)
    model = make_model(vocab, scale=2.0)
    sampler = Sampler(model, vocab)
    ids = []
    for chunk in sampler.token_chunks(SampleConfig(length=2000, stop=("<EOP>",), seed=1)):
        ids += chunk[0][chunk[0] >= 0].tolist()
    assert ids[-1] == vocab.specials["end"] and vocab.specials["end"] not in ids[:-1]
    text = sampler.generate(SampleConfig(length=2000, stop=("\n\n", "ba"), seed=2))[0]
    assert "\n\n" not in text and "ba" not in text


def test_acrostic_and_poem_shape():
    vocab = CharVocab.build("春夏秋冬山水花月风雨，。！", specials=TANG_SPECIALS)
    model = make_model(vocab, scale=1.0)
    sampler = Sampler(model, vocab)
    text = sampler.generate(SampleConfig(acrostic="春夏秋冬", length=400, seed=4, stop=("<EOP>",)))[0]
    lines = [line for line in text.replace("！", "。").split("。") if line]
    assert [line[0] for line in lines[:4]] == list("春夏秋冬")
    poem = sampler.generate(SampleConfig(poem_line=5, poem_lines=4, acrostic="山水", length=100, seed=5))[0]
    assert len(poem) == 4 * 6
    lines = [poem[k:k + 6] for k in range(0, 24, 6)]
    assert [line[-1] for line in lines] == ["，", "。", "，", "。"]
    assert all(ch not in "，。！" for line in lines for ch in line[:-1])
    assert poem[0] == "山" and poem[6] == "水"


def test_streaming_pieces_equal_the_whole_and_memory_stays_flat(vocab):
    model = make_model(vocab, hidden_sizes=(4,))
    sampler = Sampler(model, vocab)
    cfg = SampleConfig(prompt="ab", length=500, seed=9, chunk=37)
    assert "".join(sampler.stream(cfg)) == sampler.generate(cfg)[0]
    big = 1_000_000 if core.backend() == "numba" else 4_000      # the interpreted build is slow

    def peak(length):
        tracemalloc.start()
        total = sum(len(piece) for piece in sampler.stream(SampleConfig(length=length, chunk=4096)))
        _, top = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert total > 0
        return top
    # a 25x longer sample may not need more memory: pieces are yielded and dropped
    assert peak(big) < 1.5 * peak(big // 25) + 200_000


def test_beam_search_scores_at_least_as_well_as_greedy(vocab):
    model = make_model(vocab, hidden_sizes=(8,), scale=1.0)
    sampler = Sampler(model, vocab)
    length = 12

    def log_prob(text):
        ids = np.concatenate([sampler.encode_prompt("ab"), vocab.encode(text)])
        logits = model.forward(ids.reshape(1, -1))[0][0].astype(np.float64)
        logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
        return sum(logp[t, ids[t + 1]] for t in range(1, len(ids) - 1))
    greedy = sampler.generate(SampleConfig(prompt="ab", length=length, greedy=True))[0]
    beam = sampler.generate(SampleConfig(prompt="ab", length=length, beam=4, length_penalty=0.0))[0]
    assert len(beam) == len(greedy) == length
    assert log_prob(beam) >= log_prob(greedy) - 1e-5   # float32 logits: compare to 1e-5


@pytest.mark.parametrize("field,value,message", [
    ("temperature", 0.0, "temperature: got 0.0"),
    ("temperature", float("nan"), "temperature: got nan"),
    ("top_k", -1, "top_k: got -1"),
    ("top_p", 0.0, r"top_p: got 0.0, expected a number in \(0, 1\]"),
    ("top_p", 1.5, "top_p: got 1.5"),
    ("length", -5, "length: got -5, expected an integer >= 0"),
    ("n", 0, "n: got 0"),
    ("poem_line", 6, "poem_line: got 6"),
])
def test_bad_settings_are_refused(field, value, message):
    with pytest.raises(ValueError, match=message):
        SampleConfig(**{field: value})


def test_unknown_prompt_symbols(vocab):
    sampler = Sampler(make_model(vocab), vocab)
    with pytest.raises(UnknownSymbolError, match=r"prompt: 2 distinct symbol\(s\).*'Z'.*'Q'|prompt: 2 distinct symbol\(s\).*'Q'.*'Z'"):
        sampler.generate(SampleConfig(prompt="abZQ", length=3))
    assert len(sampler.generate(SampleConfig(prompt="abZQ", length=3, unknown="skip"))[0]) == 3


def test_empty_prompt_starts_from_the_start_token_or_a_newline(vocab):
    sampler = Sampler(make_model(vocab), vocab)
    assert sampler.encode_prompt("").tolist() == [vocab.id_of("\n")]
    tang = CharVocab.build("ab", specials=TANG_SPECIALS)
    assert Sampler(make_model(tang), tang).encode_prompt("").tolist() == [tang.specials["start"]]


def test_sample_text_shortcut(vocab):
    text = sample_text(make_model(vocab), vocab, prompt="ab", length=25, temperature=0.8, seed=3)
    assert len(text) == 25 and set(text) <= set(vocab.tokens)


def test_default_team_size(monkeypatch):
    """On the numba build: the cores, at most one per 64 units of the widest layer, once some Wh
    has 2^16 weights; else one thread, and always one on the numpy build (whose threads would
    take turns on the interpreter lock)."""
    monkeypatch.setattr(sample, "available_threads", lambda: 8)
    small = LanguageModel(ModelConfig(vocab_size=5, embedding_dim=4, hidden_sizes=(64, 120)))
    wide = LanguageModel(ModelConfig(vocab_size=5, embedding_dim=4, hidden_sizes=(64, 256)))
    huge = LanguageModel(ModelConfig(vocab_size=5, embedding_dim=4, hidden_sizes=(1024,)))
    with minilstm.use_backend("numpy"):
        assert default_threads(wide) == 1 and plan_model(wide).members == 1
    if core.numba_available():
        with minilstm.use_backend("numba"):
            assert default_threads(small) == 1                # Wh of 57,600 < 2^16 weights: alone
            assert default_threads(wide) == 4                 # 256 units / 64
            assert default_threads(huge) == 8                 # the cores
            plan = plan_model(wide)
            # blocks on multiples of 16 units; in the first layer member 0's is LEAD units shorter
            assert sample.LEAD == 16
            assert plan.members == 4 and plan.edges.tolist() == [[0, 0, 32, 48, 64],
                                                                 [0, 64, 128, 192, 256]]
    with pytest.raises(ValueError, match=r"plan_model: threads must be >= 1, got 0"):
        plan_model(wide, threads=0)


def test_a_failing_helper_thread_reaches_the_caller(vocab, monkeypatch):
    """A helper that fails aborts the team: the caller's thread stops waiting for it (a meeting
    in a kernel returns False) and raises the helper's error, instead of spinning forever."""
    from minilstm.core.team import meet

    def broken(*args):
        raise OSError("helper failed")
    waited = []
    with SampleTeam(2) as team:
        with pytest.raises(OSError, match="helper failed"):
            team.run(lambda sync: waited.append(meet(sync, 0, 2, 1)), broken)
    assert waited == [False]
    if core.numba_available():                  # and through the sampler's compiled loops
        monkeypatch.setattr(sample, "assist", broken)
        sampler = Sampler(make_model(vocab, hidden_sizes=(40,)), vocab)
        sampler.plan = plan_model(sampler.model, threads=2)
        started = time.perf_counter()
        with minilstm.use_backend("numba"), pytest.raises(OSError, match="helper failed"):
            sampler.generate(SampleConfig(prompt="ab", length=100))
        assert time.perf_counter() - started < 60        # it ended (a hang would time out CI)


def test_chunks_are_sized_by_the_measured_speed(vocab, monkeypatch):
    """Each compiled call is sized to take about CHUNK_SECONDS at the speed measured so far
    (priming's for the first call), from 1 token up to ``chunk``; the pieces make up the sample."""
    assert sample.chunk_size(0.001, 10, 1024) == 100          # 10 us a token: 10 ms is 1,000
    assert sample.chunk_size(1.0, 10, 1024) == 1               # slower than 10 ms a token
    assert sample.chunk_size(1e-9, 10, 1024) == 1024           # never beyond the limit
    sampler = Sampler(make_model(vocab), vocab)
    monkeypatch.setattr(sample, "CHUNK_SECONDS", 1e9)      # every call may be as long as it likes
    sizes = [piece.shape[1] for piece in sampler.token_chunks(SampleConfig(length=300, chunk=100))]
    assert sizes == [100, 100, 100]
    monkeypatch.setattr(sample, "CHUNK_SECONDS", 0.0)      # as short as can be: one token a call
    sizes = [piece.shape[1] for piece in sampler.token_chunks(SampleConfig(length=5))]
    assert sizes == [1, 1, 1, 1, 1]


def test_team_members_run_on_separate_cores(monkeypatch):
    """Helpers each get a core of their own from the end of the allowed set, member 0 the rest,
    during a call only: the caller's own CPU set is given back afterwards."""
    from minilstm import sample_team
    if not hasattr(os, "sched_getaffinity"):
        pytest.skip("no CPU affinity on this platform")
    before = os.sched_getaffinity(0)
    with SampleTeam(2) as team:
        seen = team.run(lambda sync: os.sched_getaffinity(0), lambda m, sync: None)
    assert os.sched_getaffinity(0) == before
    if len(before) >= 2:
        assert seen == set(sorted(before)[:-1])
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert sample_team._separate_cpus(2) == [{0, 1, 2}, {3}]
    assert sample_team._separate_cpus(3) == [{0, 1}, {3}, {2}]
    assert sample_team._separate_cpus(5) is None               # fewer cores than members
