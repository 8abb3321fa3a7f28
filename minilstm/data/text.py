"""Vocabularies: the two-way map between text and integer ids.

Two levels share one interface (:class:`Vocabulary`, here with :class:`CharVocab`;
:class:`~.words.WordVocab` lives in :mod:`.words`):

* :class:`CharVocab` — one id per Unicode code point (never per byte), so Chinese, accents,
  emoji and ``"\\r\\n"`` (two symbols) round-trip exactly. Built from plain text it has no
  special tokens by default: tiny Shakespeare gives the 65-symbol char-rnn vocabulary.
* :class:`WordVocab` — one id per word, punctuation mark or line break, with the classic
  preprocessing options (``lowercase``, ``strip_punctuation``, ``keep_newlines``), a frequency
  cap (``max_size``) and ``min_count``. Its default specials are ``pad`` (id 0) and ``unk`` (id 1).

Id rule (deterministic): special tokens first, in the order given; then the symbols — by code
point for characters, by decreasing count then code point for words. A vocabulary is immutable;
:meth:`Vocabulary.extend` returns a new one that keeps every existing id.

Special tokens have names (``pad``, ``unk``, ``start``, ``end``) and token strings (defaults
``<pad>``, ``<unk>``, ``<start>``, ``<eop>``; the tang corpus uses ``</s>``, ``<START>``,
``<EOP>``). Text never produces a multi-character special: they enter a sequence only by id.

Encoding is vectorised and works chunk by chunk so memory stays bounded: characters become code
points with one ``str.encode("utf-32-le")`` per chunk and ids with one table lookup
(:mod:`._symbols`); words are split per chunk and looked up in a dict.
"""
from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np

from .._io import atomic_write_text
from ._symbols import CodePointTable, count_code_points, id_dtype_for, rechunk, text_from_code_points

SPECIAL_NAMES = ("pad", "unk", "start", "end")
DEFAULT_SPECIAL_TOKENS = {"pad": "<pad>", "unk": "<unk>", "start": "<start>", "end": "<eop>"}
UNKNOWN_POLICIES = ("error", "map", "skip")
FORMAT = "minilstm.vocabulary"
FORMAT_VERSION = 1
CHUNK_CHARS = 1 << 18   # characters per encoding chunk: temporaries of ~20 bytes per character


class UnknownSymbolError(ValueError):
    """``encode`` met symbols outside the vocabulary.

    ``symbols`` maps each distinct unknown symbol to its count (most frequent first);
    ``total`` is the number of occurrences.
    """

    def __init__(self, symbols: Mapping[str, int], vocab_size: int, where: str = "encode"):
        self.symbols = dict(sorted(symbols.items(), key=lambda item: (-item[1], item[0])))
        self.total = sum(self.symbols.values())
        shown = ", ".join(f"{s!r} x{c}" for s, c in list(self.symbols.items())[:20])
        more = f", ... ({len(self.symbols) - 20} more)" if len(self.symbols) > 20 else ""
        super().__init__(
            f"{where}: {len(self.symbols)} distinct symbol(s) ({self.total} occurrence(s)) are not "
            f"in the vocabulary of size {vocab_size}: {shown}{more}. Pass unknown='map' (maps them "
            "to the 'unk' special token) or unknown='skip' (drops them), or extend the vocabulary")


def _resolve_specials(specials) -> dict[str, str]:
    """``None``/``()`` -> none; names -> default token strings; or an explicit name -> token map."""
    if specials is None:
        return {}
    if isinstance(specials, str):
        raise TypeError(f"specials must be a sequence of names or a mapping name -> token, "
                        f"got the string {specials!r} (did you mean ({specials!r},)?)")
    if isinstance(specials, Mapping):
        resolved = dict(specials)
    else:
        resolved = {name: DEFAULT_SPECIAL_TOKENS.get(name) for name in specials}
    for name, token in resolved.items():
        if name not in SPECIAL_NAMES:
            raise ValueError(f"specials: unknown special name {name!r}, expected some of {SPECIAL_NAMES}")
        if not isinstance(token, str) or not token:
            raise ValueError(f"specials: token for {name!r} must be a non-empty string, got {token!r}")
    if len(set(resolved.values())) != len(resolved):
        raise ValueError(f"specials: two names share one token string: {resolved}")
    return resolved


