"""Vocabularies: ids, round trips, unknown symbols, specials, persistence, extension."""
from __future__ import annotations

import json
import re

import numpy as np
import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import minilstm.data._symbols as symbols_module
import minilstm.data.text as text_module
from minilstm.data import CharVocab, UnknownSymbolError, Vocabulary, WordVocab
from minilstm.data._symbols import rechunk, word_cut

UNICODE_SAMPLE = "Ça va? 你好，世界！ naïve café 🎉👍🏽\r\nline two\rthree\n"


def test_char_vocab_sorts_code_points_and_has_no_specials_by_default():
    vocab = CharVocab.build("banana!")
    assert vocab.tokens == ("!", "a", "b", "n")
    assert vocab.specials == {}
    assert vocab.encode("banana").tolist() == [2, 1, 3, 1, 3, 1]
    assert vocab.size == len(vocab) == 4


def test_tiny_shakespeare_gives_the_65_symbol_char_rnn_vocabulary(shared_file):
    text = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    vocab = CharVocab.build(text)
    assert vocab.size == 65
    assert "".join(vocab.tokens) == "".join(sorted(set(text)))
    ids = vocab.encode(text)
    assert ids.dtype == np.uint8 and len(ids) == 1_115_394
    assert vocab.decode(ids) == text


def test_unicode_round_trips_exactly_with_cr_and_lf_as_separate_symbols():
    vocab = CharVocab.build(UNICODE_SAMPLE)
    assert "\r" in vocab and "\n" in vocab and "\r\n" not in vocab
    assert "🎉" in vocab and "🏽" in vocab       # code points, not bytes: one id each
    assert vocab.decode(vocab.encode(UNICODE_SAMPLE)) == UNICODE_SAMPLE


def test_lone_surrogates_are_symbols_too():
    text = "a\udcff b\ud800"
    vocab = CharVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == text


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1))
def test_char_round_trip_property(text):
    vocab = CharVocab.build(text)
    ids = vocab.encode(text)
    assert len(ids) == len(text)
    assert vocab.decode(ids) == text


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet=st.sampled_from("ab c\n\r,'é世"), max_size=200), st.integers(1, 7))
@example("a" * 18, 1)        # a word longer than 16 one-character chunks
def test_chunk_boundaries_do_not_change_results(text, chunk):
    whole_char, whole_word = CharVocab.build(text or "x"), WordVocab.build(text, keep_newlines=True)
    expected = whole_char.encode(text), whole_word.encode(text), WordVocab.count_tokens(text)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(text_module, "CHUNK_CHARS", chunk)
        # The carry limit (a run with no whitespace is cut anyway past MAX_CARRY_CHUNKS chunks,
        # tested below) raised to the text's length, so it never triggers: tiny chunks would
        # otherwise cut words of 17+ characters, which the real chunk size (2^18) never does.
        patch.setattr(symbols_module, "MAX_CARRY_CHUNKS", len(text))
        got = whole_char.encode(text), whole_word.encode(text), WordVocab.count_tokens(text)
    assert got[0].tolist() == expected[0].tolist()
    assert got[1].tolist() == expected[1].tolist()
    assert got[2] == expected[2]


def test_a_run_without_whitespace_is_cut_past_the_carry_limit():
    """Word chunks end at whitespace, but a run with none is cut after MAX_CARRY_CHUNKS chunks'
    worth of characters, so that a text without spaces cannot grow one chunk without bound."""
    size, run = 4, "x" * 100
    chunks = list(rechunk(run + " tail", size, word_cut))
    assert "".join(chunks) == run + " tail"                      # nothing lost or repeated
    assert max(map(len, chunks)) <= (symbols_module.MAX_CARRY_CHUNKS + 1) * size
    assert len(chunks) > 1
    # slices "ab c" and "d ef": each chunk ends after its last space, the rest is carried
    assert list(rechunk("ab cd ef", size, word_cut)) == ["ab ", "cd ", "ef"]


def test_encode_accepts_an_iterable_of_chunks():
    vocab = CharVocab.build(UNICODE_SAMPLE)
    pieces = [UNICODE_SAMPLE[:5], UNICODE_SAMPLE[5:17], UNICODE_SAMPLE[17:]]
    assert vocab.encode(pieces).tolist() == vocab.encode(UNICODE_SAMPLE).tolist()
    with pytest.raises(TypeError, match="bytes"):
        vocab.encode(b"abc")


@pytest.mark.parametrize("size, dtype", [(1, np.uint8), (256, np.uint8), (257, np.uint16),
                                         (65536, np.uint16), (65537, np.uint32)])
