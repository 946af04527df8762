"""A restore rehearsed as README's "Backup and restore" tells an operator to do it: a running
installation (gunicorn, the pipeline and webhook workers, beat, on PostgreSQL) with published
statements and a subscription whose secrets are sealed under WEBHOOK_SECRET_KEYS is dumped with
`pg_dump` while it runs, restored with `pg_restore` into a fresh database, and started there with the
saved server key file, DJANGO_SECRET_KEY and WEBHOOK_SECRET_KEYS, on an emptied broker. It serves
the same feed, gap-free, under the same server key; the webhook secrets decrypt; the next statement
publishes at head+1; and the subscription resumes from its cursor to a receiver on 127.0.0.1."""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Callable, Iterator

import dj_database_url
import pytest
import standardwebhooks
from cryptography.fernet import Fernet
from django.db import connection

from consortium_client.http import ConsortiumClient
from consortium_client.webhooks import load_jwks
from distribution.models import Subscription
from hashes.models import Statement
from tests.actors import make_actor
from tests.databases import postgresql_only
from tests.distribution.receiver import Receiver
from tests.factories import md5

from .stack import ROOT, Stack, database_url, wait_until

pytestmark = [
    pytest.mark.e2e,
    postgresql_only("the restore rehearsal dumps and restores PostgreSQL"),
    pytest.mark.skipif(not (shutil.which("pg_dump") and shutil.which("pg_restore") and shutil.which("psql")),
                       reason="pg_dump, pg_restore and psql are not installed"),
]

# Receivers on 127.0.0.1 over http, and a sweep quick enough that a lost pump is queued again in seconds.
WEBHOOKS_ON_LOCALHOST = {
    "WEBHOOK_ALLOW_PRIVATE_TARGETS": "true",
    "WEBHOOK_REQUIRE_HTTPS": "false",
    "WEBHOOK_TIMEOUT_SECONDS": "5",
    "WEBHOOK_CLAIM_SECONDS": "6",
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": "0.5",
    "WEBHOOK_WAKE_STALE_SECONDS": "2",
}
PROCESSES = ("web", "worker", "dispatch", "deliver", "beat")
BEFORE_THE_OUTAGE, AT_BACKUP = 30, 50


def postgres_client_env() -> dict[str, str]:
    db = connection.settings_dict
    env = {**os.environ, "PGHOST": db.get("HOST") or "127.0.0.1", "PGPORT": str(db.get("PORT") or 5432),
           "PGUSER": db["USER"]}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = db["PASSWORD"]
    return env


def psql(sql: str) -> None:
    subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres", "-c", sql],
                   env=postgres_client_env(), check=True, capture_output=True, timeout=120)


def get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=10) as answer:
        return json.load(answer)


@pytest.fixture
def restored_database() -> Iterator[str]:
    """A fresh database named after the one the suite was given (never one another run uses)."""
    name = f"{dj_database_url.parse(os.environ['DATABASE_URL'])['NAME']}_restored"
    psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')  # left by an interrupted run
    psql(f'CREATE DATABASE "{name}"')
    try:
        yield name
    finally:
        psql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def stacks(tmp_path, transactional_db, django_db_serialized_rollback) -> Iterator[Callable[..., Stack]]:
    started: list[Stack] = []

    def make(name: str, **overrides: str) -> Stack:
        (tmp_path / name / "var").mkdir(parents=True)
        stack = Stack(workdir=tmp_path / name, overrides={**WEBHOOKS_ON_LOCALHOST, **overrides})
        stack.purge_broker()  # a restored installation starts on an empty broker
        started.append(stack)
        return stack

    yield make
    for stack in started:
        stack.stop()
        for process in PROCESSES:
            log = stack.logs(process)
            if log:
                print(f"----- {stack.workdir.name} {process} log (tail) -----\n{log}")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    live = Receiver().start()
    try:
        yield live
    finally:
        live.close()


def submit(stack: Stack, actor, numbers) -> None:
    answer = ConsortiumClient(stack.base_url, actor.token, timeout=60).submit(
        [actor.statement([md5(n)]) for n in numbers])
    assert not answer["rejected"], answer["rejected"][:3]


def delivered_seqs(receiver: Receiver) -> list[int]:
    return [event["seq"] for event in receiver.events()]


