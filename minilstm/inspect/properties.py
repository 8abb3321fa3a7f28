"""Simple properties of a text, position by position, and the units that follow them.

Each property maps the recorded tokens to a float array (T,) describing the moment *after*
reading ``tokens[t]`` (the same alignment as :class:`~.recording.Recording`); NaN marks
positions where the property does not apply (the vowel property is defined on letters only).
These are the hypotheses of Karpathy, Johnson & Fei-Fei (2015), "Visualizing and Understanding
Recurrent Networks": a unit that tracks quotes, line length or bracket depth shows up as a
strong correlation with the matching property.

Tiny Shakespeare has no double quotes and no brackets; there those two properties are constant,
and :func:`find_property_units` reports them as absent rather than ranking noise.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass

import numpy as np

from .recording import Recording

OPENING = {"(": ")", "[": "]", "{": "}"}
CLOSING = set(OPENING.values())
VOWELS = set("aeiouAEIOU")
CHAR_CLASSES = ("letters", "spaces", "punctuation", "newlines", "digits", "other")


def inside_quotes(tokens) -> np.ndarray:
    """1 from an opening quote up to (not including) the closing one (" toggles, “ opens, ” closes)."""
    inside, out = False, np.zeros(len(tokens))
    for t, token in enumerate(tokens):
        if token == '"':
            inside = not inside
        elif token == "\u201c":
            inside = True
        elif token == "\u201d":
            inside = False
        out[t] = inside
    return out


def inside_brackets(tokens) -> np.ndarray:
    """1 while at least one (, [ or { is open (an unmatched closing bracket is ignored)."""
    depth, out = 0, np.zeros(len(tokens))
    for t, token in enumerate(tokens):
        if token in OPENING:
            depth += 1
        elif token in CLOSING:
            depth = max(depth - 1, 0)
        out[t] = depth > 0
    return out


def line_position(tokens) -> np.ndarray:
    """Tokens read since the last newline: 0 right after a newline, then 1, 2, ..."""
    column, out = 0, np.zeros(len(tokens))
    for t, token in enumerate(tokens):
        column = 0 if token == "\n" else column + 1
        out[t] = column
    return out


def after_newline(tokens) -> np.ndarray:
    """1 right after reading a newline."""
    return np.array([token == "\n" for token in tokens], dtype=float)


def vowel(tokens) -> np.ndarray:
    """1 after a vowel (a, e, i, o, u), 0 after another letter; other characters do not count (NaN)."""
    return np.array([1.0 if token in VOWELS else 0.0 if token.isalpha() else np.nan
                     for token in tokens])


def whitespace(tokens) -> np.ndarray:
    """1 after a space, tab or newline."""
    return np.array([token.isspace() for token in tokens], dtype=float)


def is_speaker_line(line: str) -> bool:
    """A play's speaker heading: a short line ending in ':' whose words all start with a
    capital ("ROMEO:", "KING RICHARD III:", "First Citizen:")."""
    words = line[:-1].split()
    return (line.endswith(":") and 0 < len(words) <= 5
            and all(word[0].isupper() for word in words))


def speaker_name(tokens) -> np.ndarray:
    """1 on the characters of a speaker heading such as "ROMEO:" (its newline excluded)."""
    out, start = np.zeros(len(tokens)), 0
    for t in range(len(tokens) + 1):
        if t == len(tokens) or tokens[t] == "\n":
            if is_speaker_line("".join(tokens[start:t])):
                out[start:t] = 1.0
            start = t + 1
    return out


PROPERTIES = {
    "inside quotes": inside_quotes,
    "inside brackets": inside_brackets,
    "line position": line_position,
    "after newline": after_newline,
    "vowel vs consonant": vowel,
    "speaker name": speaker_name,
    "whitespace": whitespace,
}


def char_class(token: str) -> str:
    """One of :data:`CHAR_CLASSES`; punctuation is Unicode categories P (marks) and S (symbols)."""
    if token.isalpha():
        return "letters"
    if token in ("\n", "\r", "\r\n"):
        return "newlines"
    if token.isspace():
        return "spaces"
    if token.isdigit():
        return "digits"
    if len(token) == 1 and unicodedata.category(token)[0] in "PS":
        return "punctuation"
    return "other"


@dataclass(frozen=True)
class UnitScore:
    """One unit's Pearson correlation with a property."""
    layer: int
    unit: int
    r: float
    quantity: str       # "cell" (tanh(c)) or "hidden" (h)


def property_values(recording: Recording, properties=None) -> dict:
    """``{name: (T,) float array}`` for each property (a function of the tokens or an array)."""
    properties = PROPERTIES if properties is None else properties
    values = {}
    for name, prop in properties.items():
        array = prop(recording.tokens) if callable(prop) else prop
        array = np.asarray(array, dtype=float)
        if array.shape != (len(recording),):
            raise ValueError(f"property_values: property {name!r} has shape {array.shape}, expected "
                             f"(T,) = ({len(recording)},), one value per recorded token")
        values[name] = array
    return values


def correlations(activations: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Pearson r of each column of ``activations`` (T, H) with ``values`` (T,) over the positions
    where ``values`` is not NaN; 0 for a constant column. NaN everywhere if ``values`` is constant."""
    keep = ~np.isnan(values)
    x = activations[keep].astype(np.float64)
    y = values[keep]
    if keep.sum() < 2 or np.ptp(y) == 0:
        return np.full(activations.shape[1], np.nan)
    x = x - x.mean(axis=0)
    y = y - y.mean()
    scale = np.sqrt((x * x).sum(axis=0) * (y @ y))
    return np.divide(x.T @ y, scale, out=np.zeros(x.shape[1]), where=scale > 0)


def find_property_units(recording: Recording, properties=None, *, quantity: str = "cell",
                        top: int = 5) -> dict:
    """The ``top`` units most correlated (by |r|) with each property, over every layer.

    ``properties`` maps a name to a function of the token tuple or to a (T,) array (default
    :data:`PROPERTIES`); ``quantity`` is "cell" (tanh(c), what cell highlighting shows) or
    "hidden" (h). Returns ``{name: [UnitScore, ...]}`` best first; a property that is constant
    over the text (e.g. no quotes in it) gets an empty list.
    """
    if quantity not in ("cell", "hidden"):
        raise ValueError(f"find_property_units: quantity={quantity!r}, expected 'cell' or 'hidden'")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"find_property_units: top={top!r}, expected a positive integer")
    found = {}
    for name, values in property_values(recording, properties).items():
        scores = [UnitScore(layer, unit, float(r), quantity)
                  for layer in range(recording.num_layers)
                  for unit, r in enumerate(correlations(recording.activation(quantity, layer), values))
                  if not np.isnan(r)]
        scores.sort(key=lambda s: (-abs(s.r), s.layer, s.unit))
        found[name] = scores[:top]
    return found
