"""A real SMTP server on loopback (aiosmtpd) that keeps what it receives."""

from __future__ import annotations

import email
import email.policy
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import EmailMessage

from aiosmtpd.controller import Controller


@dataclass
class Inbox:
    """Messages received by the loopback server, parsed."""

    messages: list[EmailMessage] = field(default_factory=list)

    async def handle_DATA(self, server, session, envelope) -> str:
        self.messages.append(email.message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [message for message in self.messages if message["To"] == address]

    def last_to(self, address: str) -> EmailMessage:
        received = self.to(address)
        assert received, f"no mail to {address}; received: {[m['To'] + ': ' + m['Subject'] for m in self.messages]}"
        return received[-1]


def text_of(message: EmailMessage) -> str:
    return message.get_body(preferencelist=("plain",)).get_content()


def link_in(message: EmailMessage, path: str) -> str:
    """The path-and-query of the first link to ``path`` in the message's text part."""
    match = re.search(rf"https?://[^/\s]+({re.escape(path)}[^\s]*)", text_of(message))
    assert match, f"no {path} link in:\n{text_of(message)}"
    return match.group(1)


def url_in(message: EmailMessage, path: str) -> str:
    """The whole first link to ``path`` in the message's text part, as the recipient would follow it."""
    match = re.search(rf"https?://[^/\s]+{re.escape(path)}[^\s]*", text_of(message))
    assert match, f"no {path} link in:\n{text_of(message)}"
    return match.group(0)


@contextmanager
def smtp_server() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    # aiosmtpd's controller cannot start on port 0 (it connects to its own port to check it is up).
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()
