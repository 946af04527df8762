"""The embedded mode's Celery broker: kombu's filesystem transport, made safe for many producers and
consumers at once.

kombu's own filesystem transport (5.7) creates a message file and then writes it, so a consumer can
take a file its producer has not written yet; it then fails to decode it and the whole worker stops
("Unrecoverable error: JSONDecodeError", celery/kombu#1551). Its consumers also "move" a file to
the system's temporary folder, which is a copy when that is another file system, so two consumers
can both take one message. Here every step is one atomic rename within one folder tree:

- a producer writes the message under `staging/` and renames it into its queue's folder, so a
  message is visible only once it is whole;
- a consumer claims a message by renaming it into `claimed/`; exactly one rename succeeds, so each
  message goes to one consumer; it then reads and deletes it;
- each queue has a folder of its own, and names sort by time, so a consumer lists only its queue
  and takes the oldest first; a listing is kept and drained before the folder is listed again.

A file that still does not decode (a torn write after a power cut) is set aside in `corrupt/` and
logged; it never stops the worker. A message a killed consumer had claimed is gone from the
broker, as with an acknowledged message; the pipeline's sweeps recover the work from the database.

Workers take their queues in the order they consume them (as `queue_order_strategy: priority`
does on Redis), not in turn: the first queue that has a message wins.

Why not another transport: kombu's SQLAlchemy transport would add SQLAlchemy for this one use, and
it polls SQLite under one write lock shared with the application's own database traffic, and never
deletes a consumed row. Renames need nothing beyond the file system.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections import deque
from contextlib import contextmanager
from fcntl import LOCK_EX, LOCK_UN, flock
from pathlib import Path
from urllib.parse import quote

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.transport.virtual.base import Empty
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads
from kombu.utils.scheduling import FairCycle

logger = logging.getLogger(__name__)

MESSAGE_SUFFIX = ".msg"


class PriorityCycle(FairCycle):
    """Every poll starts again at the first queue, so an earlier queue always goes first."""

    def get(self, callback, **kwargs):
        self.pos = 0
        return super().get(callback, **kwargs)


class Channel(filesystem.Channel):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._listed: dict[str, deque[str]] = {}

    def _reset_cycle(self):
        self._cycle = PriorityCycle(self._get_and_deliver, self._active_queues, Empty)

    # --- folders ----------------------------------------------------------------------------------
    @property
    def root(self) -> Path:
        return Path(self.data_folder_in)

    def _folder(self, name: str) -> Path:
        folder = self.root / name
        folder.mkdir(parents=True, exist_ok=True)
        return folder

    def _queue_folder(self, queue: str) -> Path:
        # Queue names are Celery's (worker host names, pidbox ids): quoted, they are one path part.
        return self._folder("queues") / quote(queue, safe="@._-")

    # --- messages ---------------------------------------------------------------------------------
    def _put(self, queue, payload, **kwargs):
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}{MESSAGE_SUFFIX}"
        staged = self._folder("staging") / name
        target = self._queue_folder(queue)
        try:
            target.mkdir(exist_ok=True)
            with open(staged, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.rename(staged, target / name)
        except OSError as exc:
            staged.unlink(missing_ok=True)
            raise ChannelError(f"Cannot add a message to queue {queue!r}") from exc

    def _get(self, queue):
        folder = self._queue_folder(queue)
        listed = self._listed.get(queue)
        if not listed:
            listed = self._listed[queue] = deque(self._message_names(folder))
        claimed_folder = self._folder("claimed")
        while listed:
            name = listed.popleft()
            claimed = claimed_folder / f"{os.getpid()}-{name}"
            try:
                os.rename(folder / name, claimed)
            except FileNotFoundError:
                continue  # another consumer took it
            try:
                payload = claimed.read_bytes()
            except OSError as exc:
                raise ChannelError(f"Cannot read the claimed message {claimed}") from exc
            try:
                message = loads(bytes_to_str(payload))
            except ValueError:
                os.replace(claimed, self._folder("corrupt") / name)
                logger.error("Set aside an unreadable message of queue %s as corrupt/%s", queue, name)
                continue
            claimed.unlink()
            return message
        raise Empty()

    @staticmethod
    def _message_names(folder: Path) -> list[str]:
        try:
            return sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(MESSAGE_SUFFIX))
        except FileNotFoundError:
            return []

    def _size(self, queue):
        return len(self._message_names(self._queue_folder(queue)))

    def _purge(self, queue):
        folder = self._queue_folder(queue)
        self._listed.pop(queue, None)
        count = 0
        for name in self._message_names(folder):
            try:
                (folder / name).unlink()
                count += 1
            except FileNotFoundError:
                pass  # a consumer took it
        return count

    # --- exchange bindings (pidbox, fanout) -------------------------------------------------------
    # kombu rewrites an exchange's table in place, truncating it first, so a reader could see it
    # empty; here writers serialise on one lock and replace the table by rename.
    @contextmanager
    def _exchanges_locked(self):
        self.control_folder.mkdir(parents=True, exist_ok=True)
        with open(self.control_folder / ".lock", "wb") as lock:
            flock(lock, LOCK_EX)
            try:
                yield
            finally:
                flock(lock, LOCK_UN)

    def _write_table(self, exchange, queues) -> None:
        file = self._exchange_file(exchange)
        staged = file.with_name(f".{uuid.uuid4().hex}.tmp")
        staged.write_bytes(str_to_bytes(dumps(queues)))
        os.replace(staged, file)

    def _queue_bind(self, exchange, routing_key, pattern, queue):
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._exchanges_locked():
            queues = self.get_table(exchange)
            if entry not in queues:
                self._write_table(exchange, [entry, *queues])

    def _delete(self, queue, exchange, routing_key, pattern, *args, **kwargs):
        self._purge(queue)
        try:
            self._queue_folder(queue).rmdir()  # reply queues come and go; their folders with them
        except OSError:
            pass  # a message arrived meanwhile
        entry = filesystem.exchange_queue_t(routing_key or "", pattern or "", queue or "")
        with self._exchanges_locked():
            queues = self.get_table(exchange)
            if entry in queues:
                self._write_table(exchange, [q for q in queues if q != entry])


class Transport(filesystem.Transport):
    Channel = Channel
    driver_name = "filesystem (atomic)"
