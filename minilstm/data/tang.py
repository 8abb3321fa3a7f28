"""Tang poems in the ``tang.npz`` layout of the widely used PyTorch poetry tutorials.

Layout: ``data`` — int32 ``(N, 125)``, one poem per row, ``<START>`` poem ``<EOP>``, padded at
the *front* with ``</s>`` (a poem longer than the row was cut at the end and has no ``<EOP>``);
``word2ix`` (token -> id) and ``ix2word`` (id -> token) — dicts stored as pickled 0-d object
arrays. :func:`read_tang` reads it without ``np.load(allow_pickle=True)`` (see
:mod:`.safe_npz`: only the globals a pickled dict array needs are resolved), validates every
field and returns a :class:`PoemCorpus` whose :class:`~.text.CharVocab` keeps the file's ids.
:func:`write_tang` writes the same layout atomically (``np.load(allow_pickle=True)`` of the
tutorials reads it), and :func:`convert_chinese_poetry` builds it from the public
chinese-poetry ``poet.tang.*.json`` files.
"""
from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .._io import atomic_write
from .safe_npz import read_npz
from .text import CharVocab

TANG_PAD, TANG_START, TANG_END = "</s>", "<START>", "<EOP>"
TANG_SPECIALS = {"pad": TANG_PAD, "start": TANG_START, "end": TANG_END}
TANG_LENGTH = 125
LONG_POEMS = ("drop", "truncate")
_LINE_END = "，。！？；,.!?;"   # what ends a line of a poem
# Editorial notes in the chinese-poetry texts, e.g. "（一作...）" (a variant reading).
_ANNOTATION = re.compile(r"（[^（）]*）|\([^()]*\)|［[^［］]*］|\[[^\[\]]*\]|｛[^｛｝]*｝|\{[^{}]*\}")


class TangFormatError(ValueError):
    """A tang-layout file or array breaks the layout; ``field`` names the offending part."""

    def __init__(self, field: str, detail: str, path=None):
        self.field, self.detail, self.path = field, detail, path
        super().__init__(f"{path}: {field}: {detail}" if path is not None else f"{field}: {detail}")


@dataclass(frozen=True, eq=False)
class PoemCorpus:
    """Poems as a front-padded id matrix with its vocabulary and special ids.

    ``poems`` is ``(N, L)`` in ``vocab.id_dtype``; each row is padding, ``start_id``, the poem,
    then ``end_id`` (absent in a poem that was cut at the end).
    """

    poems: np.ndarray
    vocab: CharVocab
    pad_id: int
    start_id: int
    end_id: int

    def __len__(self) -> int:
        return len(self.poems)

    @property
    def length(self) -> int:
        """Row length L (125 in the tutorials' file)."""
        return self.poems.shape[1]

    def text(self, i: int) -> str:
        """Poem ``i`` as text, without padding, ``<START>`` and ``<EOP>``."""
        row = self.poems[i]
        return self.vocab.decode(row[(row != self.pad_id) & (row != self.start_id) & (row != self.end_id)])


def _dict_of(value, field: str) -> dict:
    if isinstance(value, np.ndarray) and value.shape == () and value.dtype == object:
        value = value.item()
    if not isinstance(value, dict):
        raise TangFormatError(field, f"expected a dict (stored as a 0-d object array), got {type(value).__name__}")
    return value


def validate_tang(data, word2ix, ix2word) -> CharVocab:
    """Check the three tang fields; return the vocabulary they describe.

    Raises :class:`TangFormatError` naming the field: ``data`` dtype/shape/ids/row structure,
    ``word2ix``/``ix2word`` types, ids ``0..V-1``, the two dicts inverse of each other, and the
    special tokens present.
    """
    word2ix, ix2word = _dict_of(word2ix, "word2ix"), _dict_of(ix2word, "ix2word")
    for token, i in word2ix.items():
        if not isinstance(token, str) or isinstance(i, bool) or not isinstance(i, (int, np.integer)):
            raise TangFormatError("word2ix", f"entry {token!r}: {i!r} is not str -> int")
    size = len(word2ix)
    if sorted(int(i) for i in word2ix.values()) != list(range(size)):
        raise TangFormatError("word2ix", f"ids are not exactly 0..{size - 1} (each once)")
    if len(ix2word) != size or any(ix2word.get(int(i)) != token for token, i in word2ix.items()):
        raise TangFormatError("ix2word", "is not the inverse of word2ix")
    for token in (TANG_PAD, TANG_START, TANG_END):
        if token not in word2ix:
            raise TangFormatError("word2ix", f"the special token {token!r} is missing")
    try:
        vocab = CharVocab([ix2word[i] for i in range(size)], TANG_SPECIALS)
    except ValueError as exc:
        raise TangFormatError("ix2word", str(exc)) from None
    _validate_rows(data, vocab)
    return vocab


