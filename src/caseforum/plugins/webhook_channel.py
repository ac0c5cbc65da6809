"""Signed webhooks as a notification channel.

Each user may register endpoints (URL + a secret of their own, shown once).  A
notification is POSTed as JSON with::

    X-CaseForum-Delivery:  the delivery id (the same on a retry: drop repeats)
    X-CaseForum-Timestamp: seconds since the epoch
    X-CaseForum-Signature: sha256=HEX, HMAC-SHA256 with the endpoint's secret
                           over "<timestamp>.<body>"

A failed POST (no answer within the time-out, or not 2xx) is retried with
exponential backoff; after ``max_failures`` failures in a row the endpoint is
switched off, which its owner and the administrators see on their pages.  While
it is off its deliveries wait (they are not lost) and go out when it is
switched back on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from caseforum import hookimpl
from caseforum.channels import ChannelPaused, Outgoing
from caseforum.db import open_session
from caseforum.models import WebhookEndpoint, utcnow


class Config(BaseModel):
    """``plugins.webhook_channel`` settings."""

    max_failures: int = Field(default=10, ge=1, le=1000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


def sign(secret: str, timestamp: str, body: bytes) -> str:
    """The signature header's value; receivers compute the same and compare."""
    digest = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def payload(outgoing: Outgoing) -> dict[str, Any]:
    note = outgoing.notification
    base = outgoing.host.base_url if outgoing.host is not None else ""
    return {
        "delivery": outgoing.delivery_id,
        "user": outgoing.user.username,
        "notification": {
            "id": note.id, "kind": note.kind, "text": note.text, "url": base + note.link,
            "thread_id": note.thread_id, "post_id": note.post_id,
            "document_id": note.document_id, "created_at": note.created_at.isoformat(),
        },
    }


class WebhookChannel:
    name = "webhook"
    label = "Webhook"
    concurrency = 4
    max_attempts = 10
    retry_seconds = 5.0

    def endpoints(self, session: Session, user: Any) -> list[int]:
        return [e for e in session.exec(select(WebhookEndpoint.id).where(
            WebhookEndpoint.user_id == user.id).order_by(col(WebhookEndpoint.id))) if e]

    def deliver(self, outgoing: Outgoing) -> None:
        import httpx  # when a webhook is sent, not when the app starts (cold start)

        host = outgoing.host
        config = Config.model_validate(host.settings.plugins.get("webhook_channel", {}))
        with open_session(host.engine) as session:
            endpoint = session.get(WebhookEndpoint, outgoing.endpoint_id)
        if endpoint is None:
            raise ValueError("the endpoint was removed")
        if not endpoint.active:
            raise ChannelPaused("the endpoint is switched off; it waits until switched on")
        body = json.dumps(payload(outgoing), separators=(",", ":")).encode()
        stamp = str(int(time.time()))
        headers = {"Content-Type": "application/json",
                   "User-Agent": "CaseForum-Webhook/1",
                   "X-CaseForum-Delivery": str(outgoing.delivery_id),
                   "X-CaseForum-Timestamp": stamp,
                   "X-CaseForum-Signature": sign(endpoint.secret, stamp, body)}
        try:
            response = httpx.post(endpoint.url, content=body, headers=headers,
                                  timeout=config.timeout_seconds, follow_redirects=False)
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"the endpoint answered {response.status_code}")
        except Exception as exc:
            record(host.engine, endpoint.id or 0, error=f"{type(exc).__name__}: {exc}",
                   max_failures=config.max_failures)
            raise
        record(host.engine, endpoint.id or 0, error=None, max_failures=config.max_failures)


def record(engine: Any, endpoint_id: int, *, error: str | None, max_failures: int) -> None:
    """Count a success (failures back to 0) or a failure (switched off at the limit)."""
    with open_session(engine) as session:
        endpoint = session.get(WebhookEndpoint, endpoint_id)
        if endpoint is None:
            return
        if error is None:
            endpoint.failures = 0
            endpoint.last_success_at = utcnow()
        else:
            endpoint.failures += 1
            endpoint.last_error = error[:500]
            if endpoint.failures >= max_failures and endpoint.active:
                endpoint.active = False
                endpoint.disabled_at = utcnow()
        session.add(endpoint)
        session.commit()


CHANNEL = WebhookChannel()


@hookimpl
def register_notification_channels() -> list[Any]:
    return [CHANNEL]
