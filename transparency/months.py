"""Calendar months (UTC) and the range a statistics request asks for. Plain values, no Django."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timezone

from consortium.api.errors import DomainError

MONTH = re.compile(r"^(\d{4})-(\d{2})$")
PERIODS = ("month",)
MAX_MONTHS = 120  # ten years: what one request may ask for
DEFAULT_MONTHS = 12
FIRST_YEAR, LAST_YEAR = 1970, 9998


@dataclass(frozen=True, order=True)
class Month:
    year: int
    month: int

    @classmethod
    def of(cls, moment: datetime) -> Month:
        moment = moment.astimezone(timezone.utc)
        return cls(moment.year, moment.month)

    def __str__(self) -> str:
        return f"{self.year:04d}-{self.month:02d}"

    def plus(self, months: int) -> Month:
        index = self.year * 12 + self.month - 1 + months
        return Month(index // 12, index % 12 + 1)

    def start(self) -> datetime:
        return datetime(self.year, self.month, 1, tzinfo=timezone.utc)


class RangeError(DomainError):
    """A request's range the statistics refuse, with the API's stable code (400)."""


@dataclass(frozen=True)
class MonthRange:
    """From `first` to `last`, both included."""

    first: Month
    last: Month

    def __len__(self) -> int:
        return (self.last.year - self.first.year) * 12 + self.last.month - self.first.month + 1

    def months(self) -> list[Month]:
        return [self.first.plus(n) for n in range(len(self))]

    def start(self) -> datetime:
        return self.first.start()

    def end(self) -> datetime:
        """The first instant after the range."""
        return self.last.plus(1).start()

    @classmethod
    def ending(cls, last: Month, months: int) -> MonthRange:
        return cls(last.plus(1 - months), last)


def parse_month(value: str, parameter: str) -> Month:
    found = MONTH.match(value)
    if found is None or not 1 <= int(found[2]) <= 12 or not FIRST_YEAR <= int(found[1]) <= LAST_YEAR:
        raise RangeError("month_invalid", f"{parameter} must be a month written YYYY-MM (UTC), from "
                                          f"{FIRST_YEAR}-01 to {LAST_YEAR}-12.", {"parameter": parameter})
    return Month(int(found[1]), int(found[2]))


def parse_range(*, first: str | None, last: str | None, period: str | None, now: datetime) -> MonthRange:
    """The months a request asks for. Without `to`, up to the current month; without `from`, the
    DEFAULT_MONTHS months up to `to`; at most MAX_MONTHS."""
    if period not in (None, *PERIODS):
        raise RangeError("period_invalid", f"period must be one of: {', '.join(PERIODS)}.", {"allowed": list(PERIODS)})
    to = parse_month(last, "to") if last else Month.of(now)
    start = parse_month(first, "from") if first else to.plus(1 - DEFAULT_MONTHS)
    if start > to:
        raise RangeError("range_invalid", "from must not be after to.", {"from": str(start), "to": str(to)})
    chosen = MonthRange(start, to)
    if len(chosen) > MAX_MONTHS:
        raise RangeError("range_too_long", f"Ask for at most {MAX_MONTHS} months at a time.",
                         {"max_months": MAX_MONTHS, "months": len(chosen)})
    return chosen
