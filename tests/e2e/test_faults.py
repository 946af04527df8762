"""PostgreSQL restarted under load, on a private cluster (tests/e2e/pgcluster.py): a member ingests
5,000 signed statements over HTTP while three members' webhook receivers take deliveries and a pull
client follows the feed. In the middle the database is restarted (`pg_ctlcluster restart`), and later
crashes (`stop -m immediate`), stays down while requests come in, and starts again. Nothing is lost,
the feed has no gap, every receiver gets every event once and in order, and gunicorn and the Celery
workers carry on by themselves: the same processes serve before and after, and while the database
is down the API answers 503 `database_unavailable` with Retry-After, never 500."""

from __future__ import annotations

import json
import threading
import uuid
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterator

import psycopg2
import pytest

from consortium_client import keys
from consortium_client.http import ApiError, ConsortiumClient, NetworkError
from consortium_client.statements import StatementSigner, hash_statement
from consortium_client.webhooks import load_jwks
from tests.distribution.conftest import E2E_SETTINGS
from tests.distribution.receiver import Receiver
from tests.factories import md5

from .pgcluster import PrivateCluster
from .stack import Stack, wait_until

pytestmark = pytest.mark.e2e

TOTAL = 5000
BATCH = 100
SUBMITTER = "alice"
MEMBERS = {"alice": "platform", "bob": "platform", "homeoffice": "government"}  # each subscribes
PROCESSES = ("web", "worker", "dispatch", "deliver", "beat")
DEADLINE = 240  # seconds: generous, for a loaded machine; the run normally takes far less

# The operator commands of DESIGN.md, run in one manage.py process: prints {slug: [token, kid]}.
ONBOARD = """
import json
from io import StringIO
from django.core.management import call_command

def member(*args):
    out = StringIO()
    call_command("member", *args, stdout=out)
    return out.getvalue().strip()

made = {}
for slug, kind, jwk in json.loads(%r):
    member("add", slug, "--name", slug.title(), "--kind", kind)
    made[slug] = [member("token", slug, "--scopes", "submit,read,subscribe"), member("key", slug, "--jwk", jwk, "--approve")]
print(json.dumps(made))
"""


class Database:
    """The test's database on the private cluster, read directly; None while it cannot be reached."""

    def __init__(self, cluster: PrivateCluster, name: str) -> None:
        self.cluster, self.name = cluster, name

    def value(self, sql: str) -> Any:
        try:
            connection = self.cluster.connect(self.name)
        except psycopg2.OperationalError:
            return None
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchone()[0]
        except psycopg2.OperationalError:
            return None
        finally:
            connection.close()

    def published(self) -> int:
        return self.value("SELECT count(*) FROM hashes_statement WHERE state = 'published'") or 0


@pytest.fixture
def faults_stack(tmp_path: Path, private_postgres: PrivateCluster) -> Iterator[tuple[Stack, Database]]:
    """The processes of deploy/Procfile on a fresh database of the private cluster, migrated by
    `manage.py migrate` as an operator would."""
    name = f"faults_{uuid.uuid4().hex[:12]}"
    url = private_postgres.create_database(name)
    (tmp_path / "var").mkdir()
    stack = Stack(workdir=tmp_path, overrides={**E2E_SETTINGS, "DATABASE_URL": url})
    stack.purge_broker()
    try:
        stack.manage("migrate", "--noinput")
        yield stack, Database(private_postgres, name)
    finally:
        stack.stop()
        for process in PROCESSES:
            log = stack.logs(process)
            if log:
                print(f"----- {process} log (tail) -----\n{log}")