def _validate_rows(data, vocab: CharVocab) -> None:
    if not isinstance(data, np.ndarray) or data.dtype.kind not in "iu":
        raise TangFormatError("data", f"expected an integer array, got {getattr(data, 'dtype', type(data).__name__)}")
    if data.ndim != 2 or data.shape[0] < 1 or data.shape[1] < 3:
        raise TangFormatError("data", f"has shape {data.shape}, expected (N, L) with N >= 1 and L >= 3")
    bad = np.argwhere((data < 0) | (data >= vocab.size))
    if bad.size:
        row, col = bad[0]
        raise TangFormatError("data", f"id {int(data[row, col])} at [{row}, {col}] is outside 0..{vocab.size - 1}")
    pad, start, end = (vocab.special_id(name) for name in ("pad", "start", "end"))
    columns = np.arange(data.shape[1])
    text = data != pad
    first = text.argmax(axis=1)
    checks = [
        (~text.any(axis=1), "is all padding"),
        (data[np.arange(len(data)), first] != start, f"does not begin (after its front padding) with {TANG_START}"),
        (((data == pad) & (columns >= first[:, None])).any(axis=1), f"has {TANG_PAD} after its {TANG_START}"),
        ((data == start).sum(axis=1) != 1, f"holds {TANG_START} more than once"),
        (((data == end) & (columns < data.shape[1] - 1)).any(axis=1), f"has {TANG_END} before its last position"),
    ]
    for failed, what in checks:
        rows = np.flatnonzero(failed)
        if rows.size:
            raise TangFormatError("data", f"row {int(rows[0])} {what} ({rows.size} row(s) like this)")


def read_tang(path) -> PoemCorpus:
    """Read and validate a tang-layout ``.npz`` (pickles restricted, see :mod:`.safe_npz`)."""
    arrays = read_npz(path, object_members=("word2ix", "ix2word"))
    for field in ("data", "word2ix", "ix2word"):
        if field not in arrays:
            raise TangFormatError(field, f"missing (the file has {sorted(arrays)})", path)
    try:
        vocab = validate_tang(arrays["data"], arrays["word2ix"], arrays["ix2word"])
    except TangFormatError as exc:
        raise TangFormatError(exc.field, exc.detail, path) from None
    return _corpus(arrays["data"].astype(vocab.id_dtype), vocab)


def _corpus(poems: np.ndarray, vocab: CharVocab) -> PoemCorpus:
    return PoemCorpus(poems, vocab, vocab.special_id("pad"), vocab.special_id("start"), vocab.special_id("end"))


def write_tang(path, corpus: PoemCorpus) -> Path:
    """Write ``corpus`` in the tang layout, atomically; the file is validated before writing."""
    tokens = corpus.vocab.tokens
    for name, token in TANG_SPECIALS.items():
        if corpus.vocab.specials.get(name) is None or tokens[corpus.vocab.special_id(name)] != token:
            raise ValueError(f"write_tang: the vocabulary's {name!r} special must be the token {token!r}; "
                             f"it has specials {corpus.vocab.specials}")
    data = np.ascontiguousarray(corpus.poems, dtype=np.int32)
    word2ix = {token: i for i, token in enumerate(tokens)}
    ix2word = dict(enumerate(tokens))
    validate_tang(data, word2ix, ix2word)
    with atomic_write(path, "wb") as handle:
        np.savez_compressed(handle, data=data, word2ix=np.array(word2ix, dtype=object),
                            ix2word=np.array(ix2word, dtype=object))
    return Path(path)


def _truncate(body: str, limit: int) -> str:
    """The longest prefix of ``body`` within ``limit`` characters that ends a line, or the
    first ``limit`` characters if no line ends within them."""
    cut = body[:limit]
    end = max(cut.rfind(mark) for mark in _LINE_END)
    return cut[:end + 1] if end >= 0 else cut


