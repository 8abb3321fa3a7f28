"""LSTM layers run by a team of threads (minilstm.core.lstm_team): each member's rows come out as
one call over the joint batch computes them, in both builds, and a failing member stops the team."""
import threading

import numpy as np
import pytest

from gradcheck import assert_close
from minilstm import core, parallel
from minilstm.core import lstm_cell, lstm_team, team as teams
from minilstm.model import LanguageModel, ModelConfig

BACKENDS = ["numpy"] + (["numba"] if core.numba_available() else [])

# float64. A member's rows see the operations of the joint call, except that BLAS sums the
# products' terms in its own grouping for each shape of product: a few ulps of values of
# order 1 after T = 5 steps (measured <= 4e-15), so 1e-12 is a wide margin.
TOL = dict(rtol=1e-12, atol=1e-12)


def run_members(rows, work, timeout=60):
    """work(team_member, lo, hi) on one thread per member; returns their results or errors."""
    team = core.Team(len(rows))
    edges = np.concatenate([[0], np.cumsum(rows)])
    results = [None] * len(rows)

    def member(m):
        try:
            results[m] = work(core.TeamMember(team, m), edges[m], edges[m + 1])
        except BaseException as error:      # noqa: B902  (handed to the test)
            team.abort()
            results[m] = error

    threads = [threading.Thread(target=member, args=(m,)) for m in range(len(rows))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
    assert not any(thread.is_alive() for thread in threads), "a team member never returned"
    return results


def problem(H, rows, T=5, D=3, V=6, seed=0):
    rng = np.random.default_rng(seed)
    B = sum(rows)
    r = lambda *shape: rng.standard_normal(shape)  # noqa: E731
    return dict(x=r(T, B, D), h0=r(B, H), c0=r(B, H), Wx=r(D, 4 * H) * 0.4, Wh=r(H, 4 * H) * 0.4,
                b=r(4 * H) * 0.4, table=r(V, 4 * H), ids=rng.integers(0, V, (T, B)),
                dh=r(T, B, H), dhT=r(B, H), dcT=r(B, H))


def joint_and_team(p, rows, kind):
    """The forward and backward of one joint call and of the team; kind: "x" (lstm_forward),
    "xw" (a given projection) or "table" (rows of a table picked by ids)."""
    def layer(lo, hi, team):
        sl = slice(lo, hi)
        grads = [np.zeros_like(p["Wx"]), np.zeros_like(p["Wh"]), np.zeros_like(p["b"])]
        if kind == "x":
            h, (hT, cT), cache = core.lstm_forward(p["x"][:, sl], p["h0"][sl], p["c0"][sl], p["Wx"],
                                                   p["Wh"], p["b"], team=team)
            dx, dh0, dc0 = core.lstm_backward(p["dh"][:, sl], p["dhT"][sl], p["dcT"][sl], cache, *grads)
        else:
            if kind == "xw":
                xw, ids = np.einsum("tbd,dk->tbk", p["x"][:, sl], p["Wx"]), None
            else:
                xw, ids = p["table"], p["ids"][:, sl]
            h, (hT, cT), cache = core.lstm_recurrence_forward(xw, p["h0"][sl], p["c0"][sl], p["Wh"], p["b"],
                                                              ids=ids, team=team)
            dx, dh0, dc0 = core.lstm_recurrence_backward(p["dh"][:, sl], p["dhT"][sl], p["dcT"][sl], cache,
                                                         *grads[1:])
        return dict(h=np.array(h), hT=hT, cT=cT, gates=np.array(cache.gates), dx=dx, dh0=dh0, dc0=dc0,
                    dWx=grads[0], dWh=grads[1], db=grads[2])

    joint = layer(0, sum(rows), None)
    members = run_members(rows, lambda member, lo, hi: layer(lo, hi, member))
    for result in members:
        if isinstance(result, BaseException):
            raise result
    team = {name: np.concatenate([m[name] for m in members], axis=1 if joint[name].ndim == 3 else 0)
            for name in ("h", "gates", "dx", "hT", "cT", "dh0", "dc0")}
    for name in ("dWx", "dWh", "db"):           # each member adds its own rows' gradient
        team[name] = sum(m[name] for m in members)
    return joint, team


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("H, rows", [(40, [3, 4]),          # blocks of 16 and 24 units
                                     (48, [2, 5, 1]),       # three blocks of 16, uneven rows
                                     (8, [4, 3])])          # the first member owns no unit
@pytest.mark.parametrize("kind", ["x", "xw", "table"])
def test_team_equals_one_call_over_the_joint_batch(backend, H, rows, kind):
    p = problem(H, rows)
    with core.use_backend(backend):
        joint, team = joint_and_team(p, rows, kind)
    for name, value in joint.items():
        assert_close(f"{name} ({backend}, H={H}, rows={rows}, {kind})", team[name], value, **TOL)


@pytest.mark.skipif("numba" not in BACKENDS, reason="numba not importable")
@pytest.mark.parametrize("B", [1, 3, 4, 9])        # below, at and past the four-row blocks
def test_unit_kernels_loop_variants(B):
    """The loop variants of the team's elementwise kernels against their array versions:
    exact for the gather of gate columns, and to rounding for the cells (float32 rational tanh, measured
    differences <= 2e-7 for values of order 1, so 1e-6)."""
    rng = np.random.default_rng(B)
    H, lo, w = 8, 4, 4
    src = rng.normal(size=(5, 4 * H)).astype(np.float32)
    pre = rng.normal(size=(4 * w, B)).astype(np.float32)
    rows = rng.integers(0, 5, size=B)
    outs = []
    for fn in (lstm_cell.add_transposed_blocks.py, lstm_cell.add_transposed_blocks_loops,
               lstm_cell.add_transposed_blocks.jitted):
        out = np.full((B, 4 * w), np.nan, np.float32)
        fn(src, rows, lo, H, 4, pre, out)
        outs.append(out)
    expected = np.concatenate([src[rows, q * H + lo:q * H + lo + w] for q in range(4)], axis=1) + pre.T
    for out in outs:
        assert np.array_equal(out, expected)
    a = rng.normal(size=(B, 4 * w)).astype(np.float32) * 3
    b_own = rng.normal(size=4 * w).astype(np.float32)
    c_prev = rng.normal(size=(B, H)).astype(np.float32)
    forward = []
    for fn in (lstm_team.cell_forward_units.py, lstm_team.cell_forward_units.jitted):
        bufs = [a.copy()] + [np.zeros((B, H), np.float32) for _ in range(3)] + [np.zeros((B, 4 * H), np.float32)]
        fn(bufs[0], b_own, lo, c_prev, *bufs[1:])
        forward.append(bufs)
    for name, x, y in zip(("a", "c", "tanh_c", "h", "gates"), forward[1], forward[0]):
        assert_close(f"cell_forward_units {name}", x, y, rtol=1e-6, atol=1e-6)
    gates, tanh_c = forward[0][4], forward[0][2]
    dh, dc = rng.normal(size=(B, w)).astype(np.float32), rng.normal(size=(B, w)).astype(np.float32)
    backward = []
    for fn in (lstm_team.cell_backward_units.py, lstm_team.cell_backward_units.jitted):
        dgates, dcn = np.zeros((B, 4 * H), np.float32), dc.copy()
        fn(dh, dcn, lo, gates, c_prev, tanh_c, dgates)
        backward.append((dgates, dcn))
    for name, x, y in zip(("dgates", "dc"), backward[1], backward[0]):
        assert_close(f"cell_backward_units {name}", x, y, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_failing_member_ends_the_others_waits(backend):
    """A member that fails before its layer (here: a bad shape) aborts the team; the others,
    already waiting inside the shared loop or at the hand-over, stop with TeamAborted."""
    p = problem(40, [3, 4, 2])

    def work(member, lo, hi):
        h0 = p["h0"][lo:hi]
        if member.index == 1:
            h0 = h0[:, :-1]                  # wrong width: raises before joining the team
        return core.lstm_forward(p["x"][:, lo:hi], h0, p["c0"][lo:hi], p["Wx"], p["Wh"], p["b"], team=member)

    with core.use_backend(backend):
        results = run_members([3, 4, 2], work)
    assert isinstance(results[1], ValueError) and "h0 has shape" in str(results[1])
    assert all(isinstance(results[m], core.TeamAborted) for m in (0, 2))


def test_members_that_disagree_on_the_sequence_length_are_refused():
    p = problem(40, [3, 4])

    def work(member, lo, hi):
        T = 5 if member.index == 0 else 4
        return core.lstm_forward(p["x"][:T, lo:hi], p["h0"][lo:hi], p["c0"][lo:hi], p["Wx"], p["Wh"], p["b"],
                                 team=member)

    results = run_members([3, 4], work)
    errors = [r for r in results if isinstance(r, ValueError)]
    assert len(errors) == 1 and "disagree on T" in str(errors[0])
    assert sum(isinstance(r, core.TeamAborted) for r in results) == 1


def test_meet_returns_false_once_the_team_is_aborted():
    team = core.Team(2)
    team.abort()
    for build in (teams.meet.py,) + ((teams.meet.jitted,) if "numba" in BACKENDS else ()):
        assert not build(team.sync, 0, 2, 1)         # returns at once, without its partner
    assert team.broken


# ----------------------------------------------------------------------------- in the model

@pytest.fixture
def teams_for_small_layers(monkeypatch):
    """Teams for every layer of the small test models (by default only wide layers get one)."""
    monkeypatch.setattr(parallel, "team_pays", lambda H, rows: True)


def sharded_step(config, ids, targets, state, threads, steps=2):
    model = LanguageModel(config)
    model.threads = threads
    out = []
    for _ in range(steps):        # a second step reuses the team's arrays
        model.zero_grad()
        loss, new_state = model.forward_backward(ids, targets, state)
        out.append((loss, model.params.grad.copy(), new_state))
        model.params.data -= 0.1 * model.params.grad
    return model, out


@pytest.mark.parametrize("shards", [2, 3])
def test_a_sharded_step_with_teams_equals_one_without(teams_for_small_layers, monkeypatch, shards):
    config = ModelConfig(vocab_size=11, embedding_dim=5, hidden_sizes=(40, 48), dropout=0.2,
                         dtype="float64", seed=3)
    rng = np.random.default_rng(4)
    B, T = 25, 6                  # shards of 12 and 13, or 8, 8 and 9 rows
    ids, targets = rng.integers(0, 11, (B, T)), rng.integers(0, 11, (B, T))
    targets[:3, :2] = -1
    state = [(rng.standard_normal((B, H)), rng.standard_normal((B, H))) for H in config.hidden_sizes]
    model, with_teams = sharded_step(config, ids, targets, state, shards)
    assert model._shard_team is not None and model._shard_team.members == shards
    monkeypatch.setattr(parallel, "team_pays", lambda H, rows: False)
    model, without = sharded_step(config, ids, targets, state, shards)
    assert getattr(model, "_shard_team", None) is None
    for (loss, grad, new_state), (loss_ref, grad_ref, state_ref) in zip(with_teams, without):
        # float64; the same operations per row, BLAS groups the products' sums its own way
        assert abs(loss - loss_ref) <= 1e-12 * abs(loss_ref)
        assert_close("gradient", grad, grad_ref, rtol=0, atol=1e-12 * np.abs(grad_ref).max())
        for (h, c), (h_ref, c_ref) in zip(new_state, state_ref):
            assert_close("state h", h, h_ref, **TOL)
            assert_close("state c", c, c_ref, **TOL)


def test_sharded_inference_with_teams_and_the_joined_caches(teams_for_small_layers):
    config = ModelConfig(vocab_size=11, embedding_dim=5, hidden_sizes=(40,), dtype="float64", seed=3)
    ids = np.random.default_rng(5).integers(0, 11, (17, 7))
    reference, model = LanguageModel(config).eval(), LanguageModel(config).eval()
    reference.threads, model.threads = 1, 2
    logits_ref, _, _ = reference.forward(ids)
    logits, _, _ = model.forward(ids)
    assert model._shard_team is not None             # the shards ran the layer as a team
    assert_close("logits", logits, logits_ref, **TOL)
    caches = model.lstm_caches()
    model.forward(ids[::-1].copy())               # the next forward reuses the team's arrays ...
    for ours, theirs in zip(caches, reference.lstm_caches()):   # ... but not the joined copies
        for name in ("gates", "c", "tanh_c", "h"):
            assert_close(name, getattr(ours, name), getattr(theirs, name), **TOL)


def test_an_error_in_one_shard_of_a_team_reaches_the_caller_and_the_next_step_works(teams_for_small_layers):
    config = ModelConfig(vocab_size=11, embedding_dim=5, hidden_sizes=(40,), seed=3)
    rng = np.random.default_rng(6)
    ids, targets = rng.integers(0, 11, (16, 5)), rng.integers(0, 11, (16, 5))
    model = LanguageModel(config)
    model.threads = 2
    bad = targets.copy()
    bad[-1, -1] = 11                              # out of the vocabulary, in the last shard only
    with pytest.raises(IndexError, match="targets contains id 11"):
        model.forward_backward(ids, bad)
    broken = model._shard_team
    assert broken.broken
    model.zero_grad()
    loss, _ = model.forward_backward(ids, targets)   # a new team
    assert model._shard_team is not broken and np.isfinite(loss)


def test_which_layers_get_a_team():
    """Teams only for wide layers and thin shards (the measured policy in minilstm.parallel)."""
    assert parallel.team_pays(512, 25) and parallel.team_pays(1024, 32) and parallel.team_pays(512, 16)
    assert not parallel.team_pays(256, 8)            # narrow layer
    assert not parallel.team_pays(512, 32)           # shards as wide as H / 16
    assert not parallel.team_pays(1024, 50)          # more rows than TEAM_MAX_ROWS
    config = ModelConfig(vocab_size=11, embedding_dim=5, hidden_sizes=(16, 512), seed=3)
    model = LanguageModel(config, init=False)
    replica = model.replica()
    replica._team = core.TeamMember(core.Team(2), 0, 25)
    assert parallel.layer_team(replica, 0) is None
    assert parallel.layer_team(replica, 1) is replica._team
    assert parallel.layer_team(model, 1) is None      # not a shard of a team
    replica._team = core.TeamMember(core.Team(2), 0, 32)
    assert parallel.layer_team(replica, 1) is None


def test_steps_and_inference_that_team_up_different_layers(monkeypatch):
    """A team's arrays are reused by position from one step to the next; when a step teams up
    other layers than the last one (here: inference with thinner shards), a position meets
    arrays of another kind or shape and makes new ones. Results stay those without teams."""
    config = ModelConfig(vocab_size=11, embedding_dim=5, hidden_sizes=(40, 48), dtype="float64", seed=3)
    rng = np.random.default_rng(7)
    train_ids, train_targets = rng.integers(0, 11, (26, 6)), rng.integers(0, 11, (26, 6))
    eval_ids = rng.integers(0, 11, (16, 5))

    def run(team_pays):
        monkeypatch.setattr(parallel, "team_pays", team_pays)
        model = LanguageModel(config)
        model.threads = 2
        out = []
        for _ in range(2):
            model.train()
            model.zero_grad()
            loss, _ = model.forward_backward(train_ids, train_targets)   # shards of 13: layer 1 only
            out += [np.array(loss), model.params.grad.copy()]
            out.append(model.eval().forward(eval_ids)[0])                 # shards of 8: both layers
        return out

    with_teams = run(lambda H, rows: rows <= 8 or H == 48)
    without = run(lambda H, rows: False)
    for k, (ours, theirs) in enumerate(zip(with_teams, without)):
        # float64, the same operations per row; BLAS groups the products' sums its own way
        assert_close(f"result {k}", ours, theirs, rtol=1e-12, atol=1e-12 * max(1.0, np.abs(theirs).max()))
