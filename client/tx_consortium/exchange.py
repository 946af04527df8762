"""The `consortium` SignalExchangeAPI: a member's view of the feed as python-threatexchange records.

fetch: `GET /api/v1/feed/` from the checkpoint's `next_after`, one FetchDelta per page, records keyed
by hash id (`hash.added`/`hash.updated` replace the record, `hash.retracted` deletes it).
report_opinion: a signed `feedback` statement (`disagree` for a negative opinion, `agree` for a
positive one) through `POST /api/v1/statements/`, then waits briefly for the server's verdict on it.
"""

from __future__ import annotations

import json
import time
from typing import Iterator, Sequence

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges import signal_exchange_api
from threatexchange.signal_type.signal_base import SignalType

from consortium_client import keys
from consortium_client.http import ApiError, ConsortiumClient
from consortium_client.statements import StatementSigner, feedback_statement

from . import convert
from .state import (
    API_NAME,
    ConsortiumCheckpoint,
    ConsortiumCollabConfig,
    ConsortiumCredentials,
    ConsortiumHashRecord,
)


class FeedbackRejected(Exception):
    """The server refused a reported opinion; `code` is its stable rejection code (for example
    `target_not_found`, `feedback_on_own_hash`, `feedback_duplicate`)."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(f"{code}: {message}" if message else code)
        self.code = code


class ConsortiumSignalExchangeAPI(
    auth.SignalExchangeWithAuth[ConsortiumCollabConfig, ConsortiumCredentials],
    signal_exchange_api.SignalExchangeAPI[
        ConsortiumCollabConfig, ConsortiumCheckpoint, ConsortiumHashRecord, int, ConsortiumHashRecord
    ],
):
    PAGE_SIZE = 1000  # the server's FEED_MAX_LIMIT by default; it answers fewer when pages get large
    REPORT_WAIT_SECONDS = 10.0

    def __init__(self, collab: ConsortiumCollabConfig, client: ConsortiumClient,
                 signer: StatementSigner | None = None) -> None:
        self.collab = collab
        self.client = client
        self.signer = signer

    @classmethod
    def for_collab(cls, collab: ConsortiumCollabConfig,
                   credentials: ConsortiumCredentials | None = None) -> ConsortiumSignalExchangeAPI:
        credentials = credentials or ConsortiumCredentials.get(cls)
        signer = None
        if credentials.signing_key:
            jwk = json.loads(credentials.signing_key)
            signer = StatementSigner(keys.load_private_jwk(jwk), jwk["kid"])
        return cls(collab, ConsortiumClient(collab.server, credentials.token), signer)

    @classmethod
    def get_name(cls) -> str:
        return API_NAME

    @staticmethod
    def get_config_cls() -> type[ConsortiumCollabConfig]:
        return ConsortiumCollabConfig

    @staticmethod
    def get_checkpoint_cls() -> type[ConsortiumCheckpoint]:
        return ConsortiumCheckpoint

    @staticmethod
    def get_record_cls() -> type[ConsortiumHashRecord]:
        return ConsortiumHashRecord

    @staticmethod
    def get_credential_cls() -> type[ConsortiumCredentials]:
        return ConsortiumCredentials

    def fetch_iter(
        self, supported_signal_types: Sequence[type[SignalType]], checkpoint: ConsortiumCheckpoint | None
    ) -> Iterator[state.FetchDelta[int, ConsortiumHashRecord, ConsortiumCheckpoint]]:
        """Every record is returned whatever `supported_signal_types` holds: the CLI keeps them all,
        and HMA keeps those it can index (a record of a type it lacks is lost to it, see README)."""
        reader = self._reader()
        ring = convert.KeyRing(self.client.keys)
        after = checkpoint.next_after if checkpoint else 0
        progress = checkpoint.progress_ts if checkpoint else 0
        while True:
            page = self.client.feed(after, self.PAGE_SIZE)
            updates: dict[int, ConsortiumHashRecord | None] = {}
            for event in page["events"]:
                hash_id, record = convert.record_from_event(event, reader=reader, ring=ring)
                if record is not None:
                    record = convert.carry_own_verdict(updates.get(hash_id), record)
                updates[hash_id] = record
                progress = max(progress, convert.unix_seconds(event["occurred_at"]))
            after = max(after, int(page["next_after"]))
            yield state.FetchDelta(updates, ConsortiumCheckpoint(next_after=after, progress_ts=progress))
            if not page["has_more"]:
                return

    def _reader(self) -> str:
        """The member the token belongs to; a refused token is the exchange's auth error, which the
        CLI and HMA report as such."""
        try:
            return self.client.me()["slug"]
        except ApiError as exc:
            if exc.status in (401, 403):
                raise auth.SignalExchangeAPIInvalidAuthException(type(self), f"{exc.code}: {exc.message}") from exc
            raise

    @classmethod
    def fetch_value_merge(cls, old: ConsortiumHashRecord | None,
                          new: ConsortiumHashRecord | None) -> ConsortiumHashRecord | None:
        return None if new is None else convert.carry_own_verdict(old, new)

    @classmethod
    def naive_convert_to_signal_type(
        cls,
        signal_types: Sequence[type[SignalType]],
        collab: ConsortiumCollabConfig,
        fetched: dict[int, ConsortiumHashRecord],
    ) -> dict[type[SignalType], dict[str, ConsortiumHashRecord]]:
        """Records by the pytx signal types given (by name, so that whichever class provides
        `vpdq` is used). Two visible hashes can share a value (one shared with a group, one with
        everyone): the later hash's record stands for both in an index."""
        by_name = {signal_type.get_name(): signal_type for signal_type in signal_types}
        converted: dict[type[SignalType], dict[str, ConsortiumHashRecord]] = {}
        for hash_id in sorted(fetched):
            record = fetched[hash_id]
            signal_type = None if record is None else by_name.get(record.pytx_signal_type)
            if signal_type is None:
                continue
            try:
                signal = signal_type.validate_signal_str(record.signal)
            except ValueError:
                convert.logger.warning("hash %s: not a valid %s signal, skipped", hash_id, record.pytx_signal_type)
                continue
            converted.setdefault(signal_type, {})[signal] = record
        return converted

    def report_opinion(self, s_type: type[SignalType], signal: str, opinion: state.SignalOpinion) -> None:
        """A negative opinion is `disagree` feedback (its tags that are reason codes are the
        reasons, else `other`), a positive one `agree`. Waits up to REPORT_WAIT_SECONDS for the
        server to publish or reject it; raises FeedbackRejected when rejected."""
        if self.signer is None:
            raise auth.SignalExchangeAPIInvalidAuthException(
                type(self), "reporting opinions needs signing_key (a private JWK with its kid) in the credentials")
        if opinion.category == state.SignalOpinionCategory.NEGATIVE_CLASS:
            reasons = sorted(set(opinion.tags) & convert.FEEDBACK_REASONS) or ["other"]
            verdict = "disagree"
        elif opinion.category == state.SignalOpinionCategory.POSITIVE_CLASS:
            reasons, verdict = [], "agree"
        else:
            raise NotImplementedError("the consortium has no verdict for INVESTIGATION_SEED")
        payload = feedback_statement(iss=self._reader(), target=convert.feedback_target(s_type.get_name(), signal),
                                     verdict=verdict, reasons=reasons)
        answer = self.client.submit([self.signer.sign(payload)])
        if answer["rejected"]:
            error = answer["rejected"][0]["error"]
            raise FeedbackRejected(error["code"], error.get("message", ""))
        self._await_verdict(answer["accepted"][0]["id"])

    def _await_verdict(self, statement_id: str) -> None:
        deadline = time.monotonic() + self.REPORT_WAIT_SECONDS
        delay = 0.1
        while True:
            try:
                submitted = self.client.statement(statement_id)
            except ApiError as exc:
                if exc.status < 500:
                    raise
            else:
                if submitted["state"] == "rejected":
                    raise FeedbackRejected(submitted["rejection_code"] or "rejected")
                if submitted["state"] == "published":
                    return
            if time.monotonic() + delay > deadline:
                return  # accepted and still in the pipeline: it will be judged without us
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
