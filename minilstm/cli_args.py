"""Command-line flags generated from the configuration dataclasses.

Every field of a config dataclass becomes ``--field-name``, typed after its default value, with
the field's trailing ``# comment`` as its help text. Booleans get ``--flag/--no-flag``; tuples
take several values (``--hidden-sizes 512 512``). The dataclass validates the values it is
built from, so the CLI and the Python API accept and refuse exactly the same things.
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import re

_FIELD_COMMENT = re.compile(r"^\s+(\w+)\s*:[^#]*#\s*(.+?)\s*$")


def field_help(cls) -> dict:
    """{field name: its trailing comment} read from the dataclass source."""
    helps = {}
    for klass in reversed(cls.__mro__):
        try:
            lines = inspect.getsource(klass).splitlines()
        except (OSError, TypeError):
            continue
        for line in lines:
            match = _FIELD_COMMENT.match(line)
            if match:
                helps[match.group(1)] = match.group(2)
    return helps


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_dataclass_arguments(parser, cls, prefix: str = "", skip=(), defaults=None, rename=None) -> None:
    """Add one flag per field of ``cls`` (dest ``<prefix><field>``); ``defaults`` overrides the
    dataclass defaults shown and used (e.g. an example's own choice of model size); ``rename``
    maps a field to another flag name where two configs share a field name (``seed``)."""
    helps = field_help(cls)
    group = parser.add_argument_group(f"{cls.__name__} options")
    for field in dataclasses.fields(cls):
        if field.name in skip:
            continue
        default = (defaults or {}).get(field.name, field.default)
        if default is dataclasses.MISSING and field.default_factory is not dataclasses.MISSING:
            default = field.default_factory()
        dest = prefix + (rename or {}).get(field.name, field.name)
        flag = "--" + dest.replace("_", "-")
        text = helps.get(field.name, "")
        shown = f"{text} (default: {list(default) if isinstance(default, tuple) else default!r})"
        if isinstance(default, bool):
            group.add_argument(flag, dest=dest, default=default, action=argparse.BooleanOptionalAction,
                               help=text)
        elif isinstance(default, tuple):
            element = type(default[0]) if default else str
            group.add_argument(flag, dest=dest, default=default, nargs="*",
                               type=_parse_bool if element is bool else element, help=shown)
        elif default is None:
            group.add_argument(flag, dest=dest, default=None, help=shown)
        else:
            group.add_argument(flag, dest=dest, default=default, type=type(default), help=shown)


def dataclass_from_args(cls, args, prefix: str = "", rename=None, **overrides):
    """Build ``cls`` from parsed arguments (fields absent from ``args`` keep their defaults)."""
    values = {}
    for field in dataclasses.fields(cls):
        dest = prefix + (rename or {}).get(field.name, field.name)
        if hasattr(args, dest):
            value = getattr(args, dest)
            values[field.name] = tuple(value) if isinstance(value, list) else value
    values.update(overrides)
    return cls(**values)