def collect_ids(parts, dtype, capacity: int | None = None) -> np.ndarray:
    """Join the arrays of ``parts`` into one 1-D ``dtype`` array.

    With ``capacity`` (an upper bound on the total length) the parts are copied into one
    preallocated array, shrunk in place at the end, so the ids are never held twice.
    """
    if capacity is None:
        parts = list(parts)
        return np.concatenate(parts).astype(dtype, copy=False) if parts else np.empty(0, dtype)
    out = np.empty(capacity, dtype)
    filled = 0
    for part in parts:
        if filled + len(part) > capacity:
            raise ValueError(f"collect_ids: more than capacity={capacity} ids")
        out[filled:filled + len(part)] = part
        filled += len(part)
    if filled < capacity:
        out.resize(filled, refcheck=False)   # realloc shrinks in place: no second copy
    return out


class Vocabulary:
    """Immutable map between tokens and ids ``0 .. size-1`` (see the module docstring).

    ``Vocabulary(tokens, specials)`` takes the tokens in id order and ``specials`` as a map
    name -> token string (each must be one of ``tokens``); use :meth:`build` to make one from text.
    """

    level = ""                 # "char" or "word", set by the subclasses
    DEFAULT_SPECIALS: tuple = ()
    _levels: dict[str, type] = {}   # level -> class, for from_dict

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        Vocabulary._levels[cls.level] = cls

    def __init__(self, tokens: Iterable[str], specials: Mapping[str, str] | None = None):
        tokens = tuple(tokens)
        if not tokens:
            raise ValueError(f"{type(self).__name__}: tokens is empty, expected at least one token")
        index: dict[str, int] = {}
        for i, token in enumerate(tokens):
            if not isinstance(token, str) or not token:
                raise ValueError(f"{type(self).__name__}: token {i} is {token!r}, expected a non-empty string")
            if token in index:
                raise ValueError(f"{type(self).__name__}: token {token!r} appears twice (ids {index[token]} and {i})")
            index[token] = i
        specials = _resolve_specials(specials)
        missing = {name: tok for name, tok in specials.items() if tok not in index}
        if missing:
            raise ValueError(f"{type(self).__name__}: special tokens {missing} are not among the tokens")
        self._tokens = tokens
        self._index = index
        self._specials = {name: index[tok] for name, tok in specials.items()}
        self._prepare()

    # ---- hooks the two levels fill in -------------------------------------------------------
    def _prepare(self) -> None:
        """Level-specific checks of the tokens, and lookup tables."""

    @property
    def options(self) -> dict:
        """Tokenizer options (JSON-able); part of equality and of :meth:`to_dict`."""
        return {}

    @classmethod
    def count_tokens(cls, text, **options) -> Counter:
        """Count the symbols of ``text`` (a ``str`` or an iterable of ``str`` chunks)."""
        raise NotImplementedError

    @classmethod
    def _order(cls, counts: Mapping[str, int], symbols: list[str]) -> list[str]:
        raise NotImplementedError

    def _lookup(self, chunk: str) -> tuple[np.ndarray, Counter]:
        """Ids of one chunk (-1 where unknown) and the unknown symbols with their counts."""
        raise NotImplementedError

    def decode(self, ids, skip_specials: bool = False) -> str:
        raise NotImplementedError

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def build(cls, text, *, specials="default", max_size: int | None = None, min_count: int = 1, **options):
        """Build from ``text`` (``str`` or iterable of chunks); ids follow the module's rule."""
        return cls.from_counts(cls.count_tokens(text, **options), specials=specials,
                               max_size=max_size, min_count=min_count, **options)

    @classmethod
    def from_counts(cls, counts: Mapping[str, int], *, specials="default", max_size: int | None = None,
                    min_count: int = 1, **options):
        """Build from symbol counts: drop symbols seen fewer than ``min_count`` times, keep the
        most frequent ones so that ``size <= max_size`` (specials included), order by the rule."""
        specials = _resolve_specials(cls.DEFAULT_SPECIALS if specials == "default" else specials)
        if isinstance(min_count, bool) or not isinstance(min_count, (int, np.integer)) or min_count < 1:
            raise ValueError(f"{cls.__name__}.build: min_count must be a positive integer, got {min_count!r}")
        taken = set(specials.values())
        symbols = [s for s, c in counts.items() if c >= min_count and s not in taken]
        if max_size is not None:
            if isinstance(max_size, bool) or not isinstance(max_size, (int, np.integer)) or max_size <= len(specials):
                raise ValueError(f"{cls.__name__}.build: max_size must be an integer above the number of "
                                 f"special tokens ({len(specials)}), got {max_size!r}")
            symbols.sort(key=lambda s: (-counts[s], s))
            symbols = symbols[:max_size - len(specials)]
        return cls(list(specials.values()) + cls._order(counts, symbols), specials, **options)

    def extend(self, text=None, *, symbols: Iterable[str] = ()):
        """A new vocabulary with the symbols of ``text`` and ``symbols`` that are missing here
        appended after the existing ids (which do not change: fine-tuning keeps its embedding)."""
        counts = Counter() if text is None else self.count_tokens(text, **self.options)
        for symbol in symbols:
            counts[symbol] += 1
        new = [s for s in counts if s not in self._index]
        names = {name: self._tokens[i] for name, i in self._specials.items()}
        return type(self)(self._tokens + tuple(self._order(counts, new)), names, **self.options)

    # ---- the map ----------------------------------------------------------------------------
    @property
    def size(self) -> int:
        return len(self._tokens)

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def tokens(self) -> tuple[str, ...]:
        """All tokens in id order."""
        return self._tokens

    @property
    def specials(self) -> dict[str, int]:
        """Special-token names present in this vocabulary -> their ids."""
        return dict(self._specials)

    def special_id(self, name: str) -> int:
        if name not in self._specials:
            raise KeyError(f"special token {name!r} is not in this vocabulary (it has {sorted(self._specials)})")
        return self._specials[name]

    @property
    def id_dtype(self) -> np.dtype:
        """The smallest unsigned dtype holding every id: uint8, uint16 or uint32."""
        return id_dtype_for(self.size)

    def id_of(self, token: str) -> int:
        try:
            return self._index[token]
        except (KeyError, TypeError):
            raise KeyError(f"id_of: token {token!r} is not in the vocabulary of size {self.size}") from None

    def token_of(self, i: int) -> str:
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.size:
            raise IndexError(f"token_of: id {i!r} is outside 0..{self.size - 1}")
        return self._tokens[int(i)]

    def __contains__(self, token) -> bool:
        return token in self._index

    def __eq__(self, other) -> bool:
        return (type(other) is type(self) and other._tokens == self._tokens
                and other._specials == self._specials and other.options == self.options)

    def __hash__(self) -> int:
        return hash((self.level, self._tokens, tuple(sorted(self._specials.items()))))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(size={self.size}, specials={self._specials}, options={self.options})"

    # ---- encoding ---------------------------------------------------------------------------
    def tokenize(self, text: str) -> list[str]:
        """The symbols ``text`` is cut into (before the vocabulary lookup)."""
        return [s for chunk in self._chunks(text) for s in self._split(chunk)]

    def _split(self, chunk: str) -> list[str]:
        raise NotImplementedError

    def _chunks(self, text):
        return rechunk(text, CHUNK_CHARS, None)   # characters: a chunk may end anywhere

    def encode_parts(self, text, unknown: str = "error"):
        """Yield the ids of ``text`` chunk by chunk (``id_dtype`` arrays).

        ``unknown``: ``"error"`` raises :class:`UnknownSymbolError` listing every unknown symbol
        (after reading all of ``text``), ``"map"`` uses the ``unk`` special, ``"skip"`` drops them.
        """
        if unknown not in UNKNOWN_POLICIES:
            raise ValueError(f"encode: unknown must be one of {UNKNOWN_POLICIES}, got {unknown!r}")
        unk = self._specials.get("unk")
        if unknown == "map" and unk is None:
            raise ValueError("encode: unknown='map' needs an 'unk' special token, this vocabulary has "
                             f"specials {sorted(self._specials)}; build it with specials including 'unk'")
        missing: Counter = Counter()
        for chunk in self._chunks(text):
            ids, chunk_missing = self._lookup(chunk)
            if chunk_missing:
                missing.update(chunk_missing)
                if unknown == "map":
                    ids[ids < 0] = unk
                elif unknown == "skip":
                    ids = ids[ids >= 0]
            if not (missing and unknown == "error"):
                yield ids.astype(self.id_dtype, copy=False)
        if missing and unknown == "error":
            raise UnknownSymbolError(missing, self.size)

    def encode(self, text, unknown: str = "error") -> np.ndarray:
        """Ids of ``text`` as a 1-D array of :attr:`id_dtype` (see :meth:`encode_parts`)."""
        # A str of n characters has at most n character ids: fill one array instead of
        # concatenating chunks, which would hold the ids twice.
        capacity = len(text) if isinstance(text, str) and self.level == "char" else None
        return collect_ids(self.encode_parts(text, unknown), self.id_dtype, capacity)

    def unknown_counts(self, counts: Mapping[str, int]) -> dict[str, int]:
        """The entries of ``counts`` (from :meth:`count_tokens`) whose symbol is not in the vocabulary."""
        return {s: c for s, c in counts.items() if s not in self._index}

    def _ids_for_decode(self, ids) -> np.ndarray:
        array = np.asarray(ids)
        if array.ndim != 1 or (array.size and array.dtype.kind not in "iu"):
            raise ValueError(f"decode: ids must be a 1-D sequence of integers, got shape {array.shape} "
                             f"dtype {array.dtype}")
        array = array.astype(np.int64, copy=False)
        bad = np.flatnonzero((array < 0) | (array >= self.size))
        if bad.size:
            raise IndexError(f"decode: id {int(array[bad[0]])} at position {int(bad[0])} is outside "
                             f"0..{self.size - 1}")
        return array

    # ---- persistence ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        """A JSON-able description (stored in checkpoints); :meth:`from_dict` inverts it."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "level": self.level,
                "tokens": list(self._tokens), "specials": dict(self._specials), "options": self.options}

    @staticmethod
    def from_dict(data: Mapping) -> "Vocabulary":
        """Rebuild a :class:`CharVocab` or :class:`WordVocab` from :meth:`to_dict` output."""
        if not isinstance(data, Mapping):
            raise TypeError(f"from_dict: expected a mapping, got {type(data).__name__}")
        if data.get("format") != FORMAT or data.get("version") != FORMAT_VERSION:
            raise ValueError(f"from_dict: format/version is {data.get('format')!r}/{data.get('version')!r}, "
                             f"expected {FORMAT!r}/{FORMAT_VERSION}")
        level = data.get("level")
        from . import words  # noqa: F401  (registers WordVocab; imported here to avoid a cycle)
        classes = Vocabulary._levels
        if level not in classes:
            raise ValueError(f"from_dict: level is {level!r}, expected one of {sorted(classes)}")
        tokens, specials, options = data.get("tokens"), data.get("specials", {}), data.get("options", {})
        if not isinstance(tokens, list):
            raise ValueError(f"from_dict: tokens must be a list of strings, got {type(tokens).__name__}")
        if not isinstance(specials, Mapping) or not isinstance(options, Mapping):
            raise ValueError("from_dict: specials and options must be mappings")
        names = {}
        for name, i in specials.items():
            if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(tokens):
                raise ValueError(f"from_dict: specials[{name!r}] is {i!r}, expected an id in 0..{len(tokens) - 1}")
            names[name] = tokens[i]
        return classes[level](tokens, names, **options)

    def save(self, path) -> Path:
        """Write :meth:`to_dict` as UTF-8 JSON, atomically."""
        return atomic_write_text(path, json.dumps(self.to_dict(), ensure_ascii=False, indent=0) + "\n")

    @staticmethod
    def load(path) -> "Vocabulary":
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise FileNotFoundError(f"vocabulary file {path} does not exist") from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"vocabulary file {path} is not valid UTF-8 JSON: {exc}") from None
        try:
            return Vocabulary.from_dict(data)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"vocabulary file {path}: {exc}") from None


