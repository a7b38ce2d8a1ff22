"""Strict JSON: the one reader of every JSON file qdaed writes or is given.

:func:`parse_json` is Python's json with every laxity closed: UTF-8 only, and no string holding
a lone surrogate such as ``"\\ud800"``; no NaN/Infinity, numbers finite (unless
``allow_nan``), and a number literal of more than ``MAX_NUMBER_CHARS`` characters refused
before it is converted; nesting at most ``MAX_JSON_DEPTH``, measured first by a scan whose time
is linear in the bytes whatever they are (:func:`json_depth`); duplicate keys refused. Every
failure is a :class:`JSONError` saying what and where. :func:`canonical_json` is the one
writer of the documents that are hashed (sorted keys, no whitespace, ASCII, no NaN).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import numpy as np

from qdaed.errors import InputError

MAX_JSON_DEPTH = 32
MAX_NUMBER_CHARS = 100         # characters of one number literal (a 128-bit integer has 39)


def _json_default(obj):
    """numpy scalars become Python numbers; anything else is not JSON."""
    if isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def canonical_json(obj: Any) -> str:
    """Sorted keys, no whitespace, ASCII only, NaN and infinity refused (TypeError/ValueError)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                      allow_nan=False, default=_json_default)


def to_json(name, obj, allow_nan):
    try:
        return json.dumps(obj, separators=(",", ":"), default=_json_default,
                          allow_nan=allow_nan, ensure_ascii=False)
    except (TypeError, ValueError) as exc:
        raise InputError(f"{name}: cannot be written as JSON ({exc})") from None


def nan_to_none(v):
    """``v`` with every NaN float of it, in nested dicts too, replaced by None: metrics that
    are undefined (a class without positives) written as strict JSON's ``null``.

    Parameters
    ----------
    v : object
        A value; dicts are walked (a new dict, the same keys in their order), anything else
        but a NaN float is returned as it is.

    Returns
    -------
    object
        ``v`` without NaN.
    """
    if isinstance(v, dict):
        return {k: nan_to_none(x) for k, x in v.items()}
    if isinstance(v, float) and v != v:
        return None
    return v


class JSONError(ValueError):
    """Strict-parse failure (message says what and where)."""


_SCAN_BLOCK = 1 << 20                 # bytes per block of the depth scan
_QUOTE, _BACKSLASH = ord('"'), ord("\\")
_OPEN = np.zeros(256, np.int8)
_OPEN[[ord("["), ord("{")]] = 1
_OPEN[[ord("]"), ord("}")]] = -1
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")     # fixed length: linear
_SURROGATE = re.compile("[\ud800-\udfff]")


def json_depth(raw: bytes) -> int:
    """Deepest nesting of [ and { in JSON bytes ``raw`` (strings left out), without parsing.

    One pass over the bytes, in blocks of 1 MiB with NumPy, so the time is linear in
    ``len(raw)`` whatever the bytes are (runs of escaped quotes, backslashes, brackets): a
    quote opens or closes a string unless an odd number of backslashes precedes it, and the
    brackets outside strings are summed. The state carried from block to block is whether the
    scan is inside a string, whether the block ended in an odd run of backslashes, and the
    depth. (Where the bytes are not JSON, the parser that follows refuses them at or before
    the first byte where this count could be wrong.)
    """
    a_all = np.frombuffer(raw, np.uint8)
    in_string, odd, depth, deepest = 0, 0, 0, 0
    for start in range(0, a_all.size, _SCAN_BLOCK):
        a = a_all[start:start + _SCAN_BLOCK]
        idx = np.arange(a.size, dtype=np.int64)
        last = np.maximum.accumulate(np.where(a == _BACKSLASH, -1, idx))
        # run[i]: backslashes in the run ending at i (parity only), the carried run included
        run = (idx - last + np.where(last < 0, odd, 0)) & 1
        escaped = np.empty(a.size, bool)
        escaped[0] = odd
        escaped[1:] = run[:-1] == 1
        quotes = np.cumsum((a == _QUOTE) & ~escaped, dtype=np.int64)
        outside = ((quotes + in_string) & 1) == 0
        level = np.cumsum(np.where(outside, _OPEN[a], 0), dtype=np.int64)
        deepest = max(deepest, depth + int(level.max()))
        depth += int(level[-1])
        in_string = int(quotes[-1] + in_string) & 1
        odd = int(run[-1])
    return deepest


