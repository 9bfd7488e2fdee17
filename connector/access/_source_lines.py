"""Line numbers of keys and values in a TOML text, which ``tomllib`` does not report.

A small scanner, not a parser: it follows strings (including multi-line ones),
comments and bracket depth just well enough to find the ``[[rules]]`` headers
and the lines where a key is assigned. Callers fall back to a coarser line
(the rule's header, or none) when a lookup finds nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"""\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*[.=]""")
_RULES_HEADER = re.compile(r"\s*\[\[\s*rules\s*\]\]\s*$")


@dataclass(frozen=True)
class _Line:
    number: int
    code: str  # the line without its comment
    statement: bool  # starts at bracket depth 0, outside any string


def _scan(text: str) -> list[_Line]:
    lines: list[_Line] = []
    in_string: str | None = None  # the open multi-line delimiter
    depth = 0
    for number, raw in enumerate(text.splitlines(), start=1):
        statement = in_string is None and depth == 0
        code_end = len(raw)
        i = 0
        while i < len(raw):
            if in_string is not None:
                end = raw.find(in_string, i)
                if end < 0:
                    break
                i = end + 3
                in_string = None
                continue
            char = raw[i]
            if char == "#":
                code_end = i
                break
            if raw.startswith('"""', i) or raw.startswith("'''", i):
                in_string = raw[i : i + 3]
                i += 3
                continue
            if char in "\"'":
                i = _string_end(raw, i)
                continue
            if char in "[{":
                depth += 1
            elif char in "]}":
                depth = max(depth - 1, 0)
            i += 1
        lines.append(_Line(number, raw[:code_end], statement))
    return lines


def _string_end(raw: str, start: int) -> int:
    quote = raw[start]
    i = start + 1
    while i < len(raw):
        if quote == '"' and raw[i] == "\\":
            i += 2
            continue
        if raw[i] == quote:
            return i + 1
        i += 1
    return i


class SourceLines:
    """Where things are in one mapping file: ``[[rules]]`` headers, keys, list values."""

    def __init__(self, text: str) -> None:
        self._lines = _scan(text)
        self._headers = [
            line.number
            for line in self._lines
            if line.statement and line.code.lstrip().startswith("[")
        ]
        self._rule_headers = [
            line.number for line in self._lines if line.statement and _RULES_HEADER.match(line.code)
        ]
        self._rule_count: int | None = None

    def expect_rules(self, count: int) -> None:
        """Tell how many rules the file parsed into; lookups trust headers only when they agree."""
        self._rule_count = count

    def rule_line(self, index: int) -> int | None:
        """The line of the ``[[rules]]`` header of rule ``index`` (0-based)."""
        if self._rule_count == len(self._rule_headers) and index < len(self._rule_headers):
            return self._rule_headers[index]
        return self.key_line(None, "rules")

    def key_line(self, index: int | None, key: str) -> int | None:
        """The line assigning ``key`` at top level (``index`` None) or in rule ``index``."""
        first, last = self._span(index)
        for line in self._lines[first - 1 : last]:
            if line.statement and _key_of(line.code) == key:
                return line.number
        return None

    def value_line(self, index: int | None, key: str, value: str) -> int | None:
        """The line of ``value`` inside the (possibly multi-line) array assigned to ``key``."""
        start = self.key_line(index, key)
        if start is None:
            return self.rule_line(index) if index is not None else None
        _, last = self._span(index)
        quoted = (f'"{value}"', f"'{value}'")
        for line in self._lines[start - 1 : last]:
            if line.number > start and line.statement:
                break
            if any(q in line.code for q in quoted):
                return line.number
        return start

    def table_line(self, name: str) -> int | None:
        """The first ``[name]`` or ``[[name]]`` header line."""
        header = re.compile(rf"\s*\[\[?\s*{re.escape(name)}\s*\]")
        return next(
            (line.number for line in self._lines if line.statement and header.match(line.code)),
            None,
        )

    def _span(self, index: int | None) -> tuple[int, int]:
        """First and last line (1-based, inclusive) of the top level or of rule ``index``."""
        end_of_file = len(self._lines)
        if index is None:
            first_header = self._headers[0] if self._headers else end_of_file + 1
            return 1, first_header - 1
        start = self.rule_line(index)
        if start is None or start not in self._rule_headers:
            return (start or 1), end_of_file
        later = [number for number in self._headers if number > start]
        return start, (later[0] - 1 if later else end_of_file)


def _key_of(code: str) -> str | None:
    match = _KEY.match(code)
    if match is None:
        return None
    return next(group for group in match.groups() if group is not None)