class CharVocab(Vocabulary):
    """One id per Unicode code point; specials (if any) first, then symbols by code point."""

    level = "char"
    DEFAULT_SPECIALS = ()

    def _prepare(self) -> None:
        special_tokens = {self._tokens[i] for i in self._specials.values()}
        for i, token in enumerate(self._tokens):
            if len(token) != 1 and token not in special_tokens:
                raise ValueError(f"CharVocab: token {i} is {token!r}; a character vocabulary holds single "
                                 "characters (only special tokens may be longer)")
        self._table = CodePointTable(self._tokens)

    @classmethod
    def count_tokens(cls, text, **options) -> Counter:
        if options:
            raise TypeError(f"CharVocab takes no tokenizer options, got {sorted(options)} "
                            "(lowercase, strip_punctuation and keep_newlines are WordVocab options)")
        counts: Counter = Counter()
        for chunk in rechunk(text, CHUNK_CHARS, None):
            count_code_points(chunk, counts)
        return counts

    @classmethod
    def _order(cls, counts, symbols):
        return sorted(symbols)   # Python compares str by code point

    def _split(self, chunk: str) -> list[str]:
        return list(chunk)

    def _lookup(self, chunk):
        return self._table.lookup(chunk)

    def decode(self, ids, skip_specials: bool = False) -> str:
        """The text of ``ids``; ``skip_specials`` leaves out every special token."""
        ids = self._ids_for_decode(ids)
        if skip_specials and self._specials:
            ids = ids[~np.isin(ids, list(self._specials.values()))]
        return text_from_code_points(ids, self._table)