class Client:
    """What a member's client saw through the outages: it retries after a 503 as Retry-After says
    (resubmitting is safe), and everything else is recorded as a failure of the server."""

    def __init__(self, api: ConsortiumClient, stop: threading.Event) -> None:
        self.api, self.stop = api, stop
        self.unavailable: Counter[str] = Counter()
        self.unexpected: list[str] = []

    def call(self, request: Callable[[], Any]) -> Any:
        while not self.stop.is_set():
            try:
                return request()
            except ApiError as exc:
                if exc.status == 503 and exc.retry_after is not None:
                    self.unavailable[exc.code] += 1
                else:
                    self.unexpected.append(f"{exc.status} {exc.code}: {exc.message}")
                wait = exc.retry_after or 1.0
            except NetworkError as exc:
                self.unexpected.append(str(exc))
                wait = 1.0
            self.stop.wait(wait)
        return None


class Ingest(threading.Thread):
    """The member's ingest, in batches of BATCH, as far as the test allows at each moment."""

    def __init__(self, client: Client, statements: list[str]) -> None:
        super().__init__(name="ingest", daemon=True)
        self.client, self.statements = client, statements
        self.allowed = self.sent = 0
        self.rejected: list[Any] = []
        self.moved = threading.Condition()

    def allow(self, upto: int) -> None:
        with self.moved:
            self.allowed = upto
            self.moved.notify_all()

    def run(self) -> None:
        while self.sent < len(self.statements) and not self.client.stop.is_set():
            with self.moved:
                if not self.moved.wait_for(lambda: self.allowed > self.sent, timeout=0.5):
                    continue
                start, end = self.sent, min(self.sent + BATCH, self.allowed)
            answer = self.client.call(lambda: self.client.api.submit(self.statements[start:end]))
            if answer is not None:
                self.rejected += answer["rejected"]
            self.sent = end


class Follower(threading.Thread):
    """A pull client: reads the feed after the last seq it saw, all through the outages."""

    def __init__(self, client: Client) -> None:
        super().__init__(name="feed-follower", daemon=True)
        self.client = client
        self.events: list[dict[str, Any]] = []

    def run(self) -> None:
        after = 0
        while len(self.events) < TOTAL and not self.client.stop.is_set():
            page = self.client.call(lambda: self.client.api.feed(after, 1000))
            if page is None:
                return
            self.events += page["events"]
            after = page["next_after"]
            if not page["has_more"]:
                self.client.stop.wait(0.2)


