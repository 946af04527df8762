"""Sign and submit hash statements in batches, resumably: `consortium submit`.

Each input (a media file, or a row of a CSV or JSONL file of hashes) gets a `jti` derived from what
it is and the options it is submitted with (the member; the content's SHA-256, a file's or a row's
`sha256` signal, else the row's signals; labels, incident, share, note, content type), so the same
input always makes the same statement id.
A local SQLite state file records every statement as it is signed, before it is sent, and whether
the server accepted or rejected it. Run the same command again after a crash and it sends nothing
already acknowledged, resends exactly the bytes it signed for anything unacknowledged (the server
answers a known `jti` and bytes with the submission it already holds), and carries on: no
statement is ever submitted twice, and the same content with the same options never gets a second
statement id.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
import sqlite3
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import EXIT_NETWORK, EXIT_REJECTED, EXIT_USAGE, CommandError, media_unavailable
from .http import ApiError, ConsortiumClient, NetworkError
from .progress import Progress
from .statements import StatementSigner, hash_statement

MAX_BATCH = 1000
# Well under the server's default REQUEST_MAX_BYTES (32 MiB): a batch of long videos' vPDQ
# statements is cut by size before it reaches 1,000 statements.
MAX_BATCH_BYTES = 8 * 1024 * 1024
SIGNAL_TYPES = ("pdq", "vpdq", "md5", "sha256")
HEX_LENGTHS = {"pdq": 64, "md5": 32, "sha256": 64}
CONTENT_TYPES = ("photo", "video", "file")
CSV_COLUMNS = ("type", "value", "quality", "content_type", "labels", "note")
JSONL_FIELDS = ("signals", "content_type", "labels", "note", "file")
_HEX = re.compile(r"[0-9a-fA-F]+")
_LABEL_SEPARATORS = re.compile(r"[;\s]+")


class InputError(ValueError):
    """One input that cannot become a statement; the others go on."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code, self.message = code, message


@dataclass(frozen=True)
class Options:
    labels: tuple[str, ...] = ()
    incident: str | None = None
    share: str = "consortium"
    note: str | None = None
    content_type: str | None = None
    salt: str = ""
    non_media: str = "error"  # a file that is not an image or video: error, skip, or exact (MD5/SHA-256 only)


@dataclass(frozen=True)
class Entry:
    """One input: where it comes from, and either a media file or statement content given as is."""

    source: str
    path: Path | None = None
    content: dict[str, Any] | None = None
    error: InputError | None = None  # a row that could not be read: reported, the others go on


@dataclass
class Report:
    inputs: int = 0
    sent: int = 0
    results: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    duplicates: int = 0
    skipped: int = 0

    def count(self, state: str) -> int:
        return sum(1 for r in self.results if r["state"] == state)

    def as_json(self, state_file: Path, member: str) -> dict[str, Any]:
        return {
            "member": member, "state_file": str(state_file), "inputs": self.inputs, "sent": self.sent,
            "accepted": self.count("accepted"), "already_accepted": self.count("already_accepted"),
            "rejected": self.count("rejected") + self.count("already_rejected"),
            "duplicate_inputs": self.duplicates, "skipped": self.skipped, "input_errors": len(self.errors),
            "results": self.results, "errors": self.errors,
        }

    @property
    def exit_code(self) -> int:
        if self.count("rejected") or self.count("already_rejected"):
            return EXIT_REJECTED
        return EXIT_USAGE if self.errors else 0


# Inputs ------------------------------------------------------------------------------------------

