"""The tang.npz layout: safe reading (no pickle code runs), validation, writing, JSON conversion."""
from __future__ import annotations

import io
import json
import os
import pickle
import shlex
import subprocess
import zipfile

import numpy as np
import pytest

from minilstm.data import (TANG_END, TANG_PAD, TANG_START, CharVocab, PoemCorpus, TangFormatError,
                           UnsafePickleError, convert_chinese_poetry, poems_from_texts, read_npz, read_tang,
                           write_tang)

POEMS = ["床前明月光，疑是地上霜。", "举头望明月，低头思故乡。", "春眠不觉晓"]


def _npy(value) -> bytes:
    buffer = io.BytesIO()
    np.lib.format.write_array(buffer, value, allow_pickle=True)
    return buffer.getvalue()


def _object_npy(payload: bytes) -> bytes:
    """A 0-d object .npy whose pickle is ``payload`` (whatever it holds)."""
    buffer = io.BytesIO()
    np.lib.format.write_array_header_1_0(buffer, {"descr": "|O", "fortran_order": False, "shape": ()})
    return buffer.getvalue() + payload


def _npz(path, **members):
    with zipfile.ZipFile(path, "w") as archive:
        for name, value in members.items():
            archive.writestr(name + ".npy", value if isinstance(value, bytes) else _npy(value))
    return path


def _fields(corpus: PoemCorpus):
    tokens = corpus.vocab.tokens
    return (corpus.poems.astype(np.int32), {t: i for i, t in enumerate(tokens)}, dict(enumerate(tokens)))


@pytest.fixture
def small():
    return poems_from_texts(POEMS, length=16)


