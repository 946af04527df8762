"""The `consortium` exchange's Python API, as HMA and the `threatexchange` CLI call it, against a live
server: records, retractions, checkpoints, opinions and reporting."""

from __future__ import annotations

import pickle

import pytest

from tests.pytx.needs import vpdq_or_skip

vpdq_or_skip()  # before anything imports pytx's vPDQ

from threatexchange.exchanges import auth
from threatexchange.exchanges.fetch_state import (
    AggregateSignalOpinionCategory,
    SignalOpinion,
    SignalOpinionCategory,
)
from threatexchange.extensions.vpdq.vpdq import VPDQSignal
from threatexchange.extensions.vpdq.vpdq_util import json_to_vpdq
from threatexchange.signal_type.md5 import VideoMD5Signal
from threatexchange.signal_type.pdq.signal import PdqSignal
from threatexchange.signal_type.sha256 import VideoSHA256Signal
from threatexchange.utils import dataclass_json
from consortium_client import jws
from tx_consortium.exchange import ConsortiumSignalExchangeAPI, FeedbackRejected
from tx_consortium.state import ConsortiumCheckpoint, ConsortiumCollabConfig, ConsortiumCredentials

from hashes.models import Dispute, Statement
from members.models import SigningKey
from members.services import key_set_state
from tests.pytx.conftest import COLLAB, fetch, make_video, upload_for_signals
from tests.signals.vectors import VECTORS, requires_vectors, requires_video

pytestmark = [requires_vectors, requires_video]

ALL_TYPES = [PdqSignal, VPDQSignal, VideoMD5Signal, VideoSHA256Signal]
BRIDGE = VECTORS / "pdq" / "bridge-mods" / "aaa-orig.jpg"


def by_type(signals: list[dict], kind: str) -> dict:
    return next(s for s in signals if s["type"] == kind)


def converted(api, stored: dict) -> dict[str, dict[str, object]]:
    collab = ConsortiumCollabConfig(name=COLLAB, server="unused")
    return {t.get_name(): signals for t, signals in api.naive_convert_to_signal_type(ALL_TYPES, collab, stored).items()}


def test_the_feed_becomes_one_record_per_hash_and_a_retraction_deletes_it(alice, bob, exchange_for, pipeline, tmp_path):
    photo = upload_for_signals(alice, BRIDGE)
    video = upload_for_signals(alice, make_video(tmp_path / "v.mp4", seed=1))
    alice.submit(alice.statement(photo, content_type="photo", labels=["glorification"], jti="photo"),
                 alice.statement(video, content_type="video", labels=["graphic-violence"], jti="video"))
    pipeline()
    api = exchange_for(bob)

    stored: dict = {}
    _, first = fetch(api, stored)

    assert len(stored) == 6 and all(record.hash_id == hash_id for hash_id, record in stored.items())
    signals = converted(api, stored)
    assert set(signals) == {"pdq", "vpdq", "video_md5", "video_sha256"}
    assert set(signals["pdq"]) == {by_type(photo, "pdq")["value"]}
    assert set(signals["video_md5"]) == {by_type(photo, "md5")["value"], by_type(video, "md5")["value"]}
    assert set(signals["video_sha256"]) == {by_type(photo, "sha256")["value"], by_type(video, "sha256")["value"]}
    [(compact, record)] = signals["vpdq"].items()
    frames = by_type(video, "vpdq")["frames"]
    assert [(f.pdq_hex, f.quality) for f in json_to_vpdq(compact)] == [(f["pdq"], f["q"]) for f in frames]
    assert record.signal_type == "vpdq" and record.content_type == "video" and record.labels == ["graphic-violence"]
    assert VPDQSignal.compare_hash(compact, compact).match

    # The checkpoint is the server's next_after; JSON (HMA) and pickle (the CLI) give it back whole.
    assert first.next_after == api.client.feed(0, 1000)["next_after"] and first.progress_ts > 0
    assert dataclass_json.dataclass_load_dict(dataclass_json.dataclass_dump_dict(first), ConsortiumCheckpoint) == first
    assert pickle.loads(pickle.dumps(first)) == first
    assert all(pickle.loads(pickle.dumps(record)) == record for record in stored.values())

    # Nothing new: no record changes and the checkpoint neither moves back nor forgets its time.
    deltas, again = fetch(api, stored, first)
    assert [d.updates for d in deltas] == [{}] and again == first

    video_ids = {hash_id for hash_id, record in stored.items() if record.content_type == "video"}
    alice.submit(alice.retraction("video"))
    pipeline()
    deltas, second = fetch(api, stored, first)

    assert len(video_ids) == 3
    assert {hash_id: record for d in deltas for hash_id, record in d.updates.items()} == dict.fromkeys(video_ids)
    assert len(stored) == 3 and {r.content_type for r in stored.values()} == {"photo"}
    assert set(converted(api, stored)) == {"pdq", "video_md5", "video_sha256"}
    assert second.next_after > first.next_after and second.progress_ts >= first.progress_ts


