"""Checks of untrusted text that every part shares (stdlib only: the agent uses them too).

- `digits()`: a decimal number in ASCII digits only (`str.isdigit()` is also true for '²', which
  `int()` then refuses);
- `bad_text()`: why a string cannot be stored or shown as it is: a lone surrogate (not valid
  Unicode, e.g. from JSON's "\\ud800" or from undecodable bytes on the command line), a NUL, or a
  control character in a one-line value (a newline in a kernel argument adds a line to an iPXE
  script, one in a domain a line to dnsmasq.conf);
- `printable()`: text a node sent, made safe to print on a terminal (escape sequences and control
  characters replaced, so an event cannot retitle or clear the admin's terminal);
- `loads_json()`: json.loads with bounds on the size and the nesting depth (a deeply nested
  document otherwise ends in RecursionError, not ValueError);
- `depth()`: the nesting depth of decoded data (YAML, TOML), without recursion.
"""

from __future__ import annotations

import json
import re
from typing import Any

# C0 controls, DEL and C1 controls. A one-line value allows none of them, a multi-line one keeps
# newlines and tabs (scripts, templates).
CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
MULTILINE_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
# ANSI escape sequences (CSI … final byte, OSC … BEL/ST, two-byte ESC X), then any other control.
_ESCAPE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?|\x1b[@-_]|\x9b[0-?]*[ -/]*[@-~]"
)
_SURROGATE = re.compile(r"[\ud800-\udfff]")
MAX_JSON_DEPTH = 32


class InputError(ValueError):
    """Input that is refused by these checks; the message says why."""


def digits(text: str) -> bool:
    """True for a non-empty run of ASCII digits only."""
    return text.isascii() and text.isdigit()


def bad_text(value: str, *, multiline: bool = False) -> str:
    """Why `value` is not acceptable text ('' when it is)."""
    if _SURROGATE.search(value):
        return "it is not valid Unicode (a lone surrogate)"
    if "\x00" in value:
        return "it holds a NUL character"
    match = (MULTILINE_CONTROL if multiline else CONTROL).search(value)
    if match:
        what = "a newline" if match.group() in "\r\n" else f"the control character {match.group()!r}"
        return f"it holds {what}" + ("" if multiline else " (it must be one line)")
    return ""


def printable(value: Any, *, multiline: bool = False) -> str:
    """`value` as text that is safe to print on a terminal."""
    text = str(value)
    text = _SURROGATE.sub("\ufffd", text)
    text = _ESCAPE.sub("", text)
    return (MULTILINE_CONTROL if multiline else CONTROL).sub("\ufffd", text)


def clean(data: Any) -> Any:
    """A copy of JSON-like data with lone surrogates replaced (so it can be encoded as UTF-8)."""
    if isinstance(data, str):
        return _SURROGATE.sub("\ufffd", data)
    if isinstance(data, dict):
        return {clean(k): clean(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean(v) for v in data]
    return data


def json_depth(text: str | bytes) -> int:
    """The deepest nesting of [ and { in a JSON text (strings skipped), without parsing it."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", errors="replace")
    deepest = level = 0
    for match in re.finditer(r'"(?:[^"\\]|\\.)*"|[\[\]{}]', text):
        token = match.group()
        if token in "[{":
            level += 1
            deepest = max(deepest, level)
        elif token in "]}":
            level -= 1
    return deepest


def loads_json(
    text: str | bytes, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH, what: str = "the document"
) -> Any:
    """json.loads, refusing (InputError) a document larger than max_bytes or nested deeper than
    max_depth, and one with lone surrogates in its strings."""
    if len(text) > max_bytes:
        raise InputError(f"{what} is larger than {max_bytes} bytes")
    found = json_depth(text)
    if found > max_depth:
        raise InputError(f"{what} is nested {found} levels deep, more than {max_depth}")
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise InputError(f"{what} is not valid JSON: {exc}") from None
    problem = _first_bad_string(data)
    if problem:
        raise InputError(f"{what}: {problem}")
    return data


def _first_bad_string(data: Any) -> str:
    stack = [data]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                return f"the string {item[:40]!r} is not valid Unicode (a lone surrogate)"
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return ""


def depth(data: Any, limit: int = 1000) -> int:
    """The nesting depth of decoded data (dicts and lists), computed without recursion; at most
    `limit` + 1 (YAML's aliases can make a structure that contains itself)."""
    deepest = 0
    stack = [(data, 1)]
    while stack:
        item, level = stack.pop()
        if level > limit:
            return limit + 1
        if isinstance(item, dict):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list | tuple):
            deepest = max(deepest, level)
            stack.extend((v, level + 1) for v in item)
    return deepest
