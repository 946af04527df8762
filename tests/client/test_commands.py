"""The other `consortium` commands against a live server: keys, match, feedback, retract, verify,
verify-webhook, and how every command fails (exit status, --json errors with the server's codes)."""

from __future__ import annotations

import base64
import json
import socket
import stat
import time
import tomllib
from datetime import datetime, timezone

import standardwebhooks
from django.utils import timezone as django_timezone

from consortium_client.errors import EXIT_CODES
from consortium_client.media import hash_media
from distribution.delivery.signing import Signer, generate_secret
from consortium.server_keys import delivery_signing_keys
from hashes.models import Dispute, Statement
from members.models import SigningKey
from tests.client.conftest import ROOT
from tests.client.test_feed import publish, tamper
from tests.factories import md5
from tests.signals.vectors import VECTORS, requires_vectors

BODY = json.dumps({"type": "hash.events", "timestamp": "2026-01-01T00:00:00Z",
                   "data": {"lane": "main", "first_seq": 1, "last_seq": 1, "count": 0, "events": []}}).encode()


def test_keygen_writes_an_owner_only_private_key_and_keys_register_leaves_it_pending(cli, alice, tmp_path):
    done = cli(None, "keygen", "--out", "mine.jwk")

    assert done.code == 0, done.stderr
    private = tmp_path / "mine.jwk"
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    public = json.loads(done.stdout)
    assert "d" not in public and json.loads(private.read_text())["x"] == public["x"]
    assert cli(None, "keygen", "--out", "mine.jwk").code == 1  # never overwritten without --force

    registered = cli(alice, "--json", "keys", "register", "--key", str(private))

    assert registered.code == 0, registered.stderr
    assert registered.json["kid"] == public["kid"] and registered.json["state"] == "pending"
    assert SigningKey.objects.get(kid=public["kid"]).state == "pending"
    again = cli(alice, "--json", "keys", "register", "--key", str(private))
    assert again.code == 2 and again.error["code"] in ("key_exists", "kid_taken") and again.error["status"] == 409


def test_match_hashes_and_leave_out_disputed_ones(cli, alice, bob, charlie, pipeline):
    publish(alice, pipeline, 11)
    bob.submit(bob.feedback(md5(11), "disagree", reasons=["newsworthy"]))
    pipeline()

    done = cli(charlie, "--json", "match", f"md5:{md5(11)['value']}", md5(12)["value"])

    assert done.code == 0, done.stderr
    assert [len(r["matches"]) for r in done.json["results"]] == [1, 0]
    assert done.json["results"][0]["matches"][0]["hash"]["dispute"]["state"] == "open"
    held = cli(charlie, "--json", "match", "--exclude-disputed", f"md5:{md5(11)['value']}")
    assert [len(r["matches"]) for r in held.json["results"]] == [0]
    ambiguous = cli(charlie, "--json", "match", "ab" * 32)
    assert ambiguous.code == 1 and ambiguous.error["code"] == "target_ambiguous"


@requires_vectors
def test_match_an_edited_image_hashed_here_against_the_original(cli, alice, charlie, pipeline):
    original = hash_media(VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg")
    alice.submit(alice.statement(original, labels=["glorification"]))
    pipeline()

    done = cli(charlie, "--json", "match", str(VECTORS / "pdq" / "bridge-mods" / "blur-a-lot.jpg"))

    assert done.code == 0, done.stderr
    pdq, md5_result, sha256_result = done.json["results"]
    assert [m["hash"]["signal_type"] for m in pdq["matches"]] == ["pdq"]
    assert 0 < pdq["matches"][0]["distance"] <= 31
    assert md5_result["matches"] == sha256_result["matches"] == []  # other bytes
    text = cli(charlie, "match", str(VECTORS / "pdq" / "bridge-mods" / "blur-a-lot.jpg"))
    assert text.code == 0 and "blur-a-lot.jpg (pdq): 1 match" in text.stdout and "glorification" in text.stdout


def test_feedback_and_retract_are_signed_submitted_and_waited_for(cli, alice, bob, pipeline):
    [statement] = publish(alice, pipeline, 21)
    jti = json.loads(base64.urlsafe_b64decode(statement.split(".")[1] + "==="))["jti"]

    disagree = cli(bob, "--json", "feedback", "disagree", f"md5:{md5(21)['value']}", "--reason", "newsworthy",
                   "--note", "news footage")

    assert disagree.code == 0, disagree.stderr
    assert disagree.json["state"] == "published" and disagree.json["target"] == md5(21)
    assert Dispute.objects.get().state == "open"
    own = cli(alice, "--json", "feedback", "agree", "hash:" + str(Dispute.objects.get().hash_id))
    assert own.code == 0 and own.json["state"] == "published"  # a submitter's answer to the dispute

    retracted = cli(alice, "--json", "retract", jti, "--reason", "false positive")

    assert retracted.code == 0, retracted.stderr
    assert retracted.json["state"] == "published" and Statement.objects.get(jti=jti).retracted_at is not None
    unknown = cli(alice, "--json", "retract", "no-such-jti", "--reason", "typo")
    assert unknown.code == 2 and unknown.error["code"] == "retract_target_not_found"
    missing = cli(bob, "--json", "feedback", "disagree", f"md5:{md5(21)['value']}")
    assert missing.code == 1 and missing.error["code"] == "reasons_required"


def test_verify_checks_statements_and_events_against_the_published_keys(cli, alice, bob, pipeline, tmp_path):
    [statement] = publish(alice, pipeline, 31)
    feed = cli(bob, "feed", "--out", str(tmp_path / "events.jsonl"))
    assert feed.code == 0, feed.stderr

    done = cli(bob, "--json", "verify", statement, str(tmp_path / "events.jsonl"))

    assert done.code == 0, done.stderr
    first, event = done.json["results"]
    assert first["valid"] and first["iss"] == "alice" and first["kid"] == alice.signer.kid
    assert event["valid"] and event["statements"] == 1

    forged = cli(bob, "--json", "verify", tamper(statement))
    assert forged.code == 4 and forged.json["results"][0]["error"]["code"] == "signature_invalid"
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"keys": [{**bob.key.jwk(), "member": "alice", "state": "active"}]}))
    offline = cli(None, "--json", "verify", "--keys", str(keys), statement)
    assert offline.code == 4 and offline.json["results"][0]["error"]["code"] == "key_unknown"


