"""What python-threatexchange and HMA store for the `consortium` exchange.

Never rename or move these classes, nor this module: the `threatexchange` CLI pickles checkpoints and
records (`~/.threatexchange/fetched/consortium/<collab>.state.pickle`) and HMA pickles records into its
database (`exchange_data.pickled_fetch_signal_metadata`), both by module and class name, and both
keep configs, credentials and checkpoints as JSON keyed by field name. A field added later needs a
default, and old pickles lack it: give such a field a class-level default too.

No `from __future__ import annotations` here, unlike the rest of the code base: the CLI builds its
`config collab edit consortium` options, and HMA its exchange forms, from these dataclasses' field
types, which that import would turn into strings (every `threatexchange` command then fails at start).
"""

import json
import typing as t
from dataclasses import dataclass, field

from threatexchange.exchanges import auth
from threatexchange.exchanges import fetch_state as state
from threatexchange.exchanges.collab_config import CollaborationConfigWithDefaults

API_NAME = "consortium"

# Verdicts of `feedback` statements, as python-threatexchange opinions (issue 10, item 6): a member
# that says a hash matched the wrong content is a false-positive report; one that agrees, or saw the
# content on its platform, backs the hash.
VERDICT_CATEGORIES: t.Dict[str, state.SignalOpinionCategory] = {
    "agree": state.SignalOpinionCategory.POSITIVE_CLASS,
    "disagree": state.SignalOpinionCategory.NEGATIVE_CLASS,
    "seen": state.SignalOpinionCategory.POSITIVE_CLASS,
}


@dataclass
class ConsortiumCollabConfig(CollaborationConfigWithDefaults):
    """A consortium server to follow; one collaboration per server and member token."""

    api: str = field(init=False, default=API_NAME)
    server: str = field(
        kw_only=True,
        metadata={"help": "the server's base URL, e.g. https://consortium.example.org", "metavar": "URL"},
    )


@dataclass
class ConsortiumCredentials(auth.CredentialHelper):
    """A member's API token (scope `read`; `submit` too for reporting opinions) and, to report
    opinions as signed feedback, its private signing key as a JWK (JSON text, with `kid` set to the
    key id the server approved).

    From `TX_CONSORTIUM_CREDENTIALS` or `~/.tx_consortium_credentials`: either the token alone, or
    JSON `{"token": "...", "signing_key": {<private JWK>}}`. HMA takes the same fields as its
    `credential_json`."""

    ENV_VARIABLE: t.ClassVar[str] = "TX_CONSORTIUM_CREDENTIALS"
    FILE_NAME: t.ClassVar[str] = "~/.tx_consortium_credentials"

    token: str = field(metadata={"help": "API token of the member (Bearer)"})
    signing_key: t.Optional[str] = field(
        default=None,
        metadata={"help": "private Ed25519 JWK (JSON) with its approved kid; needed only to report opinions"},
    )

    @classmethod
    def _from_str(cls, s: str) -> "ConsortiumCredentials":
        text = s.strip()
        if not text.startswith("{"):
            return cls(token=text)
        raw = json.loads(text)
        key = raw.get("signing_key")
        return cls(token=raw.get("token", ""), signing_key=json.dumps(key) if isinstance(key, dict) else key)

    def _are_valid(self) -> bool:
        if not self.token or any(c.isspace() for c in self.token):
            return False
        if self.signing_key is None:
            return True
        try:
            key = json.loads(self.signing_key)
        except ValueError:
            return False
        return isinstance(key, dict) and bool(key.get("d")) and bool(key.get("kid"))


@dataclass
class ConsortiumCheckpoint(state.FetchCheckpointBase):
    """Where the member's reading of the feed stands: the server's `next_after` (the last seq it
    examined for this member, so resuming never skips nor repeats an event), and the latest
    `occurred_at` read so far (unix seconds), which never goes back."""

    next_after: int = 0
    progress_ts: int = 0

    def get_progress_timestamp(self) -> t.Optional[int]:
        return self.progress_ts


@dataclass
class ConsortiumOpinion(state.SignalOpinion):
    """One opinion on a hash: a submitter's verified statement (`member` its slug, `verdict` None),
    or a member's feedback (`member` None for the counts of others, the reader's own slug for its
    own verdict)."""

    member: t.Optional[str] = None
    verdict: t.Optional[str] = None


@dataclass
class ConsortiumHashRecord(state.FetchedSignalMetadata):
    """A hash as the feed last showed it to the reading member, keyed by the hash's id.

    `signal` is the value in python-threatexchange's form (`pytx_signal_type`): the hash's value, or
    for a vPDQ the compact feature list of its frames; `value` is the consortium's (a vPDQ's frame
    digest, which feedback targets). `submitters` maps each member whose statement about this hash
    verified against the server's `keys/` to the labels it gave."""

    hash_id: int
    signal_type: str
    value: str
    pytx_signal_type: str
    signal: str
    content_type: str
    reader: str
    submitters: t.Dict[str, t.Set[str]]
    labels: t.List[str] = field(default_factory=list)
    cluster: t.Optional[int] = None
    corroboration_count: int = 0
    # Distinct members per verdict among the feedback the reader may see ("agree", "disagree", "seen").
    feedback: t.Dict[str, int] = field(default_factory=dict)
    # The reader's own live verdict and its statement's jti, when the feed has shown it.
    my_verdict: t.Optional[str] = None
    my_verdict_jti: t.Optional[str] = None
    # The jti the reader's own retraction withdrew, when that retraction caused this event.
    withdrawn_jti: t.Optional[str] = None
    # null, or {"id", "state" (open, upheld, relabelled, removed), "opened_at", "resolved_at",
    # "reasons", "resolution"} as the feed gives it.
    dispute: t.Optional[t.Dict[str, t.Any]] = None
    seq: int = 0

    @property
    def dispute_state(self) -> t.Optional[str]:
        return None if self.dispute is None else self.dispute.get("state")

    def get_as_opinions(self) -> t.Sequence[ConsortiumOpinion]:
        opinions = [
            ConsortiumOpinion(member == self.reader, state.SignalOpinionCategory.POSITIVE_CLASS, set(labels), member)
            for member, labels in sorted(self.submitters.items())
        ]
        for verdict, category in VERDICT_CATEGORIES.items():
            others = self.feedback.get(verdict, 0)
            if self.my_verdict == verdict and others > 0:
                opinions.append(ConsortiumOpinion(True, category, set(), self.reader, verdict))
                others -= 1
            opinions.extend(ConsortiumOpinion(False, category, set(), None, verdict) for _ in range(others))
        return opinions

    def __str__(self) -> str:
        """What `threatexchange match` prints after the collaboration's name."""
        parts = [str(self.get_as_aggregate_opinion().category.name)]
        if self.labels:
            parts.append(",".join(self.labels))
        parts.append(f"hash={self.hash_id}")
        parts.append(f"submitters={','.join(sorted(self.submitters))}")
        parts.append("feedback=" + "/".join(f"{v}:{self.feedback.get(v, 0)}" for v in VERDICT_CATEGORIES))
        if self.dispute_state is not None:
            parts.append(f"dispute={self.dispute_state}")
        return " ".join(parts)
