"""Batches: stateful streams, random windows, padded poems, and train/val/test splits."""
from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from minilstm.data import (IGNORE_INDEX, PoemBatches, StreamBatches, poems_from_texts, random_windows, read_tang,
                           split_ids, split_poems)


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 6), st.integers(1, 9), st.integers(0, 60), st.booleans(), st.data())
def test_streams_concatenate_back_to_the_text(batch_size, seq_len, extra, drop_last, data):
    n = batch_size * seq_len + 1 + extra
    ids = np.asarray(data.draw(st.lists(st.integers(0, 255), min_size=n, max_size=n)), dtype=np.uint8)
    batches = StreamBatches(ids, batch_size, seq_len, drop_last=drop_last)
    S = (n - 1) // batch_size
    assert batches.stream_length == S
    every = list(batches)
    assert len(every) == len(batches) == (S // seq_len if drop_last else -(-S // seq_len))
    used = sum(b.inputs.shape[1] for b in every)
    assert used == (S // seq_len) * seq_len if drop_last else used == S
    for b in range(batch_size):
        inputs = np.concatenate([batch.inputs[b] for batch in every])
        targets = np.concatenate([batch.targets[b] for batch in every])
        assert np.array_equal(inputs, batches.stream(b))
        assert np.array_equal(inputs, ids[b * S:b * S + used])               # stream b is text, in order
        assert np.array_equal(targets, ids[b * S + 1:b * S + used + 1])      # shifted by one
    assert all(batch.inputs.shape == batch.targets.shape for batch in every)


def test_stream_batches_are_views_in_the_corpus_dtype():
    ids = np.arange(200, dtype=np.uint8)
    batches = StreamBatches(ids, 4, 5)
    batch = batches[3]
    assert batch.inputs.dtype == np.uint8 and batch.inputs.shape == (4, 5)
    assert np.shares_memory(batch.inputs, ids) and np.shares_memory(batch.targets, ids)
    assert batch.inputs[:, 0].tolist() == [15, 64, 113, 162]   # streams start at b*49
    assert batches[-1].inputs.tolist() == batches[len(batches) - 1].inputs.tolist()


def test_stream_resume_from_a_batch_index():
    batches = StreamBatches(np.arange(101, dtype=np.uint16), 2, 5)
    assert len(batches) == 10
    resumed = list(batches.epoch(start=7))
    assert [b.inputs.tolist() for b in resumed] == [batches[i].inputs.tolist() for i in (7, 8, 9)]
    assert batches.batch(4, epoch=3).inputs.tolist() == batches[4].inputs.tolist()
    assert list(batches.epoch(start=10)) == []
    with pytest.raises(IndexError, match="outside 0..9"):
        batches[10]
    with pytest.raises(ValueError, match="start must be an integer in 0..10"):
        batches.epoch(start=11)


def test_too_short_a_corpus_states_the_minimum():
    with pytest.raises(ValueError, match=r"12 ids are too few .* at least batch_size\*seq_len\+1 = 13"):
        StreamBatches(np.zeros(12, np.uint8), 3, 4)
    assert len(StreamBatches(np.zeros(13, np.uint8), 3, 4)) == 1
    with pytest.raises(ValueError, match="a window needs at least seq_len\\+1 = 9"):
        random_windows(np.zeros(8, np.uint8), 2, 8, np.random.default_rng(0))


@pytest.mark.parametrize("bad, error, message", [
    ([1, 2, 3], TypeError, "ids must be a numpy array"),
    (np.zeros(50), ValueError, "dtype float64"),
    (np.zeros((5, 10), np.uint8), ValueError, "expected a 1-D integer array"),
    (np.array([1, -2] * 20), ValueError, "negative ids"),
])
def test_bad_ids_are_named(bad, error, message):
    with pytest.raises(error, match=message):
        StreamBatches(bad, 2, 3)


def test_bad_sizes_are_named():
    with pytest.raises(ValueError, match="batch_size must be a positive integer, got 0"):
        StreamBatches(np.zeros(50, np.uint8), 0, 3)
    with pytest.raises(ValueError, match="seq_len must be a positive integer, got 2.5"):
        StreamBatches(np.zeros(50, np.uint8), 2, 2.5)


def test_random_windows_are_seeded_slices():
    ids = np.arange(1000, dtype=np.uint16)
    first = random_windows(ids, 8, 16, np.random.default_rng(7))
    again = random_windows(ids, 8, 16, np.random.default_rng(7))
    assert np.array_equal(first.inputs, again.inputs)
    assert first.inputs.shape == first.targets.shape == (8, 16) and first.inputs.dtype == np.uint16
    starts = first.inputs[:, 0].astype(int)
    assert np.array_equal(first.inputs, starts[:, None] + np.arange(16))     # contiguous windows
    assert np.array_equal(first.targets, first.inputs + 1)                    # next id
    rng = np.random.default_rng(7)
    draws = [random_windows(ids, 4, 3, rng).inputs[:, 0] for _ in range(50)]
    assert np.concatenate(draws).max() <= 1000 - 4 and len(set(np.concatenate(draws).tolist())) > 100
    with pytest.raises(TypeError, match="rng must be a numpy.random.Generator"):
        random_windows(ids, 2, 3, 42)


def test_random_windows_reach_the_last_target():
    ids = np.arange(6, dtype=np.uint8)   # seq_len 5: the only window is the whole array
    batch = random_windows(ids, 3, 5, np.random.default_rng(0))
    assert batch.inputs.tolist() == [[0, 1, 2, 3, 4]] * 3 and batch.targets.tolist() == [[1, 2, 3, 4, 5]] * 3


POEMS = ["床前明月光，疑是地上霜。", "春眠不觉晓", "白日依山尽", "红豆生南国，春来发几枝。", "好雨知时节"]


@pytest.fixture
def corpus():
    return poems_from_texts(POEMS, length=20)


def test_poem_targets_ignore_padding(corpus):
    batches = PoemBatches.from_corpus(corpus, 2, shuffle=False, trim=False)
    batch = batches.batch(0)
    assert batch.inputs.shape == batch.targets.shape == (2, 19)
    assert batch.targets.dtype == np.int32 and batch.inputs.dtype == corpus.poems.dtype
    rows = corpus.poems[:2]
    expected = np.where(rows[:, 1:] == corpus.pad_id, IGNORE_INDEX, rows[:, 1:].astype(np.int64))
    assert np.array_equal(batch.targets, expected)
    assert np.array_equal(batch.inputs, rows[:, :-1])
    assert batch.targets[1, -1] == corpus.end_id and batch.targets[1, 12] == corpus.start_id


def test_all_padding_batch_has_only_ignored_targets(corpus):
    poems = np.full((3, 20), corpus.pad_id, dtype=corpus.poems.dtype)
    for trim in (False, True):
        batch = PoemBatches(poems, 3, pad_id=corpus.pad_id, trim=trim).batch(0)
        assert batch.targets.size and (batch.targets == IGNORE_INDEX).all()


def test_trim_drops_common_front_padding(corpus):
    batch = PoemBatches.from_corpus(corpus, 2, shuffle=False, trim=True).batch(0, epoch=0)
    assert batch.inputs.shape == (2, 13)                  # the longest poem: 12 chars + START + EOP
    assert batch.inputs[0, 0] == corpus.start_id and batch.inputs[1, 0] == corpus.pad_id


def test_poem_epochs_shuffle_by_seed_and_cover_every_poem(corpus):
    batches = PoemBatches.from_corpus(corpus, 2, seed=3, trim=False)
    assert len(batches) == 3
    seen = np.concatenate([b.inputs for b in batches.epoch(1)])
    assert sorted(map(tuple, seen.tolist())) == sorted(map(tuple, corpus.poems[:, :-1].tolist()))
    assert np.array_equal(batches.order(1), PoemBatches.from_corpus(corpus, 2, seed=3).order(1))
    orders = {tuple(batches.order(e)) for e in range(6)}
    assert len(orders) > 1                                     # reshuffled between epochs
    resumed = list(batches.epoch(1, start=1))
    assert [b.inputs.tolist() for b in resumed] == [batches.batch(i, epoch=1).inputs.tolist() for i in (1, 2)]
    assert len(PoemBatches.from_corpus(corpus, 2, drop_last=True)) == 2


def test_poem_batch_errors(corpus):
    with pytest.raises(ValueError, match="5 poems are too few for batch_size=8 with drop_last=True: at least 8"):
        PoemBatches.from_corpus(corpus, 8, drop_last=True)
    with pytest.raises(ValueError, match="ignore_index must be negative"):
        PoemBatches.from_corpus(corpus, 2, ignore_index=0)
    with pytest.raises(TypeError, match="pad_id must be an integer"):
        PoemBatches(corpus.poems, 2, pad_id=None)
    with pytest.raises(IndexError, match="outside 0..2"):
        PoemBatches.from_corpus(corpus, 2).batch(3)


def test_split_ids_by_position_without_overlap():
    ids = np.arange(1000, dtype=np.uint16)
    train, val, test = split_ids(ids)
    assert (len(train), len(val), len(test)) == (900, 100, 0)
    assert np.array_equal(np.concatenate([train, val, test]), ids)   # in order, disjoint, complete
    assert np.shares_memory(train, ids)
    train, val, test = split_ids(ids, (0.7, 0.2, 0.1))
    assert (len(train), len(val), len(test)) == (700, 200, 100)
    assert len(split_ids(ids, (1.0, 0.0, 0.0)).val) == 0                 # validation off


@pytest.mark.parametrize("fractions, message", [
    ((0.9, 0.2, 0.0), "sum to 1"), ((0.0, 1.0, 0.0), "train > 0"), ((1.1, -0.1, 0.0), ">= 0"),
    ((0.9, 0.1), "three numbers"), (("a", 0.1, 0.0), "three numbers"),
])
def test_bad_fractions(fractions, message):
    with pytest.raises(ValueError, match=message):
        split_ids(np.arange(100, dtype=np.uint8), fractions)


def test_empty_validation_split_is_an_error_unless_off():
    with pytest.raises(ValueError, match="validation split of 4 items with fraction 0.1 is empty.*turn validation off"):
        split_ids(np.arange(4, dtype=np.uint8))
    with pytest.raises(ValueError, match="test split of 4 items"):
        split_ids(np.arange(4, dtype=np.uint8), (0.5, 0.45, 0.05))


def test_split_poems_is_seeded_and_disjoint(corpus):
    poems = np.repeat(corpus.poems, 20, axis=0)
    poems[:, 0] = np.arange(len(poems))                    # make rows distinguishable
    train, val, test = split_poems(poems, (0.8, 0.1, 0.1), seed=5)
    assert (len(train), len(val), len(test)) == (80, 10, 10)
    keys = [set(part[:, 0].tolist()) for part in (train, val, test)]
    assert not (keys[0] & keys[1] or keys[0] & keys[2] or keys[1] & keys[2])
    assert set.union(*keys) == set(range(100))
    again = split_poems(poems, (0.8, 0.1, 0.1), seed=5)
    assert all(np.array_equal(a, b) for a, b in zip((train, val, test), again))
    assert not np.array_equal(split_poems(poems, (0.8, 0.1, 0.1), seed=6).val, val)


def test_real_tang_batches(shared_file):
    corpus = read_tang(shared_file("tang.npz"))
    train, val, _ = split_poems(corpus.poems, seed=0)
    batches = PoemBatches(train, 128, pad_id=corpus.pad_id, seed=0)
    batch = batches.batch(0, epoch=0)
    assert batch.inputs.shape[0] == 128 and batch.inputs.shape[1] <= 124
    kept = batch.targets != IGNORE_INDEX
    assert (batch.targets[kept] == corpus.end_id).sum() <= 128 and kept.sum() > 128 * 10
    assert len(batches) == -(-len(train) // 128) and len(val) == 5622


def test_poem_batches_feed_the_loss_kernel(corpus):
    """Targets go straight into the fused loss: padding rows count for nothing."""
    from minilstm.core import softmax_cross_entropy
    rng = np.random.default_rng(0)
    batch = PoemBatches.from_corpus(corpus, 5, shuffle=False, trim=False).batch(0)
    logits = rng.standard_normal((batch.targets.size, corpus.vocab.size))
    loss, dlogits, count = softmax_cross_entropy(logits, batch.targets.reshape(-1))
    # every poem has padding in front here, so <START>, its characters and <EOP> are all targets
    assert count == int((batch.targets != IGNORE_INDEX).sum()) == sum(len(p) + 2 for p in POEMS)
    assert np.isfinite(loss) and not dlogits[batch.targets.reshape(-1) == IGNORE_INDEX].any()
    padding = np.full((2, 20), corpus.pad_id, dtype=corpus.poems.dtype)
    empty = PoemBatches(padding, 2, pad_id=corpus.pad_id).batch(0)
    loss, dlogits, count = softmax_cross_entropy(logits[:empty.targets.size], empty.targets.reshape(-1))
    assert (loss, count) == (0.0, 0) and not dlogits.any()
