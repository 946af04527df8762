"""Reading an import file (no database): every problem is found, with the line its entry starts on
and a stable code, and any one of them refuses the whole file; sizes and row counts are bounded."""

from __future__ import annotations

import json

import pytest

from suppression.files import FileRejected, guess_format, read_entries
from tests.factories import BASE_PDQ

MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def read(text: str | bytes, fmt: str = "csv", max_bytes: int = 1 << 20, max_rows: int = 100):
    data = text.encode() if isinstance(text, str) else text
    return read_entries(data, fmt=fmt, max_bytes=max_bytes, max_rows=max_rows)


def refused(text: str | bytes, fmt: str = "csv", **bounds) -> FileRejected:
    with pytest.raises(FileRejected) as caught:
        read(text, fmt, **bounds)
    return caught.value


def test_a_csv_file_gives_its_entries_normalised_in_order():
    entries = read(f'Value,TYPE,reason\n{MD5.upper()},md5,empty file\n\n{BASE_PDQ},pdq,"blank frame, grey"\n')

    assert [(e.signal_type, e.value, e.reason) for e in entries] == [
        ("md5", MD5, "empty file"), ("pdq", BASE_PDQ, "blank frame, grey")]


def test_a_json_file_gives_its_entries():
    entries = read(json.dumps([{"type": "md5", "value": MD5, "reason": "empty file"}]), "json")

    assert [e.key for e in entries] == [("md5", MD5)]


def test_every_bad_csv_row_is_reported_with_its_line_and_code():
    text = (
        "type,value,reason\n"
        f"md5,{MD5},empty file\n"            # line 2: fine
        f'sha1,{MD5},"a reason\nover two lines"\n'  # line 3 (to 4): unknown type
        "md5,abc,short\n"                    # line 5
        f"md5,{MD5},\n"                      # line 6: no reason
        f"md5,{MD5.upper()},again\n"         # line 7: same value as line 2
        "md5,only two\n"                     # line 8: wrong number of fields
    )

    rejection = refused(text)

    assert rejection.code == "rows_invalid"
    assert [(e.line, e.code) for e in rejection.errors] == [
        (3, "type_invalid"), (5, "value_invalid"), (6, "reason_missing"), (7, "duplicate"), (8, "row_invalid")]
    assert "line 2" in rejection.errors[3].message
    assert rejection.lines()[1].startswith("line 3: type_invalid: ")


def test_every_bad_json_entry_is_reported_with_the_line_it_starts_on():
    text = (
        "[\n"
        f'  {{"type": "md5", "value": "{MD5}", "reason": "empty file"}},\n'   # line 2
        '  {"type": "md5",\n   "value": "xyz", "reason": "r"},\n'          # line 3
        f'  {{"type": "md5", "value": "{MD5}", "reason": "r", "extra": 1}},\n'  # line 5
        '  "not an object",\n'                                              # line 6
        f'  {{"type": "md5", "value": "{MD5}", "reason": "r"}}\n'           # line 7: duplicate
        "]\n"
    )

    rejection = refused(text, "json")

    assert [(e.line, e.code) for e in rejection.errors] == [
        (3, "value_invalid"), (5, "row_invalid"), (6, "row_invalid"), (7, "duplicate")]


@pytest.mark.parametrize("text, fmt, code", [
    ("", "csv", "header_invalid"),
    ("type,value\nmd5,x\n", "csv", "header_invalid"),
    ("type,value,reason,extra\n", "csv", "header_invalid"),
    ("type,value,reason\n", "csv", "file_empty"),
    ('type,value,reason\nmd5,"unterminated\n', "csv", "csv_invalid"),
    ("[]", "json", "file_empty"),
    ('{"type": "md5"}', "json", "json_invalid"),
    ("[{]", "json", "json_invalid"),
    (f'[{{"type": "md5", "value": "{MD5}", "reason": "a", "reason": "b"}}]', "json", "json_invalid"),
    (f'[{{"type": "md5", "value": "{MD5}", "reason": "a"}}] []', "json", "json_invalid"),
    (f'[{{"type": "md5", "value": "{MD5}", "reason": "a"}}', "json", "json_invalid"),
    (f'[{{"type": "md5", "value": "{MD5}", "reason": "a"}},]', "json", "json_invalid"),
    ("[" * 100_000, "json", "json_invalid"),
    ("type,value,reason\nmd5," + "a" * 200_000 + ",r\n", "csv", "csv_invalid"),
    (b"type,value,reason\nmd5,\xff,r\n", "csv", "file_not_utf8"),
    ("whatever", "xml", "format_unknown"),
])
def test_a_malformed_file_is_refused_with_its_code(text, fmt, code):
    assert refused(text, fmt).code == code


def test_a_file_over_the_size_bound_is_refused_before_it_is_read():
    text = f"type,value,reason\nmd5,{MD5},empty file\n"

    assert refused(text, max_bytes=len(text) - 1).code == "file_too_large"
    assert len(read(text, max_bytes=len(text))) == 1


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_a_file_over_the_row_bound_is_refused(fmt):
    rows = [{"type": "md5", "value": f"{n:032x}", "reason": "r"} for n in range(4)]
    csv_text = "type,value,reason\n" + "".join(f"md5,{r['value']},r\n" for r in rows)
    text = csv_text if fmt == "csv" else json.dumps(rows)

    assert refused(text, fmt, max_rows=3).code == "too_many_rows"
    assert len(read(text, fmt, max_rows=4)) == 4


def test_a_refusal_lists_at_most_a_hundred_problems_and_says_how_many_there_were():
    text = "type,value,reason\n" + "md5,bad,r\n" * 150

    rejection = refused(text, max_rows=1000)

    assert (len(rejection.errors), rejection.total) == (100, 150)
    assert rejection.lines()[-1] == "... and 50 more problems"


@pytest.mark.parametrize("name, data, fmt", [
    ("list.CSV", b"[", "csv"), ("list.json", b"type", "json"), ("upload", b"\xef\xbb\xbf [{", "json"),
    ("upload", b"type,value,reason", "csv"),
])
def test_the_format_is_guessed_from_the_name_then_the_content(name, data, fmt):
    assert guess_format(name, data) == fmt