def test_ids_use_the_smallest_unsigned_dtype(size, dtype):
    vocab = CharVocab([chr(0x4E00 + i) for i in range(size)])
    assert vocab.id_dtype == dtype
    assert vocab.encode(vocab.tokens[-1]).dtype == dtype
    assert vocab.encode(vocab.tokens[-1]).tolist() == [size - 1]


def test_unknown_symbols_raise_with_every_distinct_symbol_and_its_count():
    vocab = CharVocab.build("abc")
    with pytest.raises(UnknownSymbolError) as info:
        vocab.encode("abxxyzz😀")
    error = info.value
    assert isinstance(error, ValueError)
    assert error.symbols == {"x": 2, "z": 2, "y": 1, "😀": 1}
    assert error.total == 6
    assert "'x' x2" in str(error) and "unknown='map'" in str(error)


def test_unknown_policies_map_and_skip():
    plain = CharVocab.build("abc")
    assert plain.encode("axb", unknown="skip").tolist() == [0, 1]
    with pytest.raises(ValueError, match="'unk' special"):
        plain.encode("axb", unknown="map")
    with pytest.raises(ValueError, match="unknown must be one of"):
        plain.encode("ab", unknown="ignore")
    vocab = CharVocab.build("abc", specials=("unk",))
    assert vocab.specials == {"unk": 0}
    assert vocab.encode("axb", unknown="map").tolist() == [1, 0, 2]


def test_opt_in_char_specials_come_first_and_decode_can_skip_them():
    vocab = CharVocab.build("ba", specials=("pad", "start", "end"))
    assert vocab.tokens == ("<pad>", "<start>", "<eop>", "a", "b")
    assert vocab.specials == {"pad": 0, "start": 1, "end": 2}
    ids = [1, 4, 3, 2, 0]
    assert vocab.decode(ids) == "<start>ba<eop><pad>"
    assert vocab.decode(ids, skip_specials=True) == "ba"
    assert vocab.encode("<pad>", unknown="skip").tolist() == [3]   # text never yields a special
    custom = CharVocab.build("ab", specials={"end": "\x03"})
    assert custom.encode("a\x03").tolist() == [1, 0]                  # a one-character special does


def test_special_and_token_validation():
    with pytest.raises(ValueError, match="unknown special name"):
        CharVocab.build("a", specials=("eos",))
    with pytest.raises(TypeError, match="did you mean"):
        CharVocab.build("a", specials="pad")
    with pytest.raises(ValueError, match="appears twice"):
        CharVocab(["a", "b", "a"])
    with pytest.raises(ValueError, match="single characters"):
        CharVocab(["a", "bc"])
    with pytest.raises(ValueError, match="not among the tokens"):
        CharVocab(["a"], {"pad": "<pad>"})
    with pytest.raises(ValueError, match="whitespace"):
        WordVocab(["a b"])
    with pytest.raises(ValueError, match="tokens is empty"):
        CharVocab([])
    with pytest.raises(TypeError, match="CharVocab takes no tokenizer options"):
        CharVocab.build("a", lowercase=True)


def test_lookup_api_for_samplers():
    vocab = WordVocab.build("to be or not to be")
    assert vocab.specials == {"pad": 0, "unk": 1}
    assert vocab.id_of("be") == 2 and vocab.token_of(3) == "to"   # count ties: by symbol
    assert vocab.special_id("unk") == 1
    with pytest.raises(KeyError, match="'start'"):
        vocab.special_id("start")
    with pytest.raises(KeyError, match="'hamlet' is not in the vocabulary"):
        vocab.id_of("hamlet")
    with pytest.raises(IndexError, match="outside 0..5"):
        vocab.token_of(6)
    with pytest.raises(IndexError, match="id 9 at position 1"):
        vocab.decode([2, 9])


def test_word_vocab_orders_by_frequency_then_symbol_and_caps_size():
    text = "b a c a b a d"
    vocab = WordVocab.build(text)
    assert vocab.tokens == ("<pad>", "<unk>", "a", "b", "c", "d")
    capped = WordVocab.build(text, max_size=4)
    assert capped.tokens == ("<pad>", "<unk>", "a", "b")
    assert capped.encode(text, unknown="map").tolist() == [3, 2, 1, 2, 3, 2, 1]
    frequent = WordVocab.build(text, min_count=2)
    assert frequent.tokens == ("<pad>", "<unk>", "a", "b")
    with pytest.raises(ValueError, match="max_size"):
        WordVocab.build(text, max_size=2)
    with pytest.raises(ValueError, match="min_count"):
        WordVocab.build(text, min_count=0)


