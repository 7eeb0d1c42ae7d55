"""JSON from a file an operator uploads (a backup, a firmware patch's manifest), read at a bounded cost.

``json.loads`` alone lets a small file cost a great deal: a few MiB of ``[[],[],...]`` become
hundreds of MiB of Python objects, deep nesting ends in ``RecursionError`` and ``Infinity`` (or
``1e400``) in ``OverflowError`` wherever a number is used later. ``load()`` refuses all of these
with a ``BoundedJSONError`` that says why, before ``json.loads`` builds anything: the size, the
nesting depth and the number of values are counted on the bytes at the speed of ``re`` and
``bytes.translate``, without a Python loop per character.

Standard library only, like firmware/patch.py which imports it.
"""

import json
import math
import re
from itertools import accumulate

from wui.text import short

MAX_DEPTH = 32  # a configuration nests about six deep, a manifest three
MAX_VALUES = 500_000  # about what 8 MiB of configuration holds; each value costs Python some 50-100 bytes

# A string, escapes included; one that never ends runs to the end of the data rather than failing,
# so that no attempt is retried from each later quote (which would take quadratic time).
_STRING = re.compile(rb'"[^"\\]*(?:\\(?:.|\Z)[^"\\]*)*(?:"|\Z)', re.DOTALL)
_STRUCTURE = b"[]{},"
_NOT_STRUCTURE = bytes(b for b in range(256) if b not in _STRUCTURE)
# Brackets as signed steps of depth (+1, -1); commas dropped.
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")


class BoundedJSONError(ValueError):
    """The document is refused; the message says why, for the operator."""


def load(data, name, max_bytes, max_depth=MAX_DEPTH, max_values=MAX_VALUES):
    """The JSON document in data (UTF-8 bytes), or BoundedJSONError naming ``name`` and the reason."""
    if len(data) > max_bytes:
        raise BoundedJSONError(f"{name} is {len(data)} bytes, over the {max_bytes} bytes it may be")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise BoundedJSONError(f"{name} is not UTF-8 text (byte {e.start})") from e
    skeleton = _STRING.sub(b"", data).translate(None, _NOT_STRUCTURE)
    values = 1 + len(skeleton) - skeleton.count(b"]") - skeleton.count(b"}")
    if values > max_values:
        raise BoundedJSONError(f"{name} holds more than {max_values} values: it is not one we made")
    depth = max(accumulate(memoryview(skeleton.translate(_STEPS, b",")).cast("b")), default=0)
    if depth > max_depth:
        raise BoundedJSONError(f"{name} nests deeper than {max_depth} levels: it is not one we made")
    try:
        return json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError as e:  # the count above makes this unreachable; a refusal all the same
        raise BoundedJSONError(f"{name} nests too deep") from e
    except ValueError as e:
        raise BoundedJSONError(f"{name} is not valid JSON ({_reason(e)})") from e


def _no_constant(word):
    raise ValueError(f"{word} is not a number JSON allows")


def _finite(text):
    number = float(text)
    if not math.isfinite(number):
        raise ValueError(f"the number {short(text)} is too large")
    return number


def _reason(error):
    # JSONDecodeError says where; a refusal from the hooks above says what. Neither quotes the document.
    if isinstance(error, json.JSONDecodeError):
        return f"{error.msg}: line {error.lineno} column {error.colno}"
    return str(error)


def said(value):
    """A JSON value as a refusal quotes it: a short number as it is, anything else as a short prefix."""
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    if isinstance(value, int) and abs(value) < 10**12:
        return str(value)
    return short(value)
