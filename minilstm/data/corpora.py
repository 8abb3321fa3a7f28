"""Text files on disk -> text or ids.

:func:`read_text` returns a file's text; :func:`load_corpus` goes straight from a file to ids
and a vocabulary without ever holding the whole text: it reads the file twice in chunks (once
to count symbols, once to encode them into one preallocated array), so a 100 MB text loads in
well under twice its size (``benchmarks/data_memory.py`` measures it).

Files are UTF-8 unless ``encoding`` says otherwise. Every failure names the path: a missing
file, a directory, an empty file, or bytes the encoding cannot decode (with their byte offset).
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .text import UNKNOWN_POLICIES, CharVocab, UnknownSymbolError, Vocabulary, collect_ids
from .words import WordVocab

READ_BYTES = 1 << 20   # bytes read per step while streaming a file
LEVELS = {"char": CharVocab, "word": WordVocab}


class CorpusDecodeError(ValueError):
    """A text file holds bytes its encoding cannot decode; ``offset`` is the first bad byte."""

    def __init__(self, path, encoding: str, offset: int, reason: str, bad: bytes):
        self.path, self.encoding, self.offset = Path(path), encoding, offset
        super().__init__(f"{path}: cannot decode byte(s) {bad!r} at byte offset {offset} as {encoding} "
                         f"({reason}); pass encoding=... with the file's real encoding")


def check_text_file(path, encoding: str = "utf-8") -> Path:
    """Return ``path`` as a ``Path`` if it names a non-empty regular file and ``encoding`` exists."""
    if not isinstance(path, (str, Path)) or not str(path):
        raise TypeError(f"path must be a non-empty str or pathlib.Path, got {path!r}")
    path = Path(path)
    try:
        codecs.lookup(encoding)
    except (LookupError, TypeError):
        raise ValueError(f"encoding={encoding!r} is not a text encoding Python knows (e.g. 'utf-8', 'latin-1')") from None
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory, expected a text file")
    if not path.exists():
        raise FileNotFoundError(f"text file {path} does not exist")
    if not path.is_file():
        raise ValueError(f"{path} is not a regular file")
    if path.stat().st_size == 0:
        raise ValueError(f"text file {path} is empty")
    return path


def read_text(path, encoding: str = "utf-8") -> str:
    """The whole text of ``path`` (no newline translation: ``"\\r\\n"`` stays as it is)."""
    path = check_text_file(path, encoding)
    data = path.read_bytes()
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise CorpusDecodeError(path, encoding, exc.start, exc.reason, data[exc.start:exc.end]) from None


def iter_text(path, encoding: str = "utf-8", read_bytes: int | None = None):
    """Yield the text of ``path`` in decoded pieces of about ``read_bytes`` (default
    :data:`READ_BYTES`) bytes each.

    An incremental decoder carries a multi-byte character split across two reads over to the
    next piece; a decoding failure reports the absolute byte offset.
    """
    path = check_text_file(path, encoding)
    read_bytes = read_bytes or READ_BYTES
    decoder = codecs.getincrementaldecoder(encoding)()
    consumed = 0
    with open(path, "rb") as handle:
        while True:
            data = handle.read(read_bytes)
            final = not data
            pending = decoder.getstate()[0]   # undecoded bytes left from the previous read
            try:
                piece = decoder.decode(data, final=final)
            except UnicodeDecodeError as exc:
                start = consumed - len(pending) + exc.start
                raise CorpusDecodeError(path, encoding, start, exc.reason, exc.object[exc.start:exc.end]) from None
            consumed += len(data)
            if piece:
                yield piece
            if final:
                return


@dataclass(frozen=True, eq=False)
class Corpus:
    """A tokenised text: ``ids`` (1-D, the vocabulary's smallest unsigned dtype) and ``vocab``."""

    ids: np.ndarray
    vocab: Vocabulary
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.ids)


def load_corpus(path, *, level: str = "char", vocab: Vocabulary | None = None, encoding: str = "utf-8",
                unknown: str | None = None, specials="default", max_size: int | None = None,
                min_count: int = 1, **options) -> Corpus:
    """Read ``path`` and encode it, building a ``level`` vocabulary unless ``vocab`` is given.

    ``specials``, ``max_size``, ``min_count`` and the word options (``lowercase``,
    ``strip_punctuation``, ``keep_newlines``) go to :meth:`Vocabulary.build`; with a ``vocab``
    its own options apply. Symbols outside the vocabulary follow ``unknown``: "error" lists
    them all before anything is encoded, "map" uses the ``unk`` special, "skip" drops them.
    The default is "error" with a given ``vocab`` and "map" for a built one (where the only
    unknown symbols are those ``min_count``/``max_size`` dropped).
    """
    if unknown is None:
        unknown = "error" if vocab is not None else "map"
    if unknown not in UNKNOWN_POLICIES:
        raise ValueError(f"load_corpus: unknown must be one of {UNKNOWN_POLICIES} or None, got {unknown!r}")
    if vocab is None:
        if level not in LEVELS:
            raise ValueError(f"load_corpus: level must be one of {sorted(LEVELS)}, got {level!r}")
        counts = LEVELS[level].count_tokens(iter_text(path, encoding), **options)
        vocab = LEVELS[level].from_counts(counts, specials=specials, max_size=max_size,
                                          min_count=min_count, **options)
    else:
        if not isinstance(vocab, Vocabulary):
            raise TypeError(f"load_corpus: vocab must be a CharVocab or WordVocab, got {type(vocab).__name__}")
        if options:
            raise TypeError(f"load_corpus: options {sorted(options)} cannot be combined with vocab= "
                            f"(the vocabulary's own options apply: {vocab.options})")
        counts = vocab.count_tokens(iter_text(path, encoding), **vocab.options)
    missing = vocab.unknown_counts(counts)
    if not missing:
        unknown = "error"   # nothing to map or skip; "map" would demand an unk special for nothing
    elif unknown == "error":
        raise UnknownSymbolError(missing, vocab.size, where=f"load_corpus({path})")
    # Dropped symbols (min_count, max_size) are unknown to the vocabulary as well.
    total = sum(counts.values()) - (sum(missing.values()) if unknown == "skip" else 0)
    ids = collect_ids(vocab.encode_parts(iter_text(path, encoding), unknown), vocab.id_dtype, total)
    return Corpus(ids=ids, vocab=vocab, path=Path(path))