class Payload:
    """Unpickling this runs a shell command (here: create a marker file)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {shlex.quote(self.marker)}",))


def test_code_execution_payload_is_refused_and_never_runs(tmp_path, small):
    data, word2ix, _ = _fields(small)
    marker = tmp_path / "pwned"
    path = _npz(tmp_path / "evil.npz", data=data, word2ix=np.array(word2ix, dtype=object),
                ix2word=_object_npy(pickle.dumps(Payload(marker))))
    with pytest.raises(UnsafePickleError, match=r"refusing to unpickle the global (posix|nt)\.system") as info:
        read_tang(path)
    assert info.value.name in ("posix.system", "nt.system")
    assert not marker.exists()
    # The control: the tutorials' np.load(allow_pickle=True) does run it.
    control = tmp_path / "control"
    _npz(tmp_path / "control.npz", ix2word=_object_npy(pickle.dumps(Payload(control))))
    np.load(tmp_path / "control.npz", allow_pickle=True)["ix2word"]
    assert control.exists()


@pytest.mark.parametrize("callable_, argument, name", [
    (eval, "1", "builtins.eval"),
    (subprocess.Popen, ["true"], "subprocess.Popen"),
    (np.load, "x.npy", "numpy.load"),
])
def test_any_global_outside_the_allow_list_is_refused(tmp_path, callable_, argument, name):
    class Call:
        def __reduce__(self):
            return (callable_, (argument,))

    path = _npz(tmp_path / "bad.npz", word2ix=_object_npy(pickle.dumps(Call())))
    with pytest.raises(UnsafePickleError, match=name.replace(".", r"\.")):
        read_npz(path, object_members=("word2ix",))


def test_codecs_encode_is_allowed_only_for_latin1(tmp_path):
    payload = b"c_codecs\nencode\n(Vabc\nVzlib\ntR."   # protocol 0: _codecs.encode('abc', 'zlib')
    path = _npz(tmp_path / "codec.npz", word2ix=_object_npy(payload))
    with pytest.raises(ValueError, match="allowed only as encode\\(str, 'latin1'\\)"):
        read_npz(path, object_members=("word2ix",))


def test_object_arrays_are_refused_outside_the_named_members(tmp_path):
    path = _npz(tmp_path / "obj.npz", data=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match=r"data.npy: holds Python objects"):
        read_npz(path, object_members=("word2ix",))


def test_files_written_by_numpy_1_and_old_pickle_protocols_are_read(tmp_path, small):
    data, word2ix, ix2word = _fields(small)
    def old(mapping):
        # protocol 2 with NumPy 1.x module names, numpy integer scalars (scalar + _codecs.encode)
        payload = pickle.dumps(np.array(mapping, dtype=object), protocol=2)
        payload = payload.replace(b"numpy._core.multiarray", b"numpy.core.multiarray")
        assert b"numpy.core.multiarray\nscalar" in payload and b"_codecs\nencode" in payload
        return _object_npy(payload)
    word2ix_np = {token: np.int64(i) for token, i in word2ix.items()}
    ix2word_np = {np.int64(i): token for i, token in ix2word.items()}
    path = _npz(tmp_path / "old.npz", data=data, word2ix=old(word2ix_np), ix2word=old(ix2word_np))
    corpus = read_tang(path)
    assert corpus.vocab == small.vocab and corpus.poems.tolist() == small.poems.tolist()


def test_write_then_read_and_tutorial_compatibility(tmp_path, small):
    path = write_tang(tmp_path / "tang.npz", small)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tang.npz"]
    with np.load(path, allow_pickle=True) as tutorial:   # how the PyTorch tutorials read it
        assert tutorial["data"].dtype == np.int32 and tutorial["data"].shape == (3, 16)
        word2ix, ix2word = tutorial["word2ix"].item(), tutorial["ix2word"].item()
        assert word2ix[TANG_START] == small.start_id and ix2word[small.end_id] == TANG_END
        assert tutorial["data"].tolist() == small.poems.tolist()
    back = read_tang(path)
    assert back.vocab == small.vocab and back.poems.tolist() == small.poems.tolist()
    assert back.poems.dtype == np.uint8 and back.pad_id == small.pad_id
    assert [back.text(i) for i in range(3)] == POEMS


def test_write_refuses_other_special_tokens(tmp_path, small):
    vocab = CharVocab.build("月光", specials=("pad", "start", "end"))
    corpus = PoemCorpus(np.zeros((1, 4), np.uint8), vocab, 0, 1, 2)
    with pytest.raises(ValueError, match="'pad' special must be the token '</s>'"):
        write_tang(tmp_path / "x.npz", corpus)
    assert not (tmp_path / "x.npz").exists()


def _broken(small, field):
    data, word2ix, ix2word = _fields(small)
    start, pad, end = small.start_id, small.pad_id, small.end_id
    if field == "float":
        data = data.astype(np.float64)
    elif field == "1d":
        data = data[0]
    elif field == "range":
        data[0, -2] = 99
    elif field == "all-pad":
        data[1] = pad
    elif field == "no-start":
        data[1, data[1].tolist().index(start)] = pad
    elif field == "pad-inside":
        data[2, -3] = pad
    elif field == "eop-early":
        data[2, -2] = end
    elif field == "not-dict":
        word2ix = list(word2ix)
    elif field == "not-inverse":
        ix2word = dict(ix2word)
        ix2word[3], ix2word[4] = ix2word[4], ix2word[3]
    elif field == "gap":
        word2ix = dict(word2ix)
        word2ix[TANG_PAD] = 1000
    elif field == "no-special":
        word2ix = {("<E>" if t == TANG_END else t): i for t, i in word2ix.items()}
        ix2word = {i: t for t, i in word2ix.items()}
    elif field == "multi-char":
        word2ix = {("月光" if t == "月" else t): i for t, i in word2ix.items()}
        ix2word = {i: t for t, i in word2ix.items()}
    return dict(data=data, word2ix=np.array(word2ix, dtype=object), ix2word=np.array(ix2word, dtype=object))


@pytest.mark.parametrize("case, field, message", [
    ("float", "data", "expected an integer array"),
    ("1d", "data", "has shape"),
    ("range", "data", r"id 99 at \[0, 14\] is outside"),
    ("all-pad", "data", "row 1 is all padding"),
    ("no-start", "data", "row 1 does not begin"),
    ("pad-inside", "data", "row 2 has </s> after its <START>"),
    ("eop-early", "data", "row 2 has <EOP> before its last position"),
    ("not-dict", "word2ix", "expected a dict"),
    ("not-inverse", "ix2word", "is not the inverse of word2ix"),
    ("gap", "word2ix", "ids are not exactly 0.."),
    ("no-special", "word2ix", "'<EOP>' is missing"),
    ("multi-char", "ix2word", "single characters"),
])
def test_validation_names_the_field(tmp_path, small, case, field, message):
    path = _npz(tmp_path / "broken.npz", **_broken(small, case))
    with pytest.raises(TangFormatError, match=message) as info:
        read_tang(path)
    assert info.value.field == field and str(info.value).startswith(f"{path}: {field}: ")


def test_missing_member_and_non_npz_files(tmp_path, small):
    data, word2ix, _ = _fields(small)
    path = _npz(tmp_path / "two.npz", data=data, word2ix=np.array(word2ix, dtype=object))
    with pytest.raises(TangFormatError, match="ix2word: missing"):
        read_tang(path)
    (tmp_path / "text.npz").write_text("hello", encoding="utf-8")
    with pytest.raises(ValueError, match="not an .npz file"):
        read_tang(tmp_path / "text.npz")
    with pytest.raises(FileNotFoundError, match="nothing.npz"):
        read_tang(tmp_path / "nothing.npz")


def test_poems_from_texts_front_pads_and_handles_long_poems():
    corpus = poems_from_texts(POEMS, length=16)
    assert corpus.vocab.tokens[:3] == (TANG_PAD, TANG_START, TANG_END)
    row = corpus.poems[2].tolist()
    assert row[:9] == [corpus.pad_id] * 9 and row[9] == corpus.start_id and row[-1] == corpus.end_id
    assert corpus.vocab.decode(corpus.poems[2][10:15]) == "春眠不觉晓"
    dropped = poems_from_texts(POEMS, length=12)
    assert [dropped.text(i) for i in range(len(dropped))] == ["春眠不觉晓"]
    cut = poems_from_texts(POEMS + ["一二三四五六七八九十"], length=10, long="truncate")
    # cut after the last line end that fits, or at the limit when none does
    assert [cut.text(i) for i in range(len(cut))] == ["床前明月光，", "举头望明月，", "春眠不觉晓", "一二三四五六七八"]
    assert all(cut.poems[i, -1] == cut.end_id for i in range(len(cut)))
    with pytest.raises(ValueError, match="long must be one of"):
        poems_from_texts(POEMS, long="wrap")
    with pytest.raises(ValueError, match="no poem fits"):
        poems_from_texts(POEMS, length=4)


def _write_json(path, records):
    path.write_text(json.dumps(records, ensure_ascii=False), encoding="utf-8")


def test_convert_chinese_poetry_json(tmp_path):
    _write_json(tmp_path / "poet.tang.1000.json", [{"title": "c", "paragraphs": ["春眠不觉晓，", "处处闻啼鸟。"]}])
    _write_json(tmp_path / "poet.tang.0.json", [{"paragraphs": ["床前明月光，", "疑是地上霜（一作霜雪）。"]}])
    _write_json(tmp_path / "poet.tang.200.json", [{"paragraphs": ["一二三四五六七八九十" * 20]}])
    _write_json(tmp_path / "authors.tang.json", [{"name": "李白"}])   # not a poem file: ignored
    logs = []
    corpus = convert_chinese_poetry(tmp_path, log=logs.append)
    assert [corpus.text(i) for i in range(len(corpus))] == ["床前明月光，疑是地上霜。", "春眠不觉晓，处处闻啼鸟。"]
    assert logs == ["tang: 2 poems, 1 dropped and 0 truncated (longer than 123 characters)"]
    assert corpus.length == 125
    back = read_tang(write_tang(tmp_path / "out.npz", corpus))
    assert back.vocab == corpus.vocab and back.poems.tolist() == corpus.poems.tolist()
    kept = convert_chinese_poetry(tmp_path / "poet.tang.0.json", strip_annotations=False)
    assert kept.text(0) == "床前明月光，疑是地上霜（一作霜雪）。"
    truncated = convert_chinese_poetry([tmp_path / "poet.tang.200.json"], long="truncate")
    assert len(truncated.text(0)) == 123


def test_convert_errors_name_the_file_and_poem(tmp_path):
    (tmp_path / "poet.tang.0.json").write_text("[{", encoding="utf-8")
    with pytest.raises(ValueError, match="poet.tang.0.json is not UTF-8 JSON"):
        convert_chinese_poetry(tmp_path)
    _write_json(tmp_path / "poet.tang.0.json", [{"paragraphs": ["好"]}, {"title": "no lines"}])
    with pytest.raises(ValueError, match="poet.tang.0.json: poem 1 has no 'paragraphs'"):
        convert_chinese_poetry(tmp_path)
    with pytest.raises(FileNotFoundError, match="no poet.tang"):
        convert_chinese_poetry(tmp_path / "..")


def test_real_tang_file(shared_file):
    path = shared_file("tang.npz")
    corpus = read_tang(path)
    assert corpus.poems.shape == (56221, 125) and corpus.poems.dtype == np.uint16
    assert corpus.vocab.size == 9182
    assert (corpus.pad_id, corpus.start_id, corpus.end_id) == (9181, 9180, 9179)
    assert corpus.text(0).startswith("秦川雄帝宅，函谷壯皇居。")
    assert int((corpus.poems[:, -1] != corpus.end_id).sum()) == 3764   # poems cut at 125 ids
    with np.load(path, allow_pickle=True) as reference:   # trusted shared file: a cross-check
        assert np.array_equal(corpus.poems, reference["data"])
        assert {t: corpus.vocab.id_of(t) for t in corpus.vocab.tokens} == reference["word2ix"].item()