def test_verify_webhook_checks_v1_with_the_secret_and_v1a_with_the_server_jwks(cli, server, tmp_path):
    secret = generate_secret()
    body = tmp_path / "body.json"
    body.write_bytes(BODY)
    now = int(time.time())
    # v1 as the reference library makes it, v1a by the server's own key, in one header as the server sends.
    v1 = standardwebhooks.Webhook(secret).sign("msg_1", datetime.fromtimestamp(now, timezone.utc), BODY.decode())
    v1a = Signer(signing_keys=delivery_signing_keys(django_timezone.now())).signature("msg_1", now, BODY)
    headers = ["-H", "webhook-id: msg_1", "-H", f"webhook-timestamp: {now}", "-H", f"webhook-signature: {v1} {v1a}"]

    both = cli(None, "--json", "verify-webhook", "--body", str(body), "--secret", secret, *headers)
    assert both.code == 0, both.stderr
    assert both.json["webhook_id"] == "msg_1" and both.json["signatures"] == {"v1": True, "v1a": True}
    only_v1a = cli(None, "--json", "verify-webhook", "--body", str(body), "--require-v1a", *headers)
    assert only_v1a.code == 0 and only_v1a.json["signatures"] == {"v1": None, "v1a": True}

    header_file = tmp_path / "headers.txt"
    header_file.write_text(f"POST /hook HTTP/1.1\nwebhook-id: msg_1\nwebhook-timestamp: {now}\nwebhook-signature: {v1}\n")
    from_file = cli(None, "--json", "verify-webhook", "--body", "-", "--headers", str(header_file), "--secret", secret,
                    stdin=BODY.decode())
    assert from_file.code == 0 and from_file.json["signatures"]["v1"] is True

    tampered = cli(None, "--json", "verify-webhook", "--body", "-", "--secret", secret, *headers,
                   stdin=BODY.decode().replace("main", "priority"))
    assert tampered.code == 4 and tampered.error["code"] == "no_matching_signature"
    v1_only = ["-H", "webhook-id: msg_1", "-H", f"webhook-timestamp: {now}", "-H", f"webhook-signature: {v1}"]
    not_server = cli(None, "--json", "verify-webhook", "--body", str(body), "--require-v1a", *v1_only)
    assert not_server.code == 4 and not_server.error["code"] == "no_matching_signature"
    stale = cli(None, "--json", "verify-webhook", "--body", str(body), "--secret", secret, "-H", "webhook-id: msg_1",
                "-H", f"webhook-timestamp: {now - 3600}", "-H", f"webhook-signature: {v1}")
    assert stale.code == 4 and stale.error["code"] == "timestamp_too_old"


def test_exit_statuses_and_json_errors(cli, alice, tmp_path):
    usage = cli(alice, "--json", "match")
    assert usage.code == 1 and usage.error["code"] == "usage"

    refused = cli(alice, "--json", "match", f"md5:{md5(1)['value']}", env={"CONSORTIUM_TOKEN": "cst_nope_nope"})
    assert refused.code == 2 and refused.error == {"code": "invalid_token", "message": refused.error["message"],
                                                   "status": 401}
    unreachable = cli(alice, "--json", "match", f"md5:{md5(1)['value']}", env={"CONSORTIUM_URL": _closed_port_url()})
    assert unreachable.code == 3 and unreachable.error["code"] == "network_error"
    no_server = cli(alice, "--json", "keys", "list", env={"CONSORTIUM_URL": ""})
    assert no_server.code == 1 and no_server.error["code"] == "server_missing"

    human = cli(alice, "match", f"md5:{md5(1)['value']}", env={"CONSORTIUM_TOKEN": "cst_nope_nope"})
    assert human.code == 2 and human.stderr.startswith("consortium: invalid_token (HTTP 401): ")
    helped = cli(None, "--help")
    assert helped.code == 0 and all(f"  {code:<4}{meaning}" in helped.stdout for code, meaning in EXIT_CODES.items())


def test_the_package_installs_the_consortium_console_script():
    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())
    module, _, function = project["project"]["scripts"]["consortium"].partition(":")
    assert (module, function) == ("consortium_client.cli", "main")
    from consortium_client import cli

    assert callable(cli.main)


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}"

