"""Every write to the suppression list. Each change is an audit record; a new or reactivated entry
opens a dispute on every live hash it covers (hashes.services.disputes.disputes_open)."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import audit_record
from consortium.api.errors import Conflict
from hashes.models import Hash
from hashes.services.disputes import disputes_open
from hashes.services.feed import feed_lock

from .entries import EntryRow
from .files import read_entries
from .models import BenignEntry
from .selectors import LOOKUP_CHUNK, chunked, covered_live_hash_ids

DISPUTE_REASONS = ["suppression_list"]


@dataclass
class AddResult:
    added: list[BenignEntry] = field(default_factory=list)
    reactivated: list[BenignEntry] = field(default_factory=list)
    unchanged: int = 0
    disputes_opened: int = 0

    def summary(self) -> str:
        return (f"{len(self.added)} added, {len(self.reactivated)} reactivated, {self.unchanged} already listed; "
                f"{self.disputes_opened} disputes opened")


def actor_label(actor: Any) -> str:
    return f"admin:{actor.get_username()}" if getattr(actor, "is_authenticated", False) else "operator"


def benign_entries_add(*, entries: list[EntryRow], actor: Any = None) -> AddResult:
    """List these entries (checked and distinct, see suppression.entries), all or none: a new one is
    created, an inactive one reactivated with the reason given, an active one left as it is (so adding
    the same entries twice changes nothing). Then every live hash that an entry new to the active list
    covers is disputed."""
    result = AddResult()
    now = timezone.now()
    try:
        with transaction.atomic():
            existing = existing_entries([entry.key for entry in entries])
            fresh = []
            for entry in entries:
                known = existing.get(entry.key)
                if known is None:
                    fresh.append(BenignEntry(signal_type=entry.signal_type, value=entry.value, reason=entry.reason,
                                             added_by=actor if getattr(actor, "is_authenticated", False) else None,
                                             added_by_label=actor_label(actor), added_at=now, updated_at=now))
                elif known.active:
                    result.unchanged += 1
                else:
                    before = known.snapshot()
                    known.active, known.reason, known.updated_at, known.covered_at = True, entry.reason, now, None
                    known.save(update_fields=["active", "reason", "updated_at", "covered_at"])
                    audit_record(actor=actor, action="benignentry.reactivate", obj=known, before=before,
                                 after=known.snapshot())
                    result.reactivated.append(known)
            result.added = BenignEntry.objects.bulk_create(fresh)
            for entry in result.added:
                audit_record(actor=actor, action="benignentry.create", obj=entry, after=entry.snapshot())
    except IntegrityError:
        # Another administrator listed one of these values meanwhile; nothing of this call was kept.
        raise Conflict("entries_conflict", "Some of these entries were listed at the same moment by someone else; "
                                           "nothing was changed. Add them again.") from None
    result.disputes_opened = benign_entries_cover(actor=actor)
    return result


def existing_entries(keys: list[tuple[str, str]]) -> dict[tuple[str, str], BenignEntry]:
    by_type: dict[str, list[str]] = {}
    for signal_type, value in keys:
        by_type.setdefault(signal_type, []).append(value)
    found: dict[tuple[str, str], BenignEntry] = {}
    for signal_type, values in by_type.items():
        for chunk in chunked(values, LOOKUP_CHUNK):
            for entry in BenignEntry.objects.select_for_update().filter(signal_type=signal_type, value__in=chunk):
                found[(entry.signal_type, entry.value)] = entry
    return found


def benign_import(*, data: bytes, fmt: str, actor: Any = None, name: str = "") -> AddResult:
    """Import a CSV or JSON file of entries (suppression.files), all or nothing: any bad entry refuses
    the whole file (FileRejected) and nothing changes. Importing the same file again changes nothing."""
    entries = read_entries(data, fmt=fmt, max_bytes=settings.BENIGN_IMPORT_MAX_BYTES,
                           max_rows=settings.BENIGN_IMPORT_MAX_ROWS)
    result = benign_entries_add(entries=entries, actor=actor)
    if result.added or result.reactivated:
        audit_record(actor=actor, action="benignentry.import", object_type="suppression.import",
                     object_id=hashlib.sha256(data).hexdigest(),
                     after={"name": name[:200], "format": fmt, "entries": len(entries), "added": len(result.added),
                            "reactivated": len(result.reactivated), "unchanged": result.unchanged})
    return result


def benign_entries_set_active(*, entry_ids: Iterable[int], active: bool, actor: Any = None) -> int:
    """Deactivate entries (statements asserting them are accepted again and match returns their hashes;
    the disputes they opened stay for administrators to resolve) or reactivate them (which disputes the
    live hashes they cover, as a new entry does). Returns how many changed."""
    now = timezone.now()
    with transaction.atomic():
        changing = list(BenignEntry.objects.select_for_update().filter(pk__in=list(entry_ids)).exclude(active=active)
                        .order_by("pk"))
        for entry in changing:
            before = entry.snapshot()
            entry.active, entry.updated_at = active, now
            if active:
                entry.covered_at = None
            entry.save(update_fields=["active", "updated_at", "covered_at"])
            audit_record(actor=actor, action=f"benignentry.{'reactivate' if active else 'deactivate'}", obj=entry,
                         before=before, after=entry.snapshot())
    if active and changing:
        benign_entries_cover(actor=actor)
    return len(changing)


def benign_entries_cover(*, actor: Any = None) -> int:
    """Dispute every live hash that an active entry not yet covered covers; returns how many disputes
    were opened. The disputes are opened in batches of PUBLISH_BATCH_SIZE hashes, each its own
    transaction under the feed lock, so that a broad entry never holds publishing up for long; an
    entry is marked covered only once all of its batches are done, so whatever an interrupted run
    left is picked up by the next add, import or `manage.py benign cover`."""
    pending = list(BenignEntry.objects.filter(active=True, covered_at__isnull=True).values_list(
        "pk", "signal_type", "value"))
    if not pending:
        return 0
    # A barrier: a publishing batch that read the list before these entries existed has committed
    # once the feed lock is free, so the search below sees what it published; every later batch
    # reads the entries and refuses what they cover (hashes.services.publishing).
    with transaction.atomic():
        feed_lock(wait=True)
    hash_ids = sorted(covered_live_hash_ids([(signal_type, value) for _, signal_type, value in pending]))
    opened = 0
    for chunk in chunked(hash_ids, settings.PUBLISH_BATCH_SIZE):
        opened += len(disputes_open(hashes=Hash.objects.filter(pk__in=chunk).only("pk"), reasons=DISPUTE_REASONS,
                                    actor=actor))
    BenignEntry.objects.filter(pk__in=[pk for pk, _, _ in pending], active=True, covered_at__isnull=True).update(
        covered_at=timezone.now())
    return opened