def test_opinions_come_from_verified_statements_and_feedback(alice, bob, homeoffice, exchange_for, pipeline):
    photo = upload_for_signals(alice, BRIDGE)
    pdq = by_type(photo, "pdq")
    alice.submit(alice.statement([pdq], labels=["glorification"]))
    homeoffice.submit(homeoffice.statement([pdq], labels=["recruitment"]))
    pipeline()
    bob.submit(bob.feedback(pdq, "disagree", reasons=["newsworthy"]))
    pipeline()

    stored: dict = {}
    fetch(exchange_for(bob), stored)
    [record] = stored.values()

    assert record.submitters == {"alice": {"glorification"}, "homeoffice": {"recruitment"}}
    assert record.feedback == {"agree": 0, "disagree": 1, "seen": 0}
    assert record.dispute_state == "open" and record.dispute["reasons"] == ["newsworthy"]
    opinions = record.get_as_opinions()
    assert sorted((o.category, o.is_mine, o.member, sorted(o.tags)) for o in opinions) == [
        (SignalOpinionCategory.NEGATIVE_CLASS, True, "bob", []),
        (SignalOpinionCategory.POSITIVE_CLASS, False, "alice", ["glorification"]),
        (SignalOpinionCategory.POSITIVE_CLASS, False, "homeoffice", ["recruitment"]),
    ]
    assert record.get_as_aggregate_opinion().category == AggregateSignalOpinionCategory.DISPUTED
    assert "dispute=open" in str(record) and str(record).startswith("DISPUTED")

    # alice's own view: her statement is hers; bob's disagree is someone else's.
    stored_alice: dict = {}
    fetch(exchange_for(alice), stored_alice)
    mine = {(o.member, o.is_mine) for o in stored_alice[record.hash_id].get_as_opinions()}
    assert mine == {("alice", True), ("homeoffice", False), (None, False)}


def test_the_members_own_verdict_survives_later_events_until_withdrawn(alice, bob, homeoffice, exchange_for, pipeline):
    pdq = by_type(upload_for_signals(alice, BRIDGE), "pdq")
    alice.submit(alice.statement([pdq]))
    pipeline()
    verdict = bob.feedback(pdq, "seen", jti="bob-seen")
    bob.submit(verdict)
    pipeline()
    api = exchange_for(bob)
    stored: dict = {}
    _, checkpoint = fetch(api, stored)
    [hash_id] = stored
    assert stored[hash_id].my_verdict == "seen"

    homeoffice.submit(homeoffice.statement([pdq]))  # another event on the hash, not about bob's verdict
    pipeline()
    _, checkpoint = fetch(api, stored, checkpoint)
    assert stored[hash_id].corroboration_count == 2 and stored[hash_id].my_verdict == "seen"
    assert [o.is_mine for o in stored[hash_id].get_as_opinions() if o.verdict == "seen"] == [True]

    bob.submit(bob.retraction("bob-seen"))
    pipeline()
    fetch(api, stored, checkpoint)
    assert stored[hash_id].my_verdict is None and stored[hash_id].feedback["seen"] == 0


def test_a_hash_whose_statements_no_longer_verify_is_not_trusted(alice, bob, exchange_for, pipeline):
    alice.submit(alice.statement([by_type(upload_for_signals(alice, BRIDGE), "pdq")]))
    pipeline()
    key_set_state(key=alice.key, state=SigningKey.State.REVOKED)

    deltas, _ = fetch(exchange_for(bob), {})

    assert [record for delta in deltas for record in delta.updates.values()] == [None]


def test_a_refused_token_is_an_auth_error(server):
    api = ConsortiumSignalExchangeAPI.for_collab(ConsortiumCollabConfig(name=COLLAB, server=server),
                                                 ConsortiumCredentials(token="not-a-token"))

    with pytest.raises(auth.SignalExchangeAPIInvalidAuthException, match="invalid_token"):
        next(api.fetch_iter([], None))


def test_a_negative_opinion_is_reported_as_signed_disagree_feedback(alice, bob, exchange_for, pipeline, tmp_path):
    video = upload_for_signals(alice, make_video(tmp_path / "v.mp4", seed=2))
    alice.submit(alice.statement(video, content_type="video"))
    pipeline()
    api = exchange_for(bob)
    stored: dict = {}
    fetch(api, stored)
    [(compact, _)] = converted(api, stored)["vpdq"].items()

    api.report_opinion(VPDQSignal, compact, SignalOpinion(True, SignalOpinionCategory.NEGATIVE_CLASS,
                                                          {"newsworthy", "not-a-reason"}))

    feedback = Statement.objects.get(member=bob.member, kind="feedback")
    payload = jws.parse(feedback.raw).payload
    assert feedback.state == "published"
    assert payload["verdict"] == "disagree" and payload["reasons"] == ["newsworthy"]
    assert Dispute.objects.get().hash.signal_type == "vpdq"
    fetch(api, stored)
    record = next(r for r in stored.values() if r.signal_type == "vpdq")
    assert record.my_verdict == "disagree" and record.dispute_state == "open"

    md5 = by_type(video, "md5")["value"]
    api.report_opinion(VideoMD5Signal, md5, SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, set()))
    assert [jws.parse(s.raw).payload["verdict"] for s in Statement.objects.filter(
        member=bob.member, kind="feedback", state="published").order_by("received_at")] == ["disagree", "agree"]

    with pytest.raises(FeedbackRejected) as rejected:
        exchange_for(alice).report_opinion(VideoMD5Signal, md5, SignalOpinion(True, SignalOpinionCategory.POSITIVE_CLASS, set()))
    assert rejected.value.code == "feedback_on_own_hash"
    with pytest.raises(auth.SignalExchangeAPIInvalidAuthException):
        exchange_for(bob, signing=False).report_opinion(VideoMD5Signal, md5, SignalOpinion(
            True, SignalOpinionCategory.NEGATIVE_CLASS, set()))