def collect(paths: list[str], csv_files: list[str], jsonl_files: list[str], options: Options) -> list[Entry]:
    """Every input, in a stable order: files and directories (walked in name order, hidden names
    skipped), then the rows of each CSV and JSONL file."""
    entries: list[Entry] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            for root, dirs, files in os.walk(path):
                dirs[:] = sorted(d for d in dirs if not d.startswith("."))
                entries += [Entry(str(Path(root) / f), path=Path(root) / f)
                            for f in sorted(files) if not f.startswith(".") and (Path(root) / f).is_file()]
        elif path.is_file():
            entries.append(Entry(str(path), path=path))
        else:
            raise CommandError("input_not_found", f"{name}: no such file or directory.")
    for name in csv_files:
        entries += csv_entries(name, options)
    for name in jsonl_files:
        entries += jsonl_entries(name, options)
    return entries


def _open_text(name: str) -> Any:
    if name == "-":
        return sys.stdin
    try:
        return open(name, encoding="utf-8", newline="")
    except OSError as exc:
        raise CommandError("input_unreadable", f"{name}: {exc.strerror}.") from None


def csv_entries(name: str, options: Options) -> list[Entry]:
    """Rows of `type,value[,quality][,content_type][,labels][,note]`, one signal a row; `labels`
    separated by spaces or semicolons."""
    handle = _open_text(name)
    try:
        reader = csv.DictReader(handle)
        columns = reader.fieldnames or []
        unknown = [c for c in columns if c not in CSV_COLUMNS]
        if unknown or not {"type", "value"} <= set(columns):
            raise CommandError("csv_columns_invalid", f"{name}: the header must name type and value, and may name "
                               f"{', '.join(CSV_COLUMNS[2:])}" + (f"; unknown: {', '.join(unknown)}" if unknown else "."))
        entries = []
        for row in reader:
            source = f"{name}:{reader.line_num}"
            try:
                entries.append(Entry(source, content=_csv_content(row, options)))
            except InputError as exc:
                entries.append(Entry(source, error=exc))
        return entries
    except (csv.Error, UnicodeDecodeError) as exc:
        raise CommandError("csv_invalid", f"{name}: {exc}") from None
    finally:
        if handle is not sys.stdin:
            handle.close()


def _csv_content(row: dict[str, str | None], options: Options) -> dict[str, Any]:
    kind = (row.get("type") or "").strip().lower()
    value = (row.get("value") or "").strip()
    if kind == "vpdq":
        raise InputError("signal_invalid", "a vPDQ hash has frames: give it in a JSONL file.")
    signal: dict[str, Any] = {"type": kind, "value": value}
    if kind == "pdq":
        quality = (row.get("quality") or "").strip()
        if not quality.isdigit():
            raise InputError("quality_invalid", "a PDQ row needs its quality (0 to 100).")
        signal["quality"] = int(quality)
    content: dict[str, Any] = {"signals": [signal]}
    if (row.get("content_type") or "").strip():
        content["content_type"] = row["content_type"].strip()
    labels = [label for label in _LABEL_SEPARATORS.split(row.get("labels") or "") if label]
    if labels:
        content["labels"] = labels
    if row.get("note"):
        content["note"] = row["note"]
    return _checked(content)


def jsonl_entries(name: str, options: Options) -> list[Entry]:
    """Lines of `{"signals": [...], "content_type"?, "labels"?, "note"?}`: what `consortium hash`
    prints (its `file` is ignored) is such a line."""
    handle = _open_text(name)
    entries = []
    try:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            source = f"{name}:{number}"
            try:
                entries.append(Entry(source, content=_jsonl_content(line)))
            except InputError as exc:
                entries.append(Entry(source, error=exc))
    except UnicodeDecodeError as exc:
        raise CommandError("jsonl_invalid", f"{name}: {exc}") from None
    finally:
        if handle is not sys.stdin:
            handle.close()
    return entries


def _jsonl_content(line: str) -> dict[str, Any]:
    try:
        record = json.loads(line)
    except ValueError:
        raise InputError("json_invalid", "not a JSON object.") from None
    if not isinstance(record, dict):
        raise InputError("json_invalid", "not a JSON object.")
    unknown = sorted(set(record) - set(JSONL_FIELDS))
    if unknown:
        raise InputError("field_unknown", f"unknown fields {', '.join(unknown)}; a line may hold {', '.join(JSONL_FIELDS)}.")
    return _checked({k: v for k, v in record.items() if k != "file"})


