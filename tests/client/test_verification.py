"""consortium_client.verification (pure, no server): which keys verify whose statements, and the checks
that tie an event's statements to the event."""

from __future__ import annotations

import pytest

from consortium_client import keys
from consortium_client.statements import StatementSigner, hash_statement, retract_statement
from consortium_client.verification import KeyRing, StatementVerificationError, verify_event

MD5 = {"type": "md5", "value": "0" * 31 + "1"}


def member(slug: str, state: str = "active") -> tuple[StatementSigner, dict]:
    private = keys.generate_private_key()
    jwk = keys.public_jwk(private)
    return StatementSigner(private, jwk["kid"]), {**jwk, "member": slug, "state": state}


@pytest.fixture
def cast():
    alice, alice_jwk = member("alice")
    bob, bob_jwk = member("bob", state="retired")
    pending, pending_jwk = member("carol", state="pending")
    server_private = keys.generate_private_key()
    server = StatementSigner(server_private, keys.public_jwk(server_private)["kid"])
    ring = KeyRing({"keys": [alice_jwk, bob_jwk, pending_jwk]},
                   {"keys": [{**keys.public_jwk(server_private), "use": "sig"}]})
    return {"alice": alice, "bob": bob, "carol": pending, "server": server, "ring": ring}


def code(ring: KeyRing, statement: str) -> str:
    with pytest.raises(StatementVerificationError) as failed:
        ring.verify(statement)
    return failed.value.code


def test_a_members_key_verifies_its_own_statements_only(cast):
    ring, alice = cast["ring"], cast["alice"]

    assert ring.verify(alice.sign(hash_statement(iss="alice", signals=[MD5], content_type="file"))).key.member == "alice"
    assert ring.verify(cast["bob"].sign(hash_statement(iss="bob", signals=[MD5], content_type="file"))).key.state == "retired"
    assert code(ring, alice.sign(hash_statement(iss="bob", signals=[MD5], content_type="file"))) == "key_wrong_member"
    assert code(ring, cast["carol"].sign(hash_statement(iss="carol", signals=[MD5], content_type="file"))) == "key_unknown"


def test_only_the_servers_keys_verify_the_server_issuer_and_they_verify_nobody_else(cast):
    ring, server = cast["ring"], cast["server"]
    removal = retract_statement(iss="consortium-server", retracts="x", reason="removed after dispute")

    assert ring.verify(server.sign(removal)).key.member is None
    assert code(ring, cast["alice"].sign(removal)) == "key_unknown"
    assert code(ring, server.sign(hash_statement(iss="alice", signals=[MD5], content_type="file"))) == "key_unknown"


def test_an_events_statements_must_be_its_submitters_and_its_cause_the_one_it_names(cast):
    ring, alice, bob = cast["ring"], cast["alice"], cast["bob"]
    assertion = alice.sign(hash_statement(iss="alice", signals=[MD5], content_type="file", jti="a-1"))
    event = {"seq": 1, "hash": {"submitters": [{"member": "alice", "kind": "platform"}], "statements": [assertion]},
             "cause": {"member": "alice", "kind": "hash", "jti": "a-1"}}
    assert len(verify_event(event, ring)) == 1

    stranger = bob.sign(hash_statement(iss="bob", signals=[MD5], content_type="file", jti="b-1"))
    with pytest.raises(StatementVerificationError, match="submitters") as failed:
        verify_event({**event, "hash": {**event["hash"], "statements": [assertion, stranger]}}, ring)
    assert failed.value.code == "statement_mismatch"
    with pytest.raises(StatementVerificationError) as failed:
        verify_event({**event, "cause": {"member": "alice", "kind": "hash", "jti": "a-2"}}, ring)
    assert failed.value.code == "cause_missing"
    retraction = alice.sign(retract_statement(iss="alice", retracts="a-0", reason="typo", jti="a-3"))
    with pytest.raises(StatementVerificationError) as failed:
        verify_event({**event, "cause": {"member": "alice", "kind": "retract", "jti": "a-9", "statement": retraction}}, ring)
    assert failed.value.code == "cause_mismatch"
