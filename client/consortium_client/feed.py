"""Follow the feed into a file, verifying every statement: `consortium feed`.

Two sinks, each resuming exactly where it stopped:
- JSON Lines: one event a line, and a cursor file beside it holding the last `seq` read and the
  file's length at that point. Lines past that length were written by a run that stopped before
  recording them, and are cut off on start, so after a crash no event is lost or written twice.
- SQLite: the events, the latest view of each hash, and the cursor, written in one transaction per
  page.

Nothing is written for an event whose statements do not verify: the run stops before it (exit 4),
or, with `skip_invalid`, reports it and goes on.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from .errors import EXIT_NETWORK, EXIT_USAGE, CommandError
from .http import ApiError, ConsortiumClient, NetworkError
from .verification import KeyRing, StatementVerificationError, verify_event

KEYS_REFRESH_SECONDS = 30.0


class Sink(Protocol):
    after: int

    def write(self, events: list[dict[str, Any]], after: int) -> None: ...

    def close(self) -> None: ...


class JsonlSink:
    def __init__(self, out: str, cursor: Path | None, start_after: int | None) -> None:
        self.cursor = cursor
        self.file: BinaryIO | None = None
        saved = _read_cursor(cursor) if cursor else None
        if saved is not None and start_after is not None and start_after != saved["after"]:
            raise CommandError("cursor_conflict", f"{cursor} says to resume after {saved['after']}, not "
                               f"{start_after}; remove the cursor file to start elsewhere.")
        self.after = saved["after"] if saved else (start_after or 0)
        if out == "-":
            return
        path = Path(out)
        size = path.stat().st_size if path.exists() else 0
        if saved is None and size:
            raise CommandError("cursor_missing", f"{out} already holds events but there is no cursor file "
                               f"({cursor}); without it the resume point is unknown.")
        if saved is not None and size < saved["bytes"]:
            raise CommandError("cursor_invalid", f"{out} is shorter than {cursor} says it was: it was changed "
                               "by something else.")
        self.file = open(path, "ab")
        if saved is not None and size > saved["bytes"]:
            self.file.truncate(saved["bytes"])  # a page written by a run that stopped before recording it

    def write(self, events: list[dict[str, Any]], after: int) -> None:
        lines = "".join(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n" for event in events)
        if self.file is None:
            sys.stdout.write(lines)
            sys.stdout.flush()
        else:
            self.file.write(lines.encode("utf-8"))
            self.file.flush()
            os.fsync(self.file.fileno())
        if self.cursor is not None:
            size = os.fstat(self.file.fileno()).st_size if self.file else 0
            _write_cursor(self.cursor, {"after": after, "bytes": size})
        self.after = after

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


class SqliteSink:
    """Tables `events` (seq, id, type, occurred_at, hash_id, event JSON), `hashes` (the latest view
    of each hash: id, signal_type, value, state, seq, hash JSON) and `cursor` (after)."""

    def __init__(self, path: Path, start_after: int | None) -> None:
        self.db = sqlite3.connect(path)
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript("""
            CREATE TABLE IF NOT EXISTS events (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
                occurred_at TEXT NOT NULL, hash_id INTEGER NOT NULL, event TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS hashes (id INTEGER PRIMARY KEY, signal_type TEXT NOT NULL, value TEXT NOT NULL,
                state TEXT NOT NULL, seq INTEGER NOT NULL, hash TEXT NOT NULL);
            CREATE INDEX IF NOT EXISTS hashes_value ON hashes (signal_type, value);
            CREATE TABLE IF NOT EXISTS cursor (one INTEGER PRIMARY KEY CHECK (one = 1), after INTEGER NOT NULL);
        """)
        row = self.db.execute("SELECT after FROM cursor").fetchone()
        if row is not None and start_after is not None and start_after != row[0]:
            raise CommandError("cursor_conflict", f"{path} resumes after {row[0]}, not {start_after}.")
        self.after = row[0] if row is not None else (start_after or 0)

    def write(self, events: list[dict[str, Any]], after: int) -> None:
        with self.db:
            for event in events:
                hash_ = event["hash"]
                self.db.execute("INSERT OR REPLACE INTO events VALUES (?, ?, ?, ?, ?, ?)",
                                (event["seq"], event["id"], event["type"], event["occurred_at"], hash_["id"],
                                 json.dumps(event, separators=(",", ":"))))
                self.db.execute("INSERT OR REPLACE INTO hashes VALUES (?, ?, ?, ?, ?, ?)",
                                (hash_["id"], hash_["signal_type"], hash_.get("value") or "", hash_["state"],
                                 event["seq"], json.dumps(hash_, separators=(",", ":"))))
            self.db.execute("INSERT OR REPLACE INTO cursor VALUES (1, ?)", (after,))
        self.after = after

    def close(self) -> None:
        self.db.close()


def _read_cursor(path: Path) -> dict[str, int] | None:
    try:
        saved = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError):
        raise CommandError("cursor_invalid", f"{path} is not a cursor file this command wrote.") from None
    if not (isinstance(saved, dict) and isinstance(saved.get("after"), int) and isinstance(saved.get("bytes"), int)):
        raise CommandError("cursor_invalid", f"{path} is not a cursor file this command wrote.")
    return saved


def _write_cursor(path: Path, value: dict[str, int]) -> None:
    """Replace the cursor atomically: a crash leaves the old one or the new one, never half of one."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(value, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class FeedReader:
    client: ConsortiumClient
    sink: Sink
    server_issuer: str
    limit: int = 1000
    skip_invalid: bool = False
    follow: bool = False
    interval: float = 5.0
    log: Callable[[str], None] = lambda message: print(message, file=sys.stderr)
    written: int = 0
    invalid: list[dict[str, Any]] = field(default_factory=list)
    stopping: bool = False
    _keys: KeyRing | None = None
    _keys_at: float = 0.0

    def run(self) -> None:
        failures = 0
        while not self.stopping:
            try:
                page = self.client.feed(self.sink.after, self.limit)
                failures = 0
            except (NetworkError, ApiError) as exc:
                retriable = isinstance(exc, NetworkError) or exc.status in (429, 502, 503, 504)
                if not (self.follow and retriable):
                    raise
                failures += 1
                wait = min(exc.retry_after or 0.0, 300.0) if isinstance(exc, ApiError) and exc.retry_after else \
                    min(2.0 ** failures, 60.0)
                self.log(f"consortium: {exc}; trying again in {wait:.0f} s")
                self._sleep(wait)
                continue
            if not self._take(page):
                return
            if not page["has_more"]:
                if not self.follow:
                    return
                self._sleep(self.interval)

    def _sleep(self, seconds: float) -> None:
        # Short naps rather than one long wait, so a stop request ends the wait within a moment; a
        # signal handler only sets `stopping`, which is safe whatever the main thread is doing.
        until = time.monotonic() + seconds
        while not self.stopping and (left := until - time.monotonic()) > 0:
            time.sleep(min(left, 0.1))

    def _take(self, page: dict[str, Any]) -> bool:
        """Write the page's events that verify; False when the run must stop at an invalid one."""
        good: list[dict[str, Any]] = []
        for event in page["events"]:
            problem = self._problem(event)
            if problem is None:
                good.append(event)
                continue
            self.invalid.append({"seq": event.get("seq"), "id": event.get("id"), "error": problem})
            if not self.skip_invalid:
                self._write(good, event["seq"] - 1)  # the events before it are good; resume at it
                return False
            self.log(f"consortium: event {event.get('seq')} skipped: {problem['code']}: {problem['message']}")
        self._write(good, page["next_after"])
        return True

    def _write(self, events: list[dict[str, Any]], after: int) -> None:
        if events or after != self.sink.after:
            self.sink.write(events, after)
            self.written += len(events)

    def _problem(self, event: dict[str, Any]) -> dict[str, str] | None:
        for attempt in range(2):
            try:
                verify_event(event, self._keyring(refresh=attempt > 0))
                return None
            except StatementVerificationError as exc:
                # A key approved since the keys were fetched is unknown only until they are fetched again.
                if exc.code != "key_unknown" or attempt > 0:
                    return {"code": exc.code, "message": exc.message}
        return None

    def _keyring(self, *, refresh: bool = False) -> KeyRing:
        now = time.monotonic()
        if self._keys is None or (refresh and now - self._keys_at >= KEYS_REFRESH_SECONDS):
            self._keys = KeyRing(self.client.keys(), self.client.server_keys(), server_issuer=self.server_issuer)
            self._keys_at = now
        return self._keys


def open_sink(out: str | None, sqlite: str | None, cursor: str | None, after: int | None) -> Sink:
    if (out is None) == (sqlite is None):
        raise CommandError("usage", "give exactly one of --out FILE.jsonl (or - for stdout) and --sqlite FILE.", exit_code=EXIT_USAGE)
    if sqlite is not None:
        return SqliteSink(Path(sqlite), after)
    assert out is not None
    cursor_path = Path(cursor) if cursor else (None if out == "-" else Path(out + ".cursor"))
    return JsonlSink(out, cursor_path, after)


def stop_on_signals(reader: FeedReader) -> None:
    """SIGTERM and SIGINT end a run between pages: what was written stays, with its cursor."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: setattr(reader, "stopping", True))


def network_error(exc: NetworkError) -> CommandError:
    return CommandError("network_error", str(exc), exit_code=EXIT_NETWORK)
