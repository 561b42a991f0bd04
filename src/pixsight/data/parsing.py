"""Parsing untrusted dataset files: JSON with bounded nesting and integer size, YAML without aliases.

A dataset file comes from anywhere, so its parser must fail fast with an error that names
the file and the record, never hang, exhaust memory or end in a traceback:

* JSON nested deeper than :data:`MAX_JSON_DEPTH` (which would raise ``RecursionError``) and
  integers longer than :data:`MAX_INT_DIGITS` digits (Python refuses to convert past 4300
  digits; nothing in a dataset needs more than 64 bits) raise :class:`ParseLimitError`,
  whose ``record`` is the JSON path of the offending value (``annotations[3].bbox``).
* YAML is read with PyYAML's safe loader minus aliases: ``*name`` references are refused
  (a few hundred bytes of nested aliases expand to billions of nodes), and so are integers
  past :data:`MAX_INT_DIGITS` digits and nesting past ``RecursionError``.

>>> parse_json('{"images": [{"width": 8}]}', "a.json")
{'images': [{'width': 8}]}
>>> try:
...     parse_json('{"images": [{"width": ' + "9" * 50 + '}]}', "a.json")
... except ParseLimitError as err:
...     print(err)
a.json: images[0].width: integer with 50 digits (at most 24 allowed) at line 1, column 23
>>> try:
...     parse_yaml("a: &a [1, 2]\\nnames: *a\\n", "data.yaml")
... except ParseLimitError as err:
...     print(err.record, "|", err.problem)
data.yaml | YAML aliases (*a) are not allowed in dataset files, at line 2, column 8
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from ..core.errors import DatasetFormatError

__all__ = ["MAX_JSON_DEPTH", "MAX_INT_DIGITS", "ParseLimitError", "parse_json", "load_json", "parse_yaml",
           "load_yaml"]

#: Deepest JSON nesting accepted (COCO, Label Studio and CVAT need fewer than 10 levels).
MAX_JSON_DEPTH = 100
#: Longest integer accepted, in digits (a uint64 has 20).
MAX_INT_DIGITS = 24


class ParseLimitError(DatasetFormatError):
    """A dataset file breaks a parser limit; ``record`` names where, ``problem`` says what."""

    def __init__(self, problem: str, *, path: str | None, record: str) -> None:
        self.record = record
        self.problem = problem
        super().__init__(f"{record}: {problem}", path=path)


class _IntTooLong(Exception):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_INT_DIGITS:
        raise _IntTooLong(text)
    return int(text)


def _parse_constant(name: str) -> float:
    return float(name.replace("Infinity", "inf"))  # NaN/Infinity parse; the finite checks reject them


_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{},]|-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?')
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MAX_PATH_PARTS = 8


def _path(stack: list[list[Any]]) -> str:
    parts: list[str] = []
    for kind, key, _ in stack:
        if kind == "[":
            parts.append(f"[{key}]")
        elif key is not None:
            parts.append(f".{key}" if _NAME.match(key) else f"[{key!r}]")
    if len(parts) > _MAX_PATH_PARTS:
        parts = parts[:_MAX_PATH_PARTS] + ["..."]
    return "".join(parts).lstrip(".") or "top level"


def _where(text: str, pos: int) -> str:
    line = text.count("\n", 0, pos) + 1
    return f"line {line}, column {pos - (text.rfind(chr(10), 0, pos) + 1) + 1}"


def _locate(text: str) -> tuple[str, str] | None:
    """(record, problem) for the first value nested past :data:`MAX_JSON_DEPTH` or integer
    longer than :data:`MAX_INT_DIGITS` in ``text``; only run once parsing failed."""
    stack: list[list[Any]] = []  # [kind, array index or object key, object expects a key next]
    for m in _TOKEN.finditer(text):
        tok = m.group()
        c = tok[0]
        if c in "[{":
            if len(stack) >= MAX_JSON_DEPTH:
                return _path(stack), f"JSON nested more than {MAX_JSON_DEPTH} levels deep at {_where(text, m.start())}"
            stack.append(["[", 0, False] if c == "[" else ["{", None, True])
        elif c in "]}":
            if stack:
                stack.pop()
        elif c == ",":
            if stack:
                if stack[-1][0] == "[":
                    stack[-1][1] += 1
                else:
                    stack[-1][2] = True
        elif c == '"':
            if stack and stack[-1][0] == "{" and stack[-1][2]:
                stack[-1][1], stack[-1][2] = tok[1:-1], False
        elif "." not in tok and "e" not in tok and "E" not in tok and len(tok.lstrip("-")) > MAX_INT_DIGITS:
            return (_path(stack), f"integer with {len(tok.lstrip('-'))} digits (at most {MAX_INT_DIGITS} allowed) "
                    f"at {_where(text, m.start())}")
    return None


def parse_json(text: str, where: str | None) -> Any:
    """``text`` parsed as JSON (NaN and Infinity allowed), within the limits above.

    Raises:
        ParseLimitError: nesting or an integer past the limits (names the record).
        json.JSONDecodeError: not JSON (callers word this one themselves).
    """
    try:
        return json.loads(text, parse_int=_parse_int, parse_constant=_parse_constant)
    except (RecursionError, _IntTooLong):
        pass  # out of the except block: the traceback of a RecursionError is no use to keep
    found = _locate(text)
    record, problem = found or ("top level", f"JSON nested more than {MAX_JSON_DEPTH} levels deep")
    raise ParseLimitError(problem, path=where, record=record)


def load_json(path: str | Path) -> Any:
    """The JSON file at ``path`` parsed by :func:`parse_json` (UTF-8, -16 or -32, as ``json.loads``
    detects). ``OSError``, ``UnicodeDecodeError`` and ``json.JSONDecodeError`` propagate."""
    raw = Path(path).read_bytes()
    return parse_json(raw.decode(json.detect_encoding(raw), "surrogatepass"), str(path))


class _DatasetYamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses aliases and over-long integers."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            event = self.peek_event()
            raise _YamlRefused(f"YAML aliases (*{event.anchor}) are not allowed in dataset files", event.start_mark)
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: Any) -> int:
        digits = str(node.value).replace("_", "").lstrip("+-")
        if len(digits) > MAX_INT_DIGITS:
            raise _YamlRefused(f"integer with {len(digits)} digits (at most {MAX_INT_DIGITS} allowed)", node.start_mark)
        return super().construct_yaml_int(node)


_DatasetYamlLoader.add_constructor("tag:yaml.org,2002:int", _DatasetYamlLoader.construct_yaml_int)


class _YamlRefused(Exception):
    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(problem)
        self.problem = problem
        self.mark = mark


def parse_yaml(text: str, where: str | None, *, record: str | None = None) -> Any:
    """``text`` parsed as YAML by the safe loader, without aliases (see the module docs).

    Raises:
        ParseLimitError: an alias, an over-long integer or nesting too deep (``record`` is
            ``record`` or the file's name).
        yaml.YAMLError: not YAML.
    """
    rec = record or (Path(where).name if where else "YAML")
    try:
        return yaml.load(text, Loader=_DatasetYamlLoader)  # noqa: S506 - a SafeLoader subclass
    except _YamlRefused as err:
        mark = err.mark
        at = f", at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        problem = err.problem + at
    except RecursionError:
        problem = "YAML nested too deeply"
    raise ParseLimitError(problem, path=where, record=rec)


def load_yaml(path: str | Path, *, record: str | None = None) -> Any:
    """The YAML file at ``path`` (UTF-8) parsed by :func:`parse_yaml`. ``OSError``,
    ``UnicodeDecodeError`` and ``yaml.YAMLError`` propagate."""
    return parse_yaml(Path(path).read_text(encoding="utf-8"), str(path), record=record)