def _checked(content: dict[str, Any]) -> dict[str, Any]:
    """The well-formedness a member can check locally (the server checks it all again)."""
    signals = content.get("signals")
    if not isinstance(signals, list) or not signals:
        raise InputError("signals_missing", "no signals.")
    for signal in signals:
        if not isinstance(signal, dict) or signal.get("type") not in SIGNAL_TYPES:
            raise InputError("signal_type_unknown", f"each signal needs a type: {', '.join(SIGNAL_TYPES)}.")
        kind = signal["type"]
        if kind == "vpdq":
            if not isinstance(signal.get("frames"), list) or not signal["frames"]:
                raise InputError("vpdq_frames_invalid", "a vPDQ signal needs its frames.")
            continue
        value = signal.get("value")
        if not isinstance(value, str) or len(value) != HEX_LENGTHS[kind] or not _HEX.fullmatch(value):
            raise InputError("signal_value_invalid", f"a {kind} value is {HEX_LENGTHS[kind]} hexadecimal characters.")
        if kind == "pdq" and not (isinstance(signal.get("quality"), int) and 0 <= signal["quality"] <= 100):
            raise InputError("quality_invalid", "a PDQ signal needs its quality, 0 to 100.")
    if "content_type" in content and content["content_type"] not in CONTENT_TYPES:
        raise InputError("content_type_invalid", f"content_type is one of {', '.join(CONTENT_TYPES)}.")
    labels = content.get("labels", [])
    if not isinstance(labels, list) or not all(isinstance(label, str) for label in labels):
        raise InputError("labels_invalid", "labels is a list of label slugs.")
    if "note" in content and not isinstance(content["note"], str):
        raise InputError("note_invalid", "note is text.")
    return content


def _content_type_of(signals: list[dict[str, Any]]) -> str:
    kinds = {s["type"] for s in signals}
    return "video" if "vpdq" in kinds else "photo" if "pdq" in kinds else "file"


def statement_content(entry: Entry, options: Options) -> tuple[dict[str, Any], Callable[[], list[dict[str, Any]]]]:
    """What the statement says besides its signals, which is also what its jti is derived from, and
    how to get its signals (for a media file, by hashing it: only when a new statement is signed).

    Content is known by its SHA-256 when there is one (a file, or a row that carries it), else by
    its signals: a file and the line `consortium hash` printed for it are the same statement."""
    if entry.error is not None:
        raise entry.error
    if entry.content is not None:
        signals = entry.content["signals"]
        sha256 = next((s["value"].lower() for s in signals if s["type"] == "sha256"), None)
        identity: dict[str, Any] = {"sha256": sha256} if sha256 else {"signals": signals}
        content_type = entry.content.get("content_type") or options.content_type
        labels = list(entry.content.get("labels", []))
        note = entry.content.get("note", options.note)
        get_signals: Callable[[], list[dict[str, Any]]] = lambda: signals  # noqa: E731
    else:
        assert entry.path is not None
        identity = {"sha256": _file_sha256(entry.path)}
        content_type, labels, note = options.content_type, [], options.note
        get_signals = lambda: _media_signals(entry.path, options)  # noqa: E731
    fields = {
        "content_type": content_type,  # None: decided by the signals (video, photo, else file)
        "labels": sorted(set(options.labels) | set(labels)),
        "incident": options.incident,
        "share": options.share,
        "note": note,
    }
    return {"identity": identity, **fields}, get_signals


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    except OSError as exc:
        raise InputError("input_unreadable", f"cannot read the file: {exc.strerror}.") from None
    return digest.hexdigest()