def _check_text(obj):
    """JSONError if a string (key or value) of the parsed ``obj`` holds a lone UTF-16
    surrogate (a ``\\ud800`` escape without its pair): not Unicode text, and not UTF-8."""
    stack = [obj]
    while stack:
        o = stack.pop()
        if isinstance(o, str):
            m = None if o.isascii() else _SURROGATE.search(o)
            if m:
                at = m.start()
                raise JSONError(f"a string holds a lone UTF-16 surrogate "
                                f"(\\u{ord(m.group()):04x}), which is not Unicode text: "
                                f"{short_repr(o[max(0, at - 20):at + 20], 60)}")
        elif isinstance(o, dict):
            stack += o.keys()
            stack += o.values()
        elif isinstance(o, list):
            stack += o


def parse_json(raw: bytes | str, allow_nan: bool = False,
               max_depth: int = MAX_JSON_DEPTH) -> Any:
    """Parse JSON bytes strictly; JSONError otherwise.

    UTF-8 only, and no string holding a lone surrogate (``"\\ud800"``); nesting of at most
    ``max_depth`` (checked first, in linear time: :func:`json_depth`); duplicate keys
    refused; a number of more than ``MAX_NUMBER_CHARS`` characters refused before it is
    converted; without ``allow_nan`` the constants NaN, Infinity, -Infinity and numbers that
    overflow a double (1e400) are refused.
    """
    if isinstance(raw, str):
        try:
            raw = raw.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise JSONError(f"not UTF-8 (a lone surrogate at character {exc.start})") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise JSONError(f"not UTF-8 ({exc.reason} at byte {exc.start})") from None
    depth = json_depth(raw)
    if depth > max_depth:
        raise JSONError(f"nested {depth} levels deep (at most {max_depth})")

    def pairs(items):
        out = {}
        for k, v in items:
            if k in out:
                raise JSONError(f"duplicate key {short_repr(k, 40)}")
            out[k] = v
        return out

    def constant(name):
        raise JSONError(f"{name} is not JSON (a finite number is required)")

    def digits(s):
        if len(s) > MAX_NUMBER_CHARS:
            raise JSONError(f"a number of {len(s):,} characters ({s[:20]}…; at most "
                            f"{MAX_NUMBER_CHARS})")

    def integer(s):
        digits(s)
        return int(s)

    def number(s):
        digits(s)
        v = float(s)
        if not allow_nan and not math.isfinite(v):
            raise JSONError(f"number {s[:40]} overflows a double")
        return v

    kw = {} if allow_nan else {"parse_constant": constant}
    try:
        obj = json.loads(text, object_pairs_hook=pairs, parse_int=integer, parse_float=number,
                         **kw)
    except JSONError:
        raise
    except RecursionError:                  # cannot happen below max_depth; kept as a guard
        raise JSONError("nested too deeply") from None
    except ValueError as exc:               # JSONDecodeError
        raise JSONError(str(exc)) from None
    if _SURROGATE_ESCAPE.search(raw):       # only a \\uD800-\\uDFFF escape can make one
        _check_text(obj)
    return obj


def short_repr(obj, limit=80):
    """repr(obj), cut to ``limit`` characters (for error messages)."""
    s = repr(obj)
    return s if len(s) <= limit else s[:limit] + "…"


def read_json_file(path: str, what: str | None = None, allow_nan: bool = False) -> Any:
    """The strictly parsed JSON of the file at ``path`` (:func:`parse_json`); InputError naming
    the file (and ``what`` it should be) when it cannot be read or is not strict JSON."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as exc:
        raise InputError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    try:
        return parse_json(raw, allow_nan=allow_nan)
    except JSONError as exc:
        kind = f"not a {what}: " if what else ""
        raise InputError(f"{path}: {kind}not strict JSON ({exc})") from None


__all__ = ["JSONError", "MAX_JSON_DEPTH", "MAX_NUMBER_CHARS", "canonical_json", "json_depth",
           "nan_to_none", "parse_json", "read_json_file", "short_repr", "to_json"]
