"""Real servers on loopback for the notification channels: an SMTP server
(aiosmtpd) that keeps what it receives, and an HTTP receiver for webhooks that
checks signatures and can be told to fail; plus driving the notifier by hand."""

from __future__ import annotations

import email
import hashlib
import hmac
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller
from sqlalchemy import func
from sqlmodel import Session, select

from caseforum.channels import ChannelHost, deliver_pending
from caseforum.db import open_session
from caseforum.events import process_pending
from caseforum.forum.notify import Notifier
from caseforum.models import ConsumerCursor, Event, Notification, User


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_log_after_history(engine: Any) -> None:
    """The notifier starts after the demo data's history, as on a new server."""
    with open_session(engine) as session:
        last = session.exec(select(func.max(Event.id))).one() or 0
        cursor = session.get(ConsumerCursor, Notifier.name) or ConsumerCursor(name=Notifier.name)
        cursor.last_event_id = last
        session.add(cursor)
        session.exec(Notification.__table__.delete())  # type: ignore[attr-defined]
        session.commit()


def notifier_of(app: Any) -> Notifier:
    return next(c for c in app.state.consumers.consumers if isinstance(c, Notifier))


def notify_now(app: Any) -> None:
    process_pending(notifier_of(app), app.state.engine)


def send_now(app: Any, name: str) -> int:
    channel = next(c for c in app.state.plugins.notification_channels() if c.name == name)
    return deliver_pending(app.state.engine, channel,
                           ChannelHost(app.state.engine, app.state.settings))


def user(session: Session, username: str) -> User:
    return session.exec(select(User).where(User.username == username)).one()


def notes_of(engine: Any, username: str) -> list[Notification]:
    with open_session(engine) as session:
        uid = user(session, username).id
        return list(session.exec(select(Notification).where(Notification.user_id == uid)
                                 .order_by(Notification.id)))  # type: ignore[arg-type]


# SMTP ---------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: keeps every accepted message."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        with self.lock:
            self.messages.append(email.message_from_bytes(envelope.content))
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        with self.lock:
            return [m for m in self.messages if m["To"] == address]


def smtp_server() -> tuple[Controller, Inbox, int]:
    inbox = Inbox()
    port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    return controller, inbox, port


def text_of(message: Message, subtype: str = "plain") -> str:
    for part in message.walk():
        if part.get_content_type() == f"text/{subtype}":
            payload = part.get_payload(decode=True)
            assert isinstance(payload, bytes)
            return payload.decode(part.get_content_charset() or "utf-8")
    raise AssertionError(f"no text/{subtype} part")


# Webhooks -----------------------------------------------------------------------


RECEIVERS_ON_LOOPBACK = ["127.0.0.1"]
"""``plugins.webhook_channel.allowed_hosts`` for tests: the receivers below listen on
127.0.0.1, which endpoints may reach only when an administrator allows it."""


@dataclass
class Receiver:
    """An HTTP server that verifies the signature of each POST with ``secret``
    and answers ``status`` (set it to 500 to play a broken receiver)."""

    secret: str = ""
    status: int = 200
    delay: float = 0.0  # seconds before answering: a slow receiver
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                time.sleep(receiver.delay)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                stamp = self.headers["X-CaseForum-Timestamp"]
                expected = "sha256=" + hmac.new(receiver.secret.encode(),
                                                stamp.encode() + b"." + body,
                                                hashlib.sha256).hexdigest()
                if not hmac.compare_digest(expected, self.headers["X-CaseForum-Signature"]):
                    receiver.bad_signatures += 1
                    self.send_response(401)
                elif receiver.status != 200:
                    self.send_response(receiver.status)
                else:
                    data = json.loads(body)
                    data["header_delivery"] = self.headers["X-CaseForum-Delivery"]
                    data["header_host"] = self.headers["Host"]
                    receiver.received.append(data)
                    self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
