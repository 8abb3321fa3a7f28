"""Word-level vocabulary: one id per word, punctuation mark or line break.

The interface is :class:`~.text.Vocabulary`'s; this module adds the tokenizer options and the
frequency order. Splitting is :func:`._symbols.tokenize_words`; a chunk ends only at whitespace
(:func:`._symbols.word_cut`) so no word is cut in two.
"""
from __future__ import annotations

from collections import Counter
from itertools import repeat

import numpy as np

from . import text as text_module
from ._symbols import rechunk, tokenize_words, word_cut
from .text import Vocabulary


class WordVocab(Vocabulary):
    """One id per word, punctuation mark or line break (see :func:`._symbols.tokenize_words`).

    Options: ``lowercase`` (fold case first), ``strip_punctuation`` (drop every symbol that is not
    a letter, digit, underscore or an apostrophe inside a word: punctuation, symbols, emoji),
    ``keep_newlines`` (``\\n``, ``\\r\\n`` and ``\\r`` become the token ``"\\n"``; otherwise line
    breaks are plain spaces). Ids: specials, then words by decreasing count, ties by code point.
    ``decode`` joins words with single spaces and line breaks with nothing, so
    ``encode(decode(ids)) == ids`` for any ids the tokenizer can produce.
    """

    level = "word"
    DEFAULT_SPECIALS = ("pad", "unk")

    def __init__(self, tokens, specials=None, *, lowercase: bool = False, strip_punctuation: bool = False,
                 keep_newlines: bool = True):
        for name, value in (("lowercase", lowercase), ("strip_punctuation", strip_punctuation),
                            ("keep_newlines", keep_newlines)):
            if not isinstance(value, bool):
                raise TypeError(f"WordVocab: {name} must be True or False, got {value!r}")
        self._options = {"lowercase": lowercase, "strip_punctuation": strip_punctuation,
                         "keep_newlines": keep_newlines}
        super().__init__(tokens, specials)

    @property
    def options(self) -> dict:
        return dict(self._options)

    def _prepare(self) -> None:
        special_ids = set(self._specials.values())
        for i, token in enumerate(self._tokens):
            if i not in special_ids and token != "\n" and any(ch.isspace() for ch in token):
                raise ValueError(f"WordVocab: token {i} is {token!r}; words cannot contain whitespace "
                                 "(the only whitespace token is the line break '\\n')")

    @classmethod
    def count_tokens(cls, text, *, lowercase: bool = False, strip_punctuation: bool = False,
                     keep_newlines: bool = True) -> Counter:
        counts: Counter = Counter()
        for chunk in rechunk(text, _chunk_chars(), word_cut):
            counts.update(tokenize_words(chunk, lowercase, strip_punctuation, keep_newlines))
        return counts

    @classmethod
    def _order(cls, counts, symbols):
        return sorted(symbols, key=lambda s: (-counts[s], s))

    def _chunks(self, text):
        return rechunk(text, _chunk_chars(), word_cut)   # words: chunks end at whitespace

    def _split(self, chunk: str) -> list[str]:
        return tokenize_words(chunk, **self._options)

    def _lookup(self, chunk):
        words = self._split(chunk)
        ids = np.fromiter(map(self._index.get, words, repeat(-1)), dtype=np.int64, count=len(words))
        missing = Counter(w for w, i in zip(words, ids) if i < 0) if (ids < 0).any() else Counter()
        return ids, missing

    def decode(self, ids, skip_specials: bool = False) -> str:
        """Words joined by single spaces; no space around the line-break token."""
        ids = self._ids_for_decode(ids)
        skip = set(self._specials.values()) if skip_specials else set()
        lines, line = [], []
        for i in ids.tolist():
            token = self._tokens[i]
            if i in skip:
                continue
            if token == "\n" and self._options["keep_newlines"]:
                lines.append(" ".join(line))
                line = []
            else:
                line.append(token)
        lines.append(" ".join(line))
        return "\n".join(lines)


def _chunk_chars() -> int:
    return text_module.CHUNK_CHARS   # read at call time: one setting for both levels