def test_word_preprocessing_options():
    text = "Don't STOP, the music!\r\nNew line… 🎉 café_au-lait 42"
    assert WordVocab.build(text).tokenize(text) == [
        "Don't", "STOP", ",", "the", "music", "!", "\n", "New", "line", "…", "🎉", "café_au", "-", "lait", "42"]
    lower = WordVocab.build(text, lowercase=True, strip_punctuation=True, keep_newlines=False)
    assert lower.tokenize(text) == ["don't", "stop", "the", "music", "new", "line", "café_au", "lait", "42"]
    assert lower.options == {"lowercase": True, "strip_punctuation": True, "keep_newlines": False}
    with pytest.raises(TypeError, match="lowercase must be True or False"):
        WordVocab(["a"], lowercase="yes")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.one_of(st.characters(), st.sampled_from(" \n\r\t,.'’_!\u2028\x1c\x85")), max_size=60),
       st.booleans(), st.booleans(), st.booleans())
def test_word_tokenizer_matches_its_regular_expression_definition(text, lowercase, strip, newlines):
    # The documented rule as one regular expression, applied to the whole text.
    if lowercase:
        text = text.lower()
    if newlines:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    pattern = r"\w+(?:['’]\w+)*" + ("" if strip else r"|[^\w\s]") + (r"|\n" if newlines else "")
    vocab = WordVocab(["x"], lowercase=lowercase, strip_punctuation=strip, keep_newlines=newlines)
    assert vocab.tokenize(text) == re.findall(pattern, text)


def test_word_decode_joins_with_spaces_and_newlines():
    text = "Hello, world!\nBye\r\n\nnow"
    vocab = WordVocab.build(text)
    assert vocab.decode(vocab.encode(text)) == "Hello , world !\nBye\n\nnow"


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=80), st.booleans(), st.booleans(), st.booleans())
def test_word_ids_round_trip_property(text, lowercase, strip, newlines):
    vocab = WordVocab.build(text, lowercase=lowercase, strip_punctuation=strip, keep_newlines=newlines)
    ids = vocab.encode(text)
    assert vocab.encode(vocab.decode(ids)).tolist() == ids.tolist()


def test_to_dict_from_dict_json_save_and_load(tmp_path):
    for vocab in (CharVocab.build(UNICODE_SAMPLE, specials=("pad", "end")),
                  WordVocab.build(UNICODE_SAMPLE, lowercase=True, max_size=9)):
        data = json.loads(json.dumps(vocab.to_dict()))
        assert Vocabulary.from_dict(data) == vocab
        path = vocab.save(tmp_path / f"{vocab.level}.json")
        loaded = Vocabulary.load(path)
        assert loaded == vocab and type(loaded) is type(vocab) and hash(loaded) == hash(vocab)
        assert loaded.encode(UNICODE_SAMPLE, unknown="skip").tolist() == vocab.encode(UNICODE_SAMPLE, unknown="skip").tolist()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["char.json", "word.json"]   # no temporaries left


def test_equality_compares_level_tokens_specials_and_options():
    assert CharVocab.build("ab") != CharVocab.build("abc")
    assert CharVocab.build("ab") != CharVocab.build("ab", specials=("pad",))
    assert WordVocab.build("a b") != WordVocab.build("a b", lowercase=True)
    assert CharVocab(["a", "b"]) != WordVocab(["a", "b"], specials=None)


def test_load_errors_name_the_file_and_field(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.json"):
        Vocabulary.load(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(ValueError, match="bad.json is not valid UTF-8 JSON"):
        Vocabulary.load(bad)
    data = CharVocab.build("ab").to_dict()
    for field, value, message in (("format", "other", "format/version"), ("level", "byte", "level is 'byte'"),
                                  ("tokens", "ab", "tokens must be a list"), ("specials", {"pad": 7}, r"specials\['pad'\]")):
        broken = dict(data, **{field: value})
        bad.write_text(json.dumps(broken), encoding="utf-8")
        with pytest.raises(ValueError, match=message):
            Vocabulary.load(bad)


def test_extend_keeps_existing_ids():
    base = CharVocab.build("hello", specials=("pad",))
    bigger = base.extend("héllo wörld", symbols=["Z"])
    assert bigger.tokens[:base.size] == base.tokens
    assert bigger.tokens[base.size:] == (" ", "Z", "d", "r", "w", "é", "ö")
    assert bigger.specials == base.specials
    assert bigger.encode("hello").tolist() == base.encode("hello").tolist()
    words = WordVocab.build("a b", lowercase=True)
    more = words.extend("C c d")
    assert more.tokens == words.tokens + ("c", "d") and more.options == words.options
    assert words.extend("a b") == words
