"""`consortium feed`: the feed into JSON Lines or SQLite, every statement verified against the published
keys (the server's own against /.well-known/jwks.json), resuming from its cursor without losing or
repeating an event, and stopping before an event whose statement was tampered with."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

from consortium_client.jws import b64url_decode, b64url_encode
from hashes.models import Dispute, Statement
from hashes.services.disputes import dispute_resolve
from tests.client.conftest import TIMEOUT, cli_env, command
from tests.factories import md5


def events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def publish(actor, pipeline, *numbers: int, **fields) -> list[str]:
    statements = [actor.statement([md5(n)], **fields) for n in numbers]
    actor.submit(*statements)
    pipeline()
    return statements


def tamper(statement: str) -> str:
    """The same signature over a payload that now says something else."""
    header, payload, signature = statement.split(".")
    changed = json.loads(b64url_decode(payload))
    changed["labels"] = ["recruitment"]
    return ".".join([header, b64url_encode(json.dumps(changed).encode()), signature])


def test_the_feed_is_verified_and_stops_before_a_tampered_statement(cli, alice, bob, pipeline, tmp_path):
    out = tmp_path / "events.jsonl"
    publish(alice, pipeline, 1, 2)

    first = cli(bob, "--json", "feed", "--out", str(out))

    assert first.code == 0, first.stderr
    assert first.json["written"] == 2 and [e["hash"]["value"] for e in events(out)] == [md5(1)["value"], md5(2)["value"]]
    _, forged, _ = publish(alice, pipeline, 3, 4, 5)
    Statement.objects.filter(raw=forged).update(raw=tamper(forged))

    stopped = cli(bob, "--json", "feed", "--out", str(out))

    assert stopped.code == 4
    assert stopped.error["code"] == "signature_invalid" and "hash.statements[0]" in stopped.error["message"]
    written = events(out)
    assert [e["hash"]["value"] for e in written] == [md5(n)["value"] for n in (1, 2, 3)]
    assert json.loads((tmp_path / "events.jsonl.cursor").read_text())["after"] == written[-1]["seq"]

    skipped = cli(bob, "--json", "feed", "--out", str(out), "--skip-invalid")

    assert skipped.code == 4 and skipped.error["details"]["invalid"][0]["seq"] == written[-1]["seq"] + 1
    assert [e["hash"]["value"] for e in events(out)] == [md5(n)["value"] for n in (1, 2, 3, 5)]


def test_a_removal_signed_by_the_server_verifies_against_its_jwks_into_sqlite(cli, alice, bob, pipeline, tmp_path):
    publish(alice, pipeline, 7)
    bob.submit(bob.feedback(md5(7), "disagree", reasons=["newsworthy"]))
    pipeline()
    dispute_resolve(dispute_id=Dispute.objects.get().pk, outcome="removed", resolution="News footage.")
    database = tmp_path / "feed.sqlite3"

    done = cli(bob, "--json", "feed", "--sqlite", str(database))

    assert done.code == 0, done.stderr
    with sqlite3.connect(database) as db:
        types = [row[0] for row in db.execute("SELECT type FROM events ORDER BY seq")]
        last = json.loads(db.execute("SELECT event FROM events ORDER BY seq DESC LIMIT 1").fetchone()[0])
        state = db.execute("SELECT state FROM hashes WHERE value = ?", (md5(7)["value"],)).fetchone()[0]
        after = db.execute("SELECT after FROM cursor").fetchone()[0]
    assert types == ["hash.added", "hash.updated", "hash.retracted"]  # the verdict opens the dispute
    removal = json.loads(b64url_decode(last["cause"]["statement"].split(".")[1]))
    assert removal["iss"] == "consortium-server" and removal["kind"] == "retract"
    assert state == "retracted" and after == done.json["after"] == last["seq"]

    # A member key cannot pass for the server's: verifying against the wrong issuer fails.
    again = cli(bob, "--json", "--server-issuer", "someone-else", "feed", "--sqlite", str(tmp_path / "other.sqlite3"))
    assert again.code == 4 and again.error["code"] == "key_unknown"


def test_a_page_written_but_never_recorded_in_the_cursor_is_not_written_twice(cli, alice, bob, pipeline, tmp_path):
    out = tmp_path / "events.jsonl"
    publish(alice, pipeline, 1, 2)
    assert cli(bob, "feed", "--out", str(out)).code == 0
    lines = out.read_text()
    # A crash after the next page reached the file and before the cursor moved: a whole line and half of one.
    publish(alice, pipeline, 3)
    out.write_text(lines + json.dumps(events(out)[0]) + "\n" + '{"seq": 9')

    done = cli(bob, "--json", "feed", "--out", str(out))

    assert done.code == 0, done.stderr
    seqs = [e["seq"] for e in events(out)]
    assert len(seqs) == len(set(seqs)) == 3 and seqs == sorted(seqs)


def test_without_its_cursor_an_existing_file_is_not_appended_to(cli, bob, tmp_path):
    out = tmp_path / "events.jsonl"
    out.write_text('{"seq": 1}\n')

    done = cli(bob, "--json", "feed", "--out", str(out))

    assert done.code == 1 and done.error["code"] == "cursor_missing"
    assert out.read_text() == '{"seq": 1}\n'


def test_follow_keeps_polling_and_stops_cleanly_on_sigterm(server, alice, bob, pipeline, key_file, tmp_path):
    out = tmp_path / "events.jsonl"
    publish(alice, pipeline, 1)
    env = cli_env(tmp_path, CONSORTIUM_URL=server, CONSORTIUM_TOKEN=bob.token)
    following = subprocess.Popen(command("--json", "feed", "--out", str(out), "--follow", "--interval", "0.2"),
                                 env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        wait_for(lambda: out.exists() and len(events(out)) == 1)
        publish(alice, pipeline, 2)
        wait_for(lambda: len(events(out)) == 2)
        assert following.poll() is None, "a following reader stopped by itself"
    finally:
        following.send_signal(signal.SIGTERM)
        stdout, stderr = following.communicate(timeout=TIMEOUT)

    assert following.returncode == 0, stderr
    summary = json.loads(stdout)
    assert summary["written"] == 2 and summary["after"] == events(out)[-1]["seq"]
    assert json.loads((tmp_path / "events.jsonl.cursor").read_text())["after"] == summary["after"]


def wait_for(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)
