"""The months a statistics request asks for (transparency.months): plain values, no database."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from transparency.months import Month, MonthRange, RangeError, parse_range

NOW = datetime(2025, 3, 31, 23, 59, 59, tzinfo=timezone.utc)


def test_a_range_covers_whole_utc_months_with_the_last_included():
    months = parse_range(first="2024-11", last="2025-02", period="month", now=NOW)

    assert [str(m) for m in months.months()] == ["2024-11", "2024-12", "2025-01", "2025-02"]
    assert months.start() == datetime(2024, 11, 1, tzinfo=timezone.utc)
    assert months.end() == datetime(2025, 3, 1, tzinfo=timezone.utc)


def test_the_current_month_is_the_utc_one():
    assert Month.of(datetime.fromisoformat("2025-04-01T00:30:00+02:00")) == Month(2025, 3)


@pytest.mark.parametrize("first, last, period, code", [
    (None, None, "quarter", "period_invalid"),
    ("2025-00", None, None, "month_invalid"),
    ("1969-12", None, None, "month_invalid"),
    (None, "2025-02-01", None, "month_invalid"),
    ("2025-03", "2025-02", None, "range_invalid"),
    (None, "2026-01", None, None),
    ("2015-04", None, None, None),
    ("2015-03", None, None, "range_too_long"),
])
def test_refusals_have_their_codes(first, last, period, code):
    if code is None:
        assert len(parse_range(first=first, last=last, period=period, now=NOW)) <= 120
        return
    with pytest.raises(RangeError) as refused:
        parse_range(first=first, last=last, period=period, now=NOW)
    assert refused.value.code == code


def test_a_range_can_end_in_the_last_month_of_any_year():
    assert MonthRange.ending(Month(2024, 12), 12) == MonthRange(Month(2024, 1), Month(2024, 12))
    assert Month(2024, 12).plus(1) == Month(2025, 1) and Month(2025, 1).plus(-1) == Month(2024, 12)