def test_a_restore_serves_the_same_feed_and_key_and_resumes_deliveries(
    restored_database, stacks, receiver, tmp_path,
):
    alice, bob = make_actor("alice"), make_actor("bob")
    saved = {"DJANGO_SECRET_KEY": secrets.token_urlsafe(50), "WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode()}
    original = stacks("original", **saved)
    original.start(*PROCESSES)
    original.wait_for_web()
    jwks = get_json(f"{original.base_url}/.well-known/jwks.json")
    receiver.public_keys = load_jwks(jwks)

    bob_api = ConsortiumClient(original.base_url, bob.token)
    subscription = bob_api.request("POST", "/api/v1/subscriptions/", {"url": receiver.url, "after": 0})
    rotated = bob_api.request("PATCH", f"/api/v1/subscriptions/{subscription['id']}/",
                              {"rotate_secret": True, "secret_overlap_seconds": 86400})
    receiver.secrets += [subscription["secret"], rotated["secret"]]  # both sign during the overlap
    submit(original, alice, range(BEFORE_THE_OUTAGE))
    wait_until(lambda: Subscription.objects.get(pk=subscription["id"]).cursor == BEFORE_THE_OUTAGE, timeout=120,
               what="the first events delivered")
    # The webhook workers stop; what is published from now on waits for them, behind the cursor.
    original.kill("dispatch")
    original.kill("deliver")
    submit(original, alice, range(BEFORE_THE_OUTAGE, AT_BACKUP))
    wait_until(lambda: Statement.objects.filter(state="published").count() == AT_BACKUP, timeout=120,
               what="every statement published")
    feed = list(bob_api.events(after=0))

    # The backup: a dump taken while the installation runs, and the key file and secrets kept apart.
    backup = tmp_path / "backup"
    backup.mkdir()
    subprocess.run(["pg_dump", "--format=custom", "--file", str(backup / "consortium.dump"),
                    connection.settings_dict["NAME"]], env=postgres_client_env(), check=True, timeout=300)
    shutil.copy(original.signing_key_file(), backup / "server-signing-key.pem")
    original.stop()

    subprocess.run(["pg_restore", "--no-owner", "--exit-on-error", "--dbname", restored_database,
                    str(backup / "consortium.dump")], env=postgres_client_env(), check=True, timeout=300)
    restored_url = f"{database_url().rsplit('/', 1)[0]}/{restored_database}"
    restored = stacks("restored", DATABASE_URL=restored_url,
                      CONSORTIUM_SIGNING_KEY_FILE=str(backup / "server-signing-key.pem"), **saved)
    check = subprocess.run([sys.executable, "manage.py", "webhook_secrets", "check"], cwd=ROOT, env=restored.env(),
                           capture_output=True, text=True, timeout=120)
    lost_key = subprocess.run([sys.executable, "manage.py", "webhook_secrets", "check"], cwd=ROOT,
                              env={**restored.env(), "WEBHOOK_SECRET_KEYS": Fernet.generate_key().decode()},
                              capture_output=True, text=True, timeout=120)
    restored.start(*PROCESSES)
    restored.wait_for_web()
    restored_api = ConsortiumClient(restored.base_url, bob.token)

    assert get_json(f"{restored.base_url}/.well-known/jwks.json") == jwks
    assert [event["seq"] for event in feed] == list(range(1, AT_BACKUP + 1))
    assert list(restored_api.events(after=0)) == feed
    assert check.returncode == 0 and "decrypt: 2\n" in check.stdout, check.stdout + check.stderr
    assert lost_key.returncode == 1 and "does not decrypt: 1\n" in lost_key.stdout, lost_key.stdout  # what a lost key breaks

    assert receiver.wait_for(lambda _: delivered_seqs(receiver)[-1:] == [AT_BACKUP], timeout=120), \
        f"delivery did not resume: {delivered_seqs(receiver)[-5:]}"
    submit(restored, alice, [AT_BACKUP])
    assert receiver.wait_for(lambda _: delivered_seqs(receiver)[-1:] == [AT_BACKUP + 1], timeout=120), \
        f"the new statement was not delivered: {delivered_seqs(receiver)[-5:]}"

    assert [event["seq"] for event in restored_api.events(after=AT_BACKUP)] == [AT_BACKUP + 1]
    assert delivered_seqs(receiver) == list(range(1, AT_BACKUP + 2))  # each event once, in order, none skipped
    after_restore = [record for record in receiver.batches() if record.events[0]["seq"] > BEFORE_THE_OUTAGE]
    assert after_restore and all(record.v1a for record in after_restore)  # signed with the restored server key
    for secret in receiver.secrets:  # the current secret and the previous one were both decrypted
        for record in after_restore:
            standardwebhooks.Webhook(secret).verify(record.raw, record.headers)
    wait_until(lambda: restored_api.request("GET", f"/api/v1/subscriptions/{subscription['id']}/")["cursor"]
               == AT_BACKUP + 1, timeout=60, what="the last delivery acknowledged in the restored database")
