"""Subscription secrets at rest: moving from the SECRET_KEY-derived key to WEBHOOK_SECRET_KEYS keeps
every secret readable, new secrets are sealed under the first key, `webhook_secrets reseal` moves
every secret to the newest key so an old key can be removed, and `webhook_secrets check` names the
subscriptions whose secret cannot be decrypted. No secret is ever printed or logged."""

from __future__ import annotations

import logging
from io import StringIO

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.exceptions import ImproperlyConfigured
from django.core.management import call_command
from django.core.management.base import CommandError

from audit.models import AuditEvent
from distribution.models import Subscription
from distribution.secretbox import seal, unseal
from distribution.services.subscriptions import subscription_create, subscription_update

OLD_KEY, NEW_KEY, LOST_KEY = (Fernet.generate_key().decode() for _ in range(3))


@pytest.fixture
def default_key(settings):
    """As a fresh installation runs: no WEBHOOK_SECRET_KEYS, one key derived from SECRET_KEY."""
    settings.WEBHOOK_SECRET_KEYS = []
    return settings


def create(member) -> tuple[Subscription, str]:
    created = subscription_create(member=member, url="http://127.0.0.1:9/hooks")
    return created.subscription, created.secret


def rotate(subscription: Subscription) -> str:
    return subscription_update(subscription=subscription, changes={"rotate_secret": True}).secret


def stored(subscription: Subscription) -> tuple[str, str]:
    subscription.refresh_from_db()
    return subscription.secret_encrypted, subscription.previous_secret_encrypted


def run(*args: str) -> tuple[str, CommandError | None]:
    out = StringIO()
    try:
        call_command("webhook_secrets", *args, stdout=out, stderr=out)
    except CommandError as exc:
        return out.getvalue(), exc
    return out.getvalue(), None


def test_secrets_sealed_under_the_derived_key_still_decrypt_once_explicit_keys_are_set(default_key, bob):
    subscription, secret = create(bob.member)

    default_key.WEBHOOK_SECRET_KEYS = [NEW_KEY]

    assert unseal(subscription.secret_encrypted) == secret


def test_new_secrets_are_sealed_under_the_first_key_only(settings):
    settings.WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    sealed = seal("whsec_c2VjcmV0").encode()

    assert Fernet(NEW_KEY).decrypt(sealed) == b"whsec_c2VjcmV0"
    with pytest.raises(InvalidToken):
        Fernet(OLD_KEY).decrypt(sealed)
    settings.WEBHOOK_SECRET_KEYS = []
    with pytest.raises(ImproperlyConfigured):  # the derived key decrypts what it sealed, nothing newer
        unseal(sealed.decode())


def test_a_secret_under_a_key_no_longer_configured_cannot_be_decrypted(settings):
    settings.WEBHOOK_SECRET_KEYS = [LOST_KEY]
    sealed = seal("whsec_c2VjcmV0")
    settings.WEBHOOK_SECRET_KEYS = [NEW_KEY]

    with pytest.raises(ImproperlyConfigured) as refused:
        unseal(sealed)
    assert sealed not in str(refused.value) and NEW_KEY not in str(refused.value)


