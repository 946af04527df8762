"""The feed head the dispatcher announced (the real one is hashes' `feed_head`)."""

from __future__ import annotations

from ..models import DispatchMark


def announced_head() -> int:
    """The feed head the dispatcher last announced: pumps start from here (and follow the feed's
    own head as they go)."""
    return DispatchMark.objects.filter(pk=1).values_list("head", flat=True).first() or 0


def announce(head: int) -> None:
    if not DispatchMark.objects.filter(pk=1, head__lt=head).update(head=head):
        DispatchMark.objects.get_or_create(pk=1, defaults={"head": head})
