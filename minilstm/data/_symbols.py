"""Vectorised symbol handling behind :mod:`.text`: code points, chunking, word splitting.

Characters are handled as arrays of Unicode code points: ``str.encode("utf-32-le")`` turns a
chunk into four bytes per code point, which ``np.frombuffer`` views as ``uint32`` without a copy.
``surrogatepass`` lets lone surrogates (e.g. from ``surrogateescape`` decoding) through as the
code points they are, so nothing a Python ``str`` can hold is refused.
"""
from __future__ import annotations

import re
from collections import Counter

import numpy as np

DECODE_CHUNK = 1 << 20      # ids turned back into text per step
MAX_CARRY_CHUNKS = 16       # a word chunk with no whitespace is cut anyway past 16 chunks


def id_dtype_for(size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids ``0 .. size-1``."""
    for dtype in (np.uint8, np.uint16, np.uint32):
        if size <= np.iinfo(dtype).max + 1:
            return np.dtype(dtype)
    raise ValueError(f"vocabulary size {size} does not fit in uint32 ids")


def code_points(chunk: str) -> np.ndarray:
    """The code points of ``chunk`` as a read-only ``uint32`` view (no per-character objects)."""
    return np.frombuffer(chunk.encode("utf-32-le", "surrogatepass"), dtype="<u4")


def count_code_points(chunk: str, counts: Counter) -> None:
    """Add the character counts of ``chunk`` to ``counts``."""
    cps = code_points(chunk)
    if not cps.size:
        return
    top = int(cps.max())
    if top < 1 << 17:   # dense histogram: one pass, at most 1 MiB
        histogram = np.bincount(cps, minlength=top + 1)
        present = np.flatnonzero(histogram)
        found = zip(present.tolist(), histogram[present].tolist())
    else:               # sparse: sort-based
        values, n = np.unique(cps, return_counts=True)
        found = zip(values.tolist(), n.tolist())
    for cp, n in found:
        counts[chr(cp)] += n


class CodePointTable:
    """Lookup tables of a character vocabulary: code point -> id and id -> code point.

    ``by_code_point`` has one ``int32`` entry per code point up to the largest in the vocabulary
    (-1 where absent) plus a final -1 that every larger code point is clipped onto, so a lookup
    is one gather. It is at most 4.4 MB (the whole of Unicode), 0.5 KB for tiny Shakespeare.
    """

    def __init__(self, tokens):
        self.tokens = tokens
        singles = [(ord(t), i) for i, t in enumerate(tokens) if len(t) == 1]
        top = max((cp for cp, _ in singles), default=0)
        self.by_code_point = np.full(top + 2, -1, dtype=np.int32)
        self.code_point = np.zeros(len(tokens), dtype="<u4")
        self.multi = np.array([len(t) != 1 for t in tokens], dtype=bool)
        for cp, i in singles:
            self.by_code_point[cp] = i
            self.code_point[i] = cp

    def lookup(self, chunk: str) -> tuple[np.ndarray, Counter]:
        """Ids of the characters of ``chunk`` (``int32``, -1 if unknown) and the unknown counts."""
        cps = code_points(chunk)
        ids = self.by_code_point.take(cps, mode="clip")
        missing: Counter = Counter()
        unknown = ids < 0
        if unknown.any():
            values, n = np.unique(cps[unknown], return_counts=True)
            missing.update({chr(cp): c for cp, c in zip(values.tolist(), n.tolist())})
        return ids, missing


def text_from_code_points(ids: np.ndarray, table: CodePointTable) -> str:
    """Decode validated ids: runs of single characters in bulk, multi-character specials singly."""
    pieces = []
    for start in range(0, len(ids), DECODE_CHUNK):
        part = ids[start:start + DECODE_CHUNK]
        previous = 0
        for j in np.flatnonzero(table.multi[part]).tolist() + [len(part)]:
            if j > previous:
                run = table.code_point[part[previous:j]]
                pieces.append(run.tobytes().decode("utf-32-le", "surrogatepass"))
            if j < len(part):
                pieces.append(table.tokens[part[j]])
            previous = j + 1
    return "".join(pieces)


def rechunk(text, size: int, cut):
    """Yield ``text`` (a ``str`` or an iterable of ``str`` pieces) as chunks of about ``size``.

    ``cut(buffer)`` says where a chunk may end (an index; 0 for nowhere); ``None`` means
    anywhere. What follows the cut is carried into the next chunk, so no symbol is split across
    chunks, unless a buffer grows past ``MAX_CARRY_CHUNKS * size`` with no place to cut.
    """
    if isinstance(text, (bytes, bytearray)):
        raise TypeError("text must be str, got bytes: decode it first (e.g. with minilstm.data.read_text)")
    carry = ""
    for piece in _slices([text] if isinstance(text, str) else text, size):
        buffer = carry + piece if carry else piece
        end = len(buffer) if cut is None else cut(buffer)
        if end <= 0 and len(buffer) > MAX_CARRY_CHUNKS * size:
            end = len(buffer)
        if end > 0:
            yield buffer[:end]
        carry = buffer[end:] if end > 0 else buffer
    if carry:
        yield carry


def _slices(pieces, size: int):
    """The pieces cut to at most ``size`` characters each (so chunk temporaries stay bounded)."""
    for piece in pieces:
        if not isinstance(piece, str):
            raise TypeError(f"text must be a str or an iterable of str, got a piece of type {type(piece).__name__}")
        if len(piece) <= size:
            yield piece
        else:
            yield from (piece[i:i + size] for i in range(0, len(piece), size))


def word_cut(buffer: str) -> int:
    """End a word chunk after its last space, tab or line feed; never inside ``"\\r\\n"``."""
    return max(buffer.rfind(" "), buffer.rfind("\t"), buffer.rfind("\n")) + 1


_WORD = r"\w+(?:['\u2019]\w+)*"   # letters/digits/_ joined by inner apostrophes: don't, o'er
_PUNCTUATION = r"[^\w\s]"          # any other visible symbol, one per token
_TRAILING = frozenset(",.;:!?)]}\"")   # [^\w\s] marks that often end a word
_PATTERNS = {False: re.compile(f"{_WORD}|{_PUNCTUATION}"), True: re.compile(_WORD)}


def tokenize_words(chunk: str, lowercase: bool, strip_punctuation: bool, keep_newlines: bool) -> list[str]:
    """Split ``chunk`` into words, punctuation marks and (optionally) ``"\\n"`` tokens.

    A word is ``\\w+`` runs joined by inner apostrophes; every other non-space character is a
    token of its own (dropped with ``strip_punctuation``). With ``keep_newlines``, ``"\\r\\n"``,
    ``"\\r"`` and ``"\\n"`` become one ``"\\n"`` token each; other whitespace only separates.

    Speed: ``str.split`` cuts at whitespace in C, and a piece that ``str.isalnum()`` accepts is
    exactly one ``\\w+`` word (both use the same Unicode alphanumeric test); a word followed by
    one common mark is split by hand; the regular expression runs only on the other pieces.
    """
    if lowercase:
        chunk = chunk.lower()
    if keep_newlines:
        if "\r" in chunk:
            chunk = chunk.replace("\r\n", "\n").replace("\r", "\n")
        lines = chunk.split("\n")
    else:
        lines = [chunk]
    findall = _PATTERNS[strip_punctuation].findall
    tokens: list[str] = []
    append, extend = tokens.append, tokens.extend
    for n, line in enumerate(lines):
        if n:
            append("\n")
        for piece in line.split():
            if piece.isalnum():
                append(piece)
            elif piece[:-1].isalnum() and piece[-1] in _TRAILING:   # "word," "word." and the like
                append(piece[:-1])
                if not strip_punctuation:
                    append(piece[-1])
            else:
                extend(findall(piece))
    return tokens
