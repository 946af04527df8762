"""Reading a file of entries for a bulk import (pure, no Django).

CSV: a header row naming the columns `type`, `value` and `reason` (in any order, nothing else), then
one entry a row. JSON: an array of objects with exactly those keys. A file is taken whole or not at
all: every problem is reported with where it is (the line an entry starts on, in either format) and
a stable code, and one problem refuses the whole file."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

from .entries import EntryError, EntryRow, entry_row

FORMATS = ("csv", "json")
COLUMNS = ("type", "value", "reason")
# A refused file lists at most this many of its problems (and says how many it had).
MAX_REPORTED_ERRORS = 100


@dataclass(frozen=True)
class RowError:
    line: int
    code: str
    message: str

    def __str__(self) -> str:
        return f"line {self.line}: {self.code}: {self.message}"


# (the line an entry starts on, its fields or what is wrong with its shape)
Row = tuple[int, "dict[str, object] | RowError"]


class FileRejected(ValueError):
    """The file as a whole is refused: `code` says why; for problems in entries it is `rows_invalid`
    and `errors` lists them."""

    def __init__(self, code: str, message: str, errors: list[RowError] | None = None, total: int = 0) -> None:
        super().__init__(message)
        self.code, self.message = code, message
        self.errors = errors or []
        self.total = total or len(self.errors)

    def lines(self) -> list[str]:
        shown = [str(error) for error in self.errors]
        if self.total > len(self.errors):
            shown.append(f"... and {self.total - len(self.errors)} more problems")
        return [f"{self.code}: {self.message}", *shown]


def guess_format(name: str, data: bytes) -> str:
    """From the file's name, else from its first character: `[` is JSON."""
    lowered = name.lower()
    for fmt in FORMATS:
        if lowered.endswith(f".{fmt}"):
            return fmt
    return "json" if data.lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"[") else "csv"


def read_entries(data: bytes, *, fmt: str, max_bytes: int, max_rows: int) -> list[EntryRow]:
    """The file's entries, checked, normalised and distinct; raises FileRejected otherwise."""
    if fmt not in FORMATS:
        raise FileRejected("format_unknown", f"format must be one of {', '.join(FORMATS)}.")
    if len(data) > max_bytes:
        raise FileRejected("file_too_large", f"The file has {len(data)} bytes; at most {max_bytes} are accepted.")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileRejected("file_not_utf8", f"The file is not UTF-8 text (byte {exc.start}).") from None
    raw = csv_rows(text, max_rows) if fmt == "csv" else json_rows(text, max_rows)
    if not raw:
        raise FileRejected("file_empty", "The file holds no entries.")
    entries: list[EntryRow] = []
    errors: list[RowError] = []
    first_line: dict[tuple[str, str], int] = {}
    for line, fields in raw:
        if isinstance(fields, RowError):
            errors.append(fields)
            continue
        try:
            entry = entry_row(fields.get("type"), fields.get("value"), fields.get("reason"))
        except EntryError as exc:
            errors.append(RowError(line, exc.code, exc.message))
            continue
        if entry.key in first_line:
            where = first_line[entry.key]
            errors.append(RowError(line, "duplicate", f"the same {entry.signal_type} value as line {where}."))
            continue
        first_line[entry.key] = line
        entries.append(entry)
    if errors:
        raise FileRejected("rows_invalid", f"{len(errors)} of {len(raw)} entries are invalid; nothing was imported.",
                           errors[:MAX_REPORTED_ERRORS], len(errors))
    return entries


def too_many(max_rows: int) -> FileRejected:
    return FileRejected("too_many_rows", f"A file holds at most {max_rows} entries; split it.")


def csv_rows(text: str, max_rows: int) -> list[Row]:
    """(line the row starts on, {column: text} or what is wrong with it) for each non-blank row
    after the header."""
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[Row] = []
    header: list[str] | None = None
    line = 1
    try:
        for record in reader:
            start, line = line, reader.line_num + 1
            if not any(cell.strip() for cell in record):
                continue
            if header is None:
                header = [cell.strip().lower() for cell in record]
                if sorted(header) != sorted(COLUMNS):
                    raise FileRejected("header_invalid", f"line {start}: the header must name the columns "
                                                         f"{', '.join(COLUMNS)} and nothing else.")
                continue
            if len(rows) == max_rows:
                raise too_many(max_rows)
            if len(record) != len(header):
                rows.append((start, RowError(start, "row_invalid",
                                             f"{len(record)} fields where the header has {len(header)}.")))
            else:
                rows.append((start, dict(zip(header, record))))
    except csv.Error as exc:
        raise FileRejected("csv_invalid", f"line {reader.line_num}: {exc}.") from None
    if header is None:
        raise FileRejected("header_invalid", f"The first row must name the columns {', '.join(COLUMNS)}.")
    return rows


def json_rows(text: str, max_rows: int) -> list[Row]:
    """(line the element starts on, the object or what is wrong with it) for each element of the
    top-level array."""
    decoder = json.JSONDecoder(object_pairs_hook=_unique_keys)
    rows: list[Row] = []
    position, line, counted = _skip_space(text, 0), 1, 0

    def line_at(offset: int) -> int:
        nonlocal line, counted
        line += text.count("\n", counted, offset)
        counted = offset
        return line

    if not text.startswith("[", position):
        raise FileRejected("json_invalid", "The file must be a JSON array of entries.")
    position = _skip_space(text, position + 1)
    try:
        while not (text.startswith("]", position) and not rows):
            start = line_at(position)
            item, position = decoder.raw_decode(text, position)
            position = _skip_space(text, position)
            if len(rows) == max_rows:
                raise too_many(max_rows)
            if not isinstance(item, dict) or set(item) != set(COLUMNS):
                item = RowError(start, "row_invalid", 'an entry is {"type", "value", "reason"} and nothing else.')
            rows.append((start, item))
            if text.startswith("]", position):
                break
            if not text.startswith(",", position):
                raise FileRejected("json_invalid", f"line {line_at(position)}: expected ',' or ']'.")
            position = _skip_space(text, position + 1)
    except json.JSONDecodeError as exc:
        raise FileRejected("json_invalid", f"line {exc.lineno}: {exc.msg}.") from None
    except _DuplicateKey as exc:
        raise FileRejected("json_invalid", f"line {line_at(position)}: key {exc} appears twice in one entry.") from None
    except RecursionError:
        raise FileRejected("json_invalid", f"line {line_at(position)}: nested too deep.") from None
    if text[position + 1:].strip():
        raise FileRejected("json_invalid", f"line {line_at(position + 1)}: text after the array.")
    return rows


class _DuplicateKey(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    keys = [key for key, _ in pairs]
    for key in keys:
        if keys.count(key) > 1:
            raise _DuplicateKey(json.dumps(key))
    return dict(pairs)


def _skip_space(text: str, position: int) -> int:
    while position < len(text) and text[position] in " \t\r\n":
        position += 1
    return position