def children(pid: int) -> frozenset[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # it ended meanwhile
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return frozenset(found)


def process_tree(stack: Stack) -> dict[str, tuple[int, frozenset[int]]]:
    """Each process and its children (gunicorn's workers, the prefork worker's pool): a process that
    died, or was replaced by its parent, changes this."""
    return {name: (process.pid, children(process.pid)) for name, process in stack.processes.items()}


def onboard(stack: Stack) -> dict[str, tuple[str, StatementSigner]]:
    private = {slug: keys.generate_private_key() for slug in MEMBERS}
    spec = [[slug, kind, json.dumps(keys.public_jwk(private[slug]))] for slug, kind in MEMBERS.items()]
    made = json.loads(stack.manage("shell", "-c", ONBOARD % json.dumps(spec)).strip().splitlines()[-1])
    return {slug: (token, StatementSigner(private[slug], kid)) for slug, (token, kid) in made.items()}


def test_postgresql_restarts_and_crashes_mid_ingest_lose_nothing_and_restart_no_process(
    faults_stack: tuple[Stack, Database], private_postgres: PrivateCluster,
):
    stack, database = faults_stack
    members = onboard(stack)
    stack.start(*PROCESSES)
    stack.wait_for_web()
    api = {slug: ConsortiumClient(stack.base_url, token, timeout=60) for slug, (token, _) in members.items()}
    server_keys = load_jwks(api[SUBMITTER].server_keys())
    receivers = {}
    for slug in MEMBERS:
        receivers[slug] = Receiver(public_keys=server_keys).start()
        created = api[slug].request("POST", "/api/v1/subscriptions/", {"url": receivers[slug].url, "after": 0})
        receivers[slug].secrets.append(created["secret"])

    signer = members[SUBMITTER][1]
    statements = [signer.sign(hash_statement(iss=SUBMITTER, signals=[md5(n)], content_type="photo"))
                  for n in range(TOTAL)]
    stop = threading.Event()
    ingest = Ingest(Client(api[SUBMITTER], stop), statements)
    follower = Follower(Client(api["homeoffice"], stop))
    try:
        ingest.allow(1700)
        ingest.start()
        follower.start()
        wait_until(lambda: database.published() >= 300 and all(r.batches() for r in receivers.values()),
                   timeout=DEADLINE, interval=0.1, what="statements published and delivered to every receiver")
        before = process_tree(stack)

        # 1. A clean restart while the ingest goes on and deliveries are in flight.
        ingest.allow(3400)
        published_then = database.published()
        delivered_then = {slug: len(r.batches()) for slug, r in receivers.items()}
        private_postgres.restart(mode="fast")  # mid-ingest: what is past 1,700 is submitted only from now on
        wait_until(lambda: database.published() > published_then + 500
                   and all(len(r.batches()) > delivered_then[slug] for slug, r in receivers.items()),
                   timeout=DEADLINE, what="publishing and deliveries going on after the restart")

        # 2. A crash: down while requests come in, then started again (the crash recovery replays the WAL).
        ingest.allow(TOTAL)
        private_postgres.stop(mode="immediate")
        try:
            probe = ConsortiumClient(stack.base_url, members[SUBMITTER][0])
            with pytest.raises(ApiError) as submitting:
                probe.submit(statements[-1:])  # the ingest sends it again later: nothing is kept of this
            with pytest.raises(ApiError) as reading:
                probe.feed()
        finally:
            private_postgres.start()
        for refused in (submitting.value, reading.value):
            assert (refused.status, refused.code, refused.retry_after) == (503, "database_unavailable", 5.0)

        wait_until(lambda: database.published() == TOTAL, timeout=DEADLINE, what="every statement published")
        for slug, receiver in receivers.items():
            assert receiver.wait_for(lambda _: len(receiver.events()) >= TOTAL, timeout=DEADLINE), \
                f"{slug}'s receiver has {len(receiver.events())} of {TOTAL} events"
        ingest.join(timeout=DEADLINE)
        follower.join(timeout=DEADLINE)
    finally:
        stop.set()
        for receiver in receivers.values():
            receiver.close()

    # The clients saw answers only: 202s and 200s, or 503 with a stable code while the database was down.
    for client in (ingest.client, follower.client):
        assert client.unexpected == []
        assert set(client.unavailable) <= {"database_unavailable"}
    assert ingest.rejected == []

    # Nothing lost, nothing twice, and the one ordered log has no gap.
    assert database.value("SELECT count(*) FROM hashes_statement") == TOTAL
    assert database.value("SELECT count(*) FROM hashes_statement WHERE state <> 'published'") == 0
    assert database.value("SELECT count(*) FROM hashes_hash") == TOTAL
    assert database.value("SELECT count(*) FROM hashes_corroboration") == TOTAL
    assert database.value("SELECT count(*) FROM hashes_event") == TOTAL
    assert database.value("SELECT max(seq) FROM hashes_event") == TOTAL
    feed = list(api["bob"].events())
    assert [event["seq"] for event in feed] == list(range(1, TOTAL + 1))
    assert [event["id"] for event in follower.events] == [event["id"] for event in feed]
    assert sorted(event["hash"]["value"] for event in feed) == sorted(md5(n)["value"] for n in range(TOTAL))

    # Every receiver got every event, once (its webhook-id repeated at most) and in order, signed.
    for slug, receiver in receivers.items():
        assert [event["id"] for event in receiver.events()] == [event["id"] for event in feed], slug
        assert all(record.v1 and record.v1a for record in receiver.received), slug
    assert database.value(
        f"SELECT count(*) FROM distribution_subscription WHERE state = 'active' AND cursor = {TOTAL}") == len(MEMBERS)
    assert database.value("SELECT count(*) FROM distribution_delivery WHERE state = 'pending'") == 0

    # No process was restarted, by us or by its parent: the same processes serve as before the faults.
    assert all(process.poll() is None for process in stack.processes.values())
    assert process_tree(stack) == before
