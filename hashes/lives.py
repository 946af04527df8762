"""A hash's lives in one audience (the whole consortium, or one sharing group): the spans in which
one of its statements shared with that audience was live. Corroborations whose spans (creation to
retraction) overlap or touch make one life; a gap, when the hash was retracted for the audience,
starts the next. A life begins with the feed event its first statement (its opener) caused on the
hash. TAXII names an indicator by its hash and life (taxii.stix.indicator_id).

Each corroboration records its life when it is published (hashes.services.publishing), so a reader
needs only the rows it shows; `compute` works them out from a hash's whole history, for rows
published before migration 0014 (its backfill, and readers meeting a row it has not reached yet)."""

from __future__ import annotations

from datetime import datetime
from typing import Iterable

from django.db.models import Q

# A corroboration's life: (number, seq of the event that began it or None, that event's occurred_at
# or, without an event, the opener's created_at).
Life = tuple[int, "int | None", datetime]


def number_lives(rows: Iterable[tuple[str, datetime, datetime | None]]) -> tuple[dict[str, int], list[str]]:
    """Rows of one hash and audience, (statement id, created_at, retracted_at) in (created_at, id)
    order: each statement's life number, and each life's opener."""
    life_of: dict[str, int] = {}
    openers: list[str] = []
    end: datetime | None = None
    for statement_id, created_at, retracted_at in rows:
        if not openers or (end is not None and created_at > end):
            openers.append(statement_id)
            end = retracted_at
        elif end is not None:
            end = None if retracted_at is None else max(end, retracted_at)
        life_of[statement_id] = len(openers) - 1
    return life_of, openers


def compute(corroborations, events, hash_ids: Iterable[int], condition: Q | None = None
            ) -> dict[tuple[int, int | None], dict[str, Life]]:
    """For each hash and audience ((hash id, share group id or None)), each statement's life, from
    the hash's whole history (`condition` narrows the corroborations read). `corroborations` and
    `events` are the Corroboration and Event managers (a migration passes its historical models')."""
    ids = list(hash_ids)
    if not ids:
        return {}
    rows = corroborations.filter(hash_id__in=ids)
    if condition is not None:
        rows = rows.filter(condition)
    grouped: dict[tuple[int, int | None], list[tuple[str, datetime, datetime | None]]] = {}
    for hash_id, share_group_id, statement_id, created_at, retracted_at in rows.order_by(
            "hash_id", "created_at", "id").values_list(
            "hash_id", "statement__share_group_id", "statement_id", "created_at", "retracted_at"):
        grouped.setdefault((hash_id, share_group_id), []).append((str(statement_id), created_at, retracted_at))
    numbered = {key: number_lives(group) for key, group in grouped.items()}
    openers = {(key[0], opener) for key, (_, found) in numbered.items() for opener in found}
    began: dict[tuple[int, str], tuple[int, datetime]] = {}
    if openers:
        for hash_id, cause_id, seq, occurred_at in (
                events.filter(hash_id__in={h for h, _ in openers}, cause_id__in={s for _, s in openers})
                .order_by("-seq").values_list("hash_id", "cause_id", "seq", "occurred_at")):
            began[(hash_id, str(cause_id))] = (seq, occurred_at)  # the first event wins
    created = {(key[0], sid): created_at for key, group in grouped.items() for sid, created_at, _ in group}
    lives: dict[tuple[int, int | None], dict[str, Life]] = {}
    for key, (life_of, found) in numbered.items():
        hash_id = key[0]
        starts = []
        for opener in found:
            seq, moment = began.get((hash_id, opener), (None, created[(hash_id, opener)]))
            starts.append((seq, moment))
        lives[key] = {sid: (life, *starts[life]) for sid, life in life_of.items()}
    return lives


def backfill(corroborations, events, *, hashes_per_transaction: int = 200) -> int:
    """Record their life on the corroborations that have none (published before migration 0014),
    hash id range after range (read through the corroborations' (hash, ...) indexes), one short
    transaction each, so that publishing goes on meanwhile; only rows still without one are
    written (a row published meanwhile has its own, the same). Returns how many rows it set."""
    from django.db import transaction
    from django.db.models import Max

    last = corroborations.aggregate(last=Max("hash_id"))["last"] or 0
    written = 0
    for start in range(0, last, hashes_per_transaction):
        with transaction.atomic():
            hash_ids = set(corroborations.filter(hash_id__gt=start, hash_id__lte=start + hashes_per_transaction,
                                                 life__isnull=True).values_list("hash_id", flat=True))
            by_life: dict[tuple[int, int, int | None, datetime], list[str]] = {}
            for (hash_id, _), found in compute(corroborations, events, hash_ids).items():
                for statement_id, life in found.items():
                    by_life.setdefault((hash_id, *life), []).append(statement_id)
            for (hash_id, life, seq, began), statement_ids in by_life.items():
                written += corroborations.filter(hash_id=hash_id, statement_id__in=statement_ids,
                                                 life__isnull=True).update(life=life, life_seq=seq, life_began=began)
    return written