def test_reseal_moves_every_secret_to_the_newest_key_so_the_old_one_can_go(default_key, alice, bob, caplog):
    caplog.set_level(logging.DEBUG)
    first, first_secret = create(alice.member)
    second, _ = create(bob.member)
    second_secret = rotate(second)  # the previous secret still signs: it is resealed too
    previous_secret = unseal(stored(second)[1])
    before = [sealed for sealed in (*stored(first), *stored(second)) if sealed]
    default_key.WEBHOOK_SECRET_KEYS = [NEW_KEY]

    output, failed = run("reseal", "--batch-size", "1")

    assert failed is None
    assert output.splitlines() == ["resealed: 3", "under the newest key: 3",
                                   "subscriptions with a secret that does not decrypt: 0"]
    default_key.SECRET_KEY = "a-new-django-secret-key-that-derives-another-key"  # only NEW_KEY is left
    assert unseal(stored(first)[0]) == first_secret
    assert [unseal(sealed) for sealed in stored(second)] == [second_secret, previous_secret]
    after = [sealed for sealed in (*stored(first), *stored(second)) if sealed]
    assert len(after) == 3 and all(Fernet(NEW_KEY).decrypt(sealed.encode()) for sealed in after)
    shown = output + caplog.text
    for secret in (first_secret, second_secret, previous_secret, *before):
        assert secret.removeprefix("whsec_") not in shown
    event = AuditEvent.objects.get(action="subscriptions.secrets_reseal")
    assert event.actor_label == "operator"
    assert event.after == {"resealed": 3, "already_newest": 0, "unreadable": 0}


def test_a_second_reseal_finds_nothing_to_do(default_key, bob):
    subscription, _ = create(bob.member)
    default_key.WEBHOOK_SECRET_KEYS = [NEW_KEY]
    run("reseal")
    resealed = stored(subscription)

    output, failed = run("reseal")

    assert failed is None and output.splitlines()[:2] == ["resealed: 0", "under the newest key: 1"]
    assert stored(subscription) == resealed


def test_check_counts_the_secrets_and_names_the_subscriptions_it_cannot_decrypt(settings, alice, bob, charlie):
    settings.WEBHOOK_SECRET_KEYS = [LOST_KEY]
    lost, lost_secret = create(alice.member)
    settings.WEBHOOK_SECRET_KEYS = [OLD_KEY]
    older, _ = create(bob.member)
    settings.WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]
    newest, _ = create(charlie.member)
    rotate(newest)

    output, failed = run("check")

    assert failed is not None and failed.returncode == 1
    assert output.splitlines() == ["decrypt: 3", "under the newest key: 2", "under an older key: 1",
                                   "subscriptions with a secret that does not decrypt: 1", str(lost.pk)]
    assert str(older.pk) not in output and str(newest.pk) not in output
    assert lost_secret.removeprefix("whsec_") not in output + str(failed)
    assert stored(lost)[0] not in output + str(failed)


def test_check_succeeds_when_every_secret_decrypts(default_key, bob):
    create(bob.member)

    output, failed = run("check")

    assert failed is None
    assert output.splitlines() == ["decrypt: 1", "under the newest key: 1", "under an older key: 0",
                                   "subscriptions with a secret that does not decrypt: 0"]


def test_reseal_leaves_a_secret_it_cannot_decrypt_as_it_is_reseals_the_rest_and_fails(settings, alice, bob):
    settings.WEBHOOK_SECRET_KEYS = [LOST_KEY]
    lost, _ = create(alice.member)
    settings.WEBHOOK_SECRET_KEYS = [OLD_KEY]
    readable, secret = create(bob.member)
    unreadable_before = stored(lost)
    settings.WEBHOOK_SECRET_KEYS = [NEW_KEY, OLD_KEY]

    output, failed = run("reseal")

    assert failed is not None and failed.returncode == 1
    assert output.splitlines() == ["resealed: 1", "under the newest key: 1",
                                   "subscriptions with a secret that does not decrypt: 1"]
    assert str(lost.pk) not in output  # reseal prints counts only; check names them
    assert stored(lost) == unreadable_before
    assert Fernet(NEW_KEY).decrypt(stored(readable)[0].encode()).decode() == secret
    assert AuditEvent.objects.get(action="subscriptions.secrets_reseal").after["unreadable"] == 1


def test_a_malformed_key_setting_is_reported_without_the_key(settings, bob):
    create(bob.member)
    settings.WEBHOOK_SECRET_KEYS = ["not-a-fernet-key-but-maybe-a-secret"]

    output, failed = run("check")

    assert failed is not None and "not a Fernet key" in str(failed)
    assert "not-a-fernet-key" not in output + str(failed)
