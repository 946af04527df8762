"""Reads of the suppression list: the active entries as a BenignList, the hashes they cover."""

from __future__ import annotations

from collections.abc import Iterable

from django.conf import settings
from django.db.models import QuerySet

from consortium.db import read_by_ids

from hashes.models import Hash, SignalType

from .entries import BenignList
from .models import BenignEntry

# Values per IN (...) list: well under SQLite's and PostgreSQL's bind-parameter limits.
LOOKUP_CHUNK = 2000


def chunked(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def benign_list(*, among: Iterable[tuple[str, str]] | None = None) -> BenignList:
    """The active entries, read in one query. With `among` (signals as (type, value)), only the
    entries that could cover one of them: those listing one of their values, and every PDQ entry if
    one of them is a PDQ (the only kind covered by distance)."""
    active = BenignEntry.objects.filter(active=True)
    if among is None:
        rows = list(active.values_list("signal_type", "value"))
        return BenignList.of(rows, distance=settings.BENIGN_DISTANCE)
    wanted: dict[str, set[str]] = {}
    for signal_type, value in among:
        wanted.setdefault(signal_type, set()).add(value)
    if not wanted:
        return BenignList.empty()
    # One prepared read (publishing asks it for every batch): every PDQ entry if a PDQ is among the
    # signals (the only kind covered by distance), and the entries listing one of their values (once:
    # off PostgreSQL the values are read in chunks, each of which finds the PDQ entries again).
    pdq = SignalType.PDQ if SignalType.PDQ in wanted else ""
    rows = list(dict.fromkeys((signal_type, value) for signal_type, value in read_by_ids(
        "SELECT signal_type, value FROM suppression_benignentry WHERE active AND (signal_type = %s OR value IN ({ids}))",
        sorted({value for values in wanted.values() for value in values}), pdq, prepare="benign_among",
    ) if signal_type == pdq or value in wanted.get(signal_type, ())))
    return BenignList.of(rows, distance=settings.BENIGN_DISTANCE)


def suppressed_hash_ids(hash_ids: Iterable[int]) -> set[int]:
    """Those of these hashes that an active entry covers: match never returns them.

    One query for the hashes' values and one for the entries that could cover them; the PDQ check is
    vectorised, O(PDQ candidates x PDQ entries) popcounts."""
    hash_ids = set(hash_ids)
    if not hash_ids or not BenignEntry.objects.filter(active=True).exists():
        return set()
    rows = list(Hash.objects.filter(pk__in=hash_ids).values_list("pk", "signal_type", "value"))
    signals = [(signal_type, value) for _, signal_type, value in rows]
    covered = benign_list(among=signals).covered(signals)
    return {pk for (pk, _, _), hit in zip(rows, covered) if hit}


def covered_live_hash_ids(entries: Iterable[tuple[str, str]]) -> set[int]:
    """Every live hash, in any audience, that these entries cover: the same values exactly, and for
    PDQ entries every PDQ hash within BENIGN_DISTANCE (from the match index, brought up to the feed's
    head first, so that nothing published before now is missed)."""
    from hashes.matching import indexes  # numba loads with it; only callers that cover hashes pay

    by_type: dict[str, list[str]] = {}
    for signal_type, value in entries:
        by_type.setdefault(signal_type, []).append(value)
    live = Hash.objects.filter(state=Hash.State.ACTIVE)
    found: set[int] = set()
    for signal_type, values in by_type.items():
        for chunk in chunked(sorted(set(values)), LOOKUP_CHUNK):
            found.update(live.filter(signal_type=signal_type, value__in=chunk).values_list("pk", flat=True))
    pdqs = by_type.get(SignalType.PDQ, [])
    if pdqs:
        for near in indexes.fresh(max_age=0).pdq_within_many(pdqs, settings.BENIGN_DISTANCE):
            found.update(near)
    return found


def entry_list(*, active: bool | None = True) -> QuerySet[BenignEntry]:
    entries = BenignEntry.objects.order_by("signal_type", "value")
    return entries if active is None else entries.filter(active=active)
