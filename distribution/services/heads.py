"""The two feed heads distribution works with: the real one, and the one the dispatcher announced."""

from __future__ import annotations

from hashes.models import FeedHead

from ..models import DispatchMark


def feed_head() -> int:
    """The last committed seq. FeedHead is written in the transaction that appends the events, so
    every event up to this value is committed and visible."""
    return FeedHead.objects.filter(pk=1).values_list("last_seq", flat=True).first() or 0


def announced_head() -> int:
    """The feed head the dispatcher last announced: pumps send up to here."""
    return DispatchMark.objects.filter(pk=1).values_list("head", flat=True).first() or 0


def announce(head: int) -> None:
    if not DispatchMark.objects.filter(pk=1, head__lt=head).update(head=head):
        DispatchMark.objects.get_or_create(pk=1, defaults={"head": head})
