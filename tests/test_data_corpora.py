"""Text files: reading, decoding errors, streamed loading into ids and its memory bound."""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import minilstm.data.corpora as corpora
import minilstm.data.text as text_module
from minilstm.data import (CharVocab, CorpusDecodeError, UnknownSymbolError, WordVocab, iter_text, load_corpus,
                           read_text)

SAMPLE = "First line — ça va?\r\n你好，世界！🎉\nlast"


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "sample.txt"
    path.write_bytes(SAMPLE.encode("utf-8"))
    return path


def test_read_text_keeps_every_code_point_and_crlf(sample_file):
    assert read_text(sample_file) == SAMPLE


def test_other_encodings(tmp_path):
    path = tmp_path / "latin.txt"
    path.write_bytes("naïve café".encode("latin-1"))
    assert read_text(path, encoding="latin-1") == "naïve café"
    with pytest.raises(ValueError, match="encoding='klingon'"):
        read_text(path, encoding="klingon")


def test_decoding_failure_names_path_and_byte_offset(tmp_path):
    path = tmp_path / "broken.txt"
    path.write_bytes("héllo".encode("utf-8") + b"\xff rest")
    with pytest.raises(CorpusDecodeError, match=r"broken.txt: cannot decode byte\(s\) b'\\xff' at byte offset 6") as info:
        read_text(path)
    assert info.value.offset == 6 and isinstance(info.value, ValueError)


def test_streamed_decoding_reports_the_absolute_offset(tmp_path):
    good = "αβγδ" * 50                       # 2-byte characters: reads of 7 bytes split them
    path = tmp_path / "broken.txt"
    path.write_bytes(good.encode("utf-8") + b"\xc3(")
    with pytest.raises(CorpusDecodeError) as info:
        list(iter_text(path, read_bytes=7))
    assert info.value.offset == len(good.encode("utf-8"))


def test_streamed_pieces_join_to_the_text(sample_file):
    pieces = list(iter_text(sample_file, read_bytes=3))
    assert len(pieces) > 5 and "".join(pieces) == SAMPLE


@pytest.mark.parametrize("make, error, message", [
    (lambda tmp: tmp / "nope.txt", FileNotFoundError, "nope.txt does not exist"),
    (lambda tmp: tmp, IsADirectoryError, "is a directory"),
    (lambda tmp: (tmp / "empty.txt").write_bytes(b"") and tmp / "empty.txt" or tmp / "empty.txt", ValueError, "empty.txt is empty"),
])
def test_missing_directory_and_empty_paths_are_named(tmp_path, make, error, message):
    path = make(tmp_path)
    with pytest.raises(error, match=message):
        read_text(path)
    with pytest.raises(error, match=message):
        load_corpus(path)


def test_load_corpus_char_matches_build_and_encode(sample_file):
    corpus = load_corpus(sample_file)
    vocab = CharVocab.build(SAMPLE)
    assert corpus.vocab == vocab
    assert corpus.ids.dtype == np.uint8
    assert corpus.ids.tolist() == vocab.encode(SAMPLE).tolist()
    assert len(corpus) == len(SAMPLE) and corpus.path == sample_file


def test_load_corpus_with_small_chunks_is_identical(sample_file, monkeypatch):
    expected = load_corpus(sample_file, level="word")
    monkeypatch.setattr(corpora, "READ_BYTES", 5)
    monkeypatch.setattr(text_module, "CHUNK_CHARS", 3)
    for level in ("char", "word"):
        got = load_corpus(sample_file, level=level)
        reference = (CharVocab if level == "char" else WordVocab).build(SAMPLE)
        assert got.vocab == reference and got.ids.tolist() == reference.encode(SAMPLE).tolist()
    assert load_corpus(sample_file, level="word").ids.tolist() == expected.ids.tolist()


def test_load_corpus_with_a_given_vocabulary(sample_file):
    vocab = CharVocab.build("First line", specials=("unk",))
    with pytest.raises(UnknownSymbolError, match="sample.txt") as info:
        load_corpus(sample_file, vocab=vocab)
    assert info.value.symbols["你"] == 1 and info.value.symbols["a"] == 3
    mapped = load_corpus(sample_file, vocab=vocab, unknown="map")
    assert mapped.ids.tolist() == vocab.encode(SAMPLE, unknown="map").tolist()
    skipped = load_corpus(sample_file, vocab=vocab, unknown="skip")
    assert vocab.decode(skipped.ids) == "".join(ch for ch in SAMPLE if ch in vocab)
    with pytest.raises(TypeError, match="cannot be combined with vocab"):
        load_corpus(sample_file, vocab=vocab, lowercase=True)
    with pytest.raises(ValueError, match="level must be one of"):
        load_corpus(sample_file, level="byte")


def test_load_corpus_word_level_cap_maps_rare_words_to_unk(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("the cat and the dog and the bird\n", encoding="utf-8")
    corpus = load_corpus(path, level="word", max_size=5)
    assert corpus.vocab.tokens == ("<pad>", "<unk>", "the", "and", "\n")
    assert corpus.vocab.decode(corpus.ids) == "the <unk> and the <unk> and the <unk>\n"
    with pytest.raises(UnknownSymbolError):
        load_corpus(path, level="word", max_size=5, unknown="error")
    skipped = load_corpus(path, level="word", max_size=5, unknown="skip")
    assert len(skipped.ids) == 6


def test_load_corpus_memory_stays_under_twice_the_file(tmp_path, monkeypatch):
    # Chunks scaled down with the file so the fixed per-chunk temporaries stay small next to it;
    # benchmarks/data_memory.py measures the real 100 MB case with the real chunk sizes.
    monkeypatch.setattr(corpora, "READ_BYTES", 1 << 16)
    monkeypatch.setattr(text_module, "CHUNK_CHARS", 1 << 14)
    rng = np.random.default_rng(0)
    alphabet = np.frombuffer(b"abcdefghij klmnop\nqrstuvwxyz,.", dtype=np.uint8)
    data = alphabet[rng.integers(0, len(alphabet), 4 << 20)].tobytes()
    path = tmp_path / "big.txt"
    path.write_bytes(data)
    del data
    tracemalloc.start()
    try:
        corpus = load_corpus(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    size = path.stat().st_size
    assert corpus.ids.nbytes == size
    assert peak < 1.5 * size, f"peak {peak} bytes for a {size}-byte file"


def test_real_tiny_shakespeare_loads(shared_file):
    corpus = load_corpus(shared_file("tinyshakespeare.txt"))
    assert len(corpus) == 1_115_394 and corpus.vocab.size == 65 and corpus.ids.dtype == np.uint8
    assert corpus.vocab.decode(corpus.ids[:14]) == "First Citizen:"