def poems_from_texts(texts: Iterable[str], *, length: int = TANG_LENGTH, long: str = "drop",
                     vocab: CharVocab | None = None, unknown: str = "error", log=None) -> PoemCorpus:
    """Lay poems out as tang rows of ``length`` ids.

    A poem needs ``len(poem) + 2`` ids (``<START>``, ``<EOP>``). Longer ones are dropped
    (``long="drop"``) or truncated (``long="truncate"``: cut after the last complete line —
    ending in ``，。！？；`` — that fits, else at the limit, and given their ``<EOP>``). Empty poems are skipped.
    Without ``vocab`` one is built: the three specials first, then the characters by code point.
    """
    if isinstance(length, bool) or not isinstance(length, (int, np.integer)) or length < 3:
        raise ValueError(f"poems_from_texts: length must be an integer >= 3, got {length!r}")
    if long not in LONG_POEMS:
        raise ValueError(f"poems_from_texts: long must be one of {LONG_POEMS}, got {long!r}")
    bodies, dropped, truncated = [], 0, 0
    for i, body in enumerate(texts):
        if not isinstance(body, str):
            raise TypeError(f"poems_from_texts: poem {i} is {type(body).__name__}, expected str")
        if len(body) + 2 > length:
            if long == "drop":
                dropped += 1
                continue
            body, truncated = _truncate(body, length - 2), truncated + 1
        if body:
            bodies.append(body)
    if not bodies:
        raise ValueError(f"poems_from_texts: no poem fits in length={length} ({dropped} dropped as too long)")
    vocab = vocab if vocab is not None else CharVocab.build(bodies, specials=TANG_SPECIALS)
    corpus = _corpus(np.full((len(bodies), length), vocab.special_id("pad"), dtype=vocab.id_dtype), vocab)
    for i, body in enumerate(bodies):
        ids = vocab.encode(body, unknown=unknown)
        corpus.poems[i, length - len(ids) - 2:] = np.concatenate([[corpus.start_id], ids, [corpus.end_id]])
    if log:
        log(f"tang: {len(bodies)} poems, {dropped} dropped and {truncated} truncated (longer than {length - 2} characters)")
    return corpus


def _json_files(source) -> list[Path]:
    if isinstance(source, (str, Path)) and Path(source).is_dir():
        found = [p for p in Path(source).glob("poet.tang.*.json") if p.stem.split(".")[-1].isdigit()]
        if not found:
            raise FileNotFoundError(f"{source} holds no poet.tang.<number>.json files")
        # numeric order: poet.tang.1000.json after poet.tang.0.json, not after poet.tang.10000.json
        return sorted(found, key=lambda p: int(p.stem.split(".")[-1]))
    paths = [Path(source)] if isinstance(source, (str, Path)) else [Path(p) for p in source]
    for path in paths:
        if not path.is_file():
            raise FileNotFoundError(f"chinese-poetry JSON file {path} does not exist")
    return paths


def read_chinese_poetry(source, strip_annotations: bool = True) -> list[str]:
    """Poem texts from chinese-poetry JSON (a directory of ``poet.tang.*.json``, one file or a
    list): each file is a list of objects whose ``paragraphs`` list of lines is joined into one
    poem. ``strip_annotations`` removes editorial notes in brackets (``（一作...）``)."""
    texts = []
    for path in _json_files(source):
        try:
            records = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"{path} is not UTF-8 JSON: {exc}") from None
        if not isinstance(records, list):
            raise ValueError(f"{path}: expected a JSON list of poems, got {type(records).__name__}")
        for i, record in enumerate(records):
            lines = record.get("paragraphs") if isinstance(record, dict) else None
            if not isinstance(lines, list) or not all(isinstance(line, str) for line in lines):
                raise ValueError(f"{path}: poem {i} has no 'paragraphs' list of strings")
            text = "".join(line.strip() for line in lines)
            texts.append(_ANNOTATION.sub("", text) if strip_annotations else text)
    return texts


def convert_chinese_poetry(source, *, length: int = TANG_LENGTH, long: str = "drop",
                           strip_annotations: bool = True, log=None) -> PoemCorpus:
    """chinese-poetry JSON -> :class:`PoemCorpus` (save it with :func:`write_tang`).

    No traditional -> simplified conversion is made: the characters stay as the files have them.
    """
    return poems_from_texts(read_chinese_poetry(source, strip_annotations), length=length, long=long, log=log)
