"""The Redis broker transport, with one kombu defect worked around.

When a worker loses its Redis connection, kombu (5.7) closes the dead channel; the channel then has
no connection, and anything that still reaches Redis through it (pushing the worker's
unacknowledged messages back onto their queues, or acknowledging a task that finishes after the
loss) fails with an AttributeError that kombu's error handling does not catch, and the whole worker
stops ("Unrecoverable error"). A Redis restart could thus take every worker down with it. Here
those failures are logged and the work is left where it is: Redis itself redelivers an
unacknowledged message after the visibility timeout if it still has it, and the database-driven
sweeps redo anything Redis lost."""

from __future__ import annotations

import logging

from kombu.transport import redis

logger = logging.getLogger(__name__)


class QoS(redis.QoS):
    def restore_unacked(self, client=None):
        try:
            return super().restore_unacked(client)
        except Exception as exc:  # the connection is gone; nothing here can reach Redis
            logger.warning("Could not requeue %d unacknowledged message(s) after losing Redis (%s); "
                           "Redis redelivers them after the visibility timeout if it kept them.",
                           len(self._delivered), type(exc).__name__)
            self._delivered.clear()
            return None

    def ack(self, delivery_tag):
        try:
            super().ack(delivery_tag)
        except AttributeError:  # a message of a channel closed when Redis was lost
            logger.warning("Could not acknowledge a message of a lost Redis connection; Redis redelivers it "
                           "after the visibility timeout if it kept it.")

    def reject(self, delivery_tag, requeue=False):
        try:
            super().reject(delivery_tag, requeue=requeue)
        except AttributeError:  # as in ack()
            logger.warning("Could not reject a message of a lost Redis connection.")


class Channel(redis.Channel):
    QoS = QoS


class Transport(redis.Transport):
    Channel = Channel
