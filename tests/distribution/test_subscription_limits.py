"""The per-member subscription limit holds when requests come at once: the URL is resolved first,
with no lock held, then the member's row is locked while its subscriptions are counted and the new
one inserted (as media jobs are). PostgreSQL only: SQLite serialises writers."""

from __future__ import annotations

import threading

import pytest
from django.db import connection, connections

from consortium.api.errors import CodedError
from distribution.models import Subscription
from distribution.services import subscriptions as subscription_services
from tests.databases import postgresql_only


@postgresql_only("SQLite serialises writers; the race needs concurrent transactions")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_subscriptions_created_at_once_stay_within_the_members_limit(alice, settings, monkeypatch):
    """Every request is between its URL check and its insert at the same moment: the member's lock,
    taken after the lookup, lets only one of them count and insert at a time."""
    settings.WEBHOOK_MAX_SUBSCRIPTIONS = 1
    together = threading.Barrier(3)
    checked = subscription_services.check_url

    def resolving(url):
        try:
            together.wait(timeout=10)
        except threading.BrokenBarrierError:
            pass
        return checked(url)

    monkeypatch.setattr(subscription_services, "check_url", resolving)
    outcomes: list[str] = []

    def create(n: int) -> None:
        try:
            subscription_services.subscription_create(member=alice.member, url=f"http://127.0.0.1:9/{n}")
            outcomes.append("created")
        except CodedError as exc:
            outcomes.append(exc.code)
        except BaseException as exc:  # noqa: BLE001  reported below
            outcomes.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=create, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(outcomes) == ["created", "subscription_limit_reached", "subscription_limit_reached"]
    assert Subscription.objects.filter(member=alice.member).count() == 1


@postgresql_only("SQLite has no row locks")
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_the_url_is_resolved_while_no_lock_on_the_member_is_held(alice, monkeypatch):
    """A guard (nothing locked the member before the change either): a lookup may take seconds, and
    the member's other writes (submissions, media jobs) must not wait for it."""
    checked = subscription_services.check_url
    locked_meanwhile: list[bool] = []

    def resolving(url):
        def probe() -> None:
            try:
                with connections["default"].cursor() as cursor:
                    cursor.execute("BEGIN")
                    try:
                        cursor.execute("SELECT 1 FROM members_member WHERE id = %s FOR UPDATE NOWAIT",
                                       [alice.member.pk])
                        locked_meanwhile.append(False)
                    except Exception:  # noqa: BLE001  lock_not_available
                        locked_meanwhile.append(True)
                    finally:
                        cursor.execute("ROLLBACK")
            finally:
                connections["default"].close()

        thread = threading.Thread(target=probe)
        thread.start()
        thread.join()
        return checked(url)

    monkeypatch.setattr(subscription_services, "check_url", resolving)
    subscription_services.subscription_create(member=alice.member, url="http://127.0.0.1:9/")

    assert locked_meanwhile == [False]