def _media_signals(path: Path, options: Options) -> list[dict[str, Any]]:
    try:
        from .media import MEDIA_UNREADABLE, MEDIA_UNSUPPORTED, MediaError, hash_media
    except ImportError as exc:
        raise media_unavailable(exc) from None
    try:
        return hash_media(path)
    except MediaError as exc:
        if options.non_media == "exact" and exc.code in (MEDIA_UNREADABLE, MEDIA_UNSUPPORTED):
            data = path.read_bytes()
            return [{"type": "md5", "value": hashlib.md5(data, usedforsecurity=False).hexdigest()},
                    {"type": "sha256", "value": hashlib.sha256(data).hexdigest()}]
        raise InputError(exc.code, exc.message) from None


def derive_jti(iss: str, described: dict[str, Any], salt: str) -> str:
    """The statement id of an input: the same member, content and options give the same jti."""
    canonical = json.dumps({"iss": iss, "salt": salt, **described}, sort_keys=True, separators=(",", ":"))
    return "cli-" + hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:40]


# State -------------------------------------------------------------------------------------------

SIGNED, ACCEPTED, REJECTED = "signed", "accepted", "rejected"


class SubmitState:
    """The state file: every statement signed, with its bytes, and what the server said of it.

    A statement is written (and committed) before it is sent, so what the server may hold is always
    known here; `signed` means sent or not, never acknowledged."""

    def __init__(self, path: Path, *, server: str, member: str) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS statements (
                jti TEXT PRIMARY KEY, source TEXT NOT NULL, jws TEXT NOT NULL, state TEXT NOT NULL,
                submission_id TEXT, error_code TEXT, error_message TEXT, updated_at REAL NOT NULL);
        """)
        owner = dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        if owner and (owner.get("server"), owner.get("member")) != (server, member):
            raise CommandError("state_file_mismatch", f"{path} records statements of {owner.get('member')} at "
                               f"{owner.get('server')}, not of {member} at {server}: use another --state file.")
        self.db.executemany("INSERT OR IGNORE INTO meta VALUES (?, ?)", [("server", server), ("member", member)])
        self.db.commit()

    def get(self, jti: str) -> tuple[str, str, str | None, str | None, str | None] | None:
        return self.db.execute(
            "SELECT state, jws, submission_id, error_code, error_message FROM statements WHERE jti = ?", (jti,)
        ).fetchone()

    def add(self, jti: str, source: str, token: str) -> None:
        self.db.execute("INSERT INTO statements VALUES (?, ?, ?, ?, NULL, NULL, NULL, ?)",
                        (jti, source, token, SIGNED, time.time()))

    def record(self, jti: str, state: str, *, submission_id: str | None = None, error: dict[str, Any] | None = None) -> None:
        error = error or {}
        self.db.execute(
            "UPDATE statements SET state = ?, submission_id = ?, error_code = ?, error_message = ?, updated_at = ? "
            "WHERE jti = ?", (state, submission_id, error.get("code"), error.get("message"), time.time(), jti))

    def commit(self) -> None:
        self.db.commit()

    def close(self) -> None:
        self.db.close()


def default_state_path(server: str, member: str) -> Path:
    base = Path(os.environ.get("XDG_STATE_HOME") or Path.home() / ".local" / "state")
    where = re.sub(r"[^A-Za-z0-9.-]+", "_", server.split("://", 1)[-1]).strip("_")
    return base / "consortium" / f"submit-{member}@{where}.sqlite3"


# Sending -----------------------------------------------------------------------------------------

@dataclass
class Submitter:
    client: ConsortiumClient
    signer: StatementSigner
    iss: str
    state: SubmitState
    options: Options
    batch_size: int = MAX_BATCH
    retries: int = 5
    sleep: Callable[[float], None] = time.sleep
    report: Report = field(default_factory=Report)
    _batch: list[tuple[str, str, str]] = field(default_factory=list)  # (jti, source, jws)
    _batch_bytes: int = 0

    def run(self, entries: list[Entry], progress: Progress) -> Report:
        self.report.inputs = len(entries)
        seen: set[str] = set()
        try:
            for entry in entries:
                self._take(entry, seen)
                progress.advance(note=f"{self.report.count('accepted')} accepted")
            self._flush()
        finally:
            progress.close()
        return self.report

    def _take(self, entry: Entry, seen: set[str]) -> None:
        try:
            described, get_signals = statement_content(entry, self.options)
            jti = derive_jti(self.iss, described, self.options.salt)
            if jti in seen:
                self.report.duplicates += 1
                return
            seen.add(jti)
            known = self.state.get(jti)
            if known is not None and known[0] != SIGNED:
                state, _, submission_id, code, message = known
                result = {"source": entry.source, "jti": jti, "state": f"already_{state}"}
                if submission_id:
                    result["id"] = submission_id
                if code:
                    result["error"] = {"code": code, "message": message}
                self.report.results.append(result)
                return
            if known is not None:
                token = known[1]  # signed earlier, perhaps sent: the same bytes again
            else:
                signals = get_signals()
                fields = {k: v for k, v in described.items() if k != "identity" and v is not None}
                fields.setdefault("content_type", _content_type_of(signals))
                token = self.signer.sign(hash_statement(iss=self.iss, signals=signals, jti=jti, **fields))
                self.state.add(jti, entry.source, token)
        except InputError as exc:
            if exc.code in ("media_unreadable", "media_unsupported") and self.options.non_media == "skip":
                self.report.skipped += 1
                return
            self.report.errors.append({"source": entry.source, "error": {"code": exc.code, "message": exc.message}})
            return
        if self._batch and (len(self._batch) >= self.batch_size or self._batch_bytes + len(token) > MAX_BATCH_BYTES):
            self._flush()
        self._batch.append((jti, entry.source, token))
        self._batch_bytes += len(token)

    def _flush(self) -> None:
        if not self._batch:
            return
        self.state.commit()  # every statement about to be sent is on disk first
        batch, self._batch, self._batch_bytes = self._batch, [], 0
        answer = self._post([token for _, _, token in batch])
        self.report.sent += len(batch)
        for accepted in answer.get("accepted", []):
            jti, source, _ = batch[accepted["index"]]
            self.state.record(jti, ACCEPTED, submission_id=accepted["id"])
            self.report.results.append({"source": source, "jti": jti, "state": "accepted", "id": accepted["id"],
                                        "submission_state": accepted.get("state")})
        for rejected in answer.get("rejected", []):
            jti, source, _ = batch[rejected["index"]]
            self.state.record(jti, REJECTED, error=rejected["error"])
            self.report.results.append({"source": source, "jti": jti, "state": "rejected", "error": rejected["error"]})
        self.state.commit()

    def _post(self, tokens: list[str]) -> dict[str, Any]:
        """POST one batch, again after network errors, 429 `throttled` and 503 (resending is safe:
        the server answers known statements with their submissions)."""
        attempt = 0
        while True:
            try:
                return self.client.submit(tokens)
            except NetworkError as exc:
                failure: Exception = exc
                wait = min(2.0 ** attempt, 30.0)
            except ApiError as exc:
                if not (exc.status == 503 or exc.code == "throttled"):
                    raise
                failure = exc
                wait = min(exc.retry_after if exc.retry_after is not None else 2.0 ** attempt, 120.0)
            attempt += 1
            if attempt > self.retries:
                raise failure
            print(f"consortium: {failure}; retrying in {wait:.0f} s", file=sys.stderr)
            self.sleep(wait)


def network_failure(exc: NetworkError, report: Report, state_file: Path) -> CommandError:
    return CommandError("network_error", f"{exc}. Nothing is lost: run the same command again to resume "
                        f"(state in {state_file}).", exit_code=EXIT_NETWORK,
                        details={"sent": report.sent, "accepted": report.count("accepted")})

