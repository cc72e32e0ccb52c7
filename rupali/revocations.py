"""Telling every instance that a person's sessions or account changed, so each drops its cached sign-ins at once.

Each instance keeps the sign-ins it resolved in the last few seconds (:mod:`rupali.services.sessions`) and drops a
person's entries on every change to their sessions or account row. Within one process that sees every change; with
several instances, the change happens on one of them. So after a commit that changed any, the user ids go out on a
Redis channel, and every instance (the sender too) drops those entries when they arrive.

If the subscription drops, messages may be missed while it is down: on subscribing again the instance forgets
everything it cached, and the cache's time limit bounds anything else. Publishing never fails or delays a commit:
the ids are handed to a sender thread, and a revocation whose message could not be sent ends on the other
instances within that time limit.
"""

from __future__ import annotations

import logging
import queue
import threading
import uuid
from collections.abc import Callable, Iterable

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from rupali.config import Settings

log = logging.getLogger(__name__)


class Revocations:
    """Publishes changed user ids and, in a thread of its own, hands the ones it receives to ``forget``."""

    def __init__(self, url: str, channel: str, forget: Callable[[uuid.UUID], None],
                 forget_all: Callable[[], None]) -> None:
        self.channel = channel
        # Short timeouts and one retry: redis-py's default of ten retries would take most of a minute to give up.
        self._client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2, health_check_interval=30,
                                            retry=Retry(NoBackoff(), 1))
        self._outbox: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        self._sender: threading.Thread | None = None
        self._forget = forget
        self._forget_all = forget_all
        self._stopping = threading.Event()
        self.subscribed = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def from_settings(cls, settings: Settings, forget: Callable[[uuid.UUID], None],
                      forget_all: Callable[[], None]) -> Revocations | None:
        """None without ``RUPALI_REDIS_URL``: one instance needs no messages."""
        if not settings.redis_url:
            return None
        return cls(settings.redis_url.get_secret_value(), f"{settings.redis_key_prefix}sessions", forget, forget_all)

    def publish(self, user_ids: Iterable[uuid.UUID]) -> None:
        """Queue the ids for the sender thread (called after a commit: it must not wait for Redis)."""
        ids = " ".join(sorted({str(user_id) for user_id in user_ids}))
        if ids:
            self._outbox.put(ids)

    def start(self) -> None:
        self._stopping.clear()
        self._thread = threading.Thread(target=self._listen, name="session-revocations", daemon=True)
        self._thread.start()
        self._sender = threading.Thread(target=self._send, name="session-revocations-sender", daemon=True)
        self._sender.start()

    def stop(self) -> None:
        self._stopping.set()
        self._outbox.put(None)
        for thread in (self._sender, self._thread):
            if thread is not None:
                thread.join(timeout=5)
        self._client.close()

    def _send(self) -> None:
        while (ids := self._outbox.get()) is not None and not self._stopping.is_set():
            try:
                self._client.publish(self.channel, ids)
            except Exception as error:  # RedisError, or the socket closed under a read while stopping
                if self._stopping.is_set():
                    break
                log.warning("could not tell the other instances about a session change (%s); their cached "
                            "sign-ins end by their time limit", error)

    def _listen(self) -> None:
        while not self._stopping.is_set():
            pubsub = self._client.pubsub(ignore_subscribe_messages=True)
            try:
                pubsub.subscribe(self.channel)
                # Whatever was published while this instance was not subscribed is lost: start from nothing cached.
                self._forget_all()
                self.subscribed.set()
                while not self._stopping.is_set():
                    message = pubsub.get_message(timeout=0.5)
                    if message is not None and message.get("type") == "message":
                        self._received(message["data"])
            except Exception as error:  # RedisError, or the socket closed under a read while stopping
                self.subscribed.clear()
                if self._stopping.is_set():
                    break
                log.warning("the session-change subscription dropped (%s); subscribing again", error)
                self._stopping.wait(1)
            finally:
                pubsub.close()
        self.subscribed.clear()

    def _received(self, data: bytes | str) -> None:
        text = data.decode("ascii", errors="replace") if isinstance(data, bytes) else data
        for part in text.split()[:1000]:
            try:
                self._forget(uuid.UUID(part))
            except ValueError:
                continue  # not ours (anyone who can publish on the channel could send anything)
