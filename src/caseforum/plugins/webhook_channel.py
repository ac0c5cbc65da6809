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
import secrets
import time
from typing import Any

from pydantic import BaseModel, Field
from sqlmodel import Session, col, select

from caseforum import hookimpl
from caseforum.channels import ChannelPaused, Outgoing
from caseforum.db import open_session
from caseforum.models import WebhookEndpoint, utcnow
from caseforum.netguard import AddressPolicy, Checked, check_url


class Config(BaseModel):
    """``plugins.webhook_channel`` settings.

    Endpoints may reach public addresses only (see ``caseforum.netguard``);
    ``allowed_hosts`` lists host names, addresses or networks (CIDR) that may be
    internal all the same, and ``allow_private_networks`` lifts the rule for all."""

    max_failures: int = Field(default=10, ge=1, le=1000)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)
    allowed_hosts: list[str] = Field(default_factory=list, max_length=200)
    allow_private_networks: bool = False


def config_of(settings: Any) -> Config:
    return Config.model_validate(settings.plugins.get("webhook_channel", {}))


def address_policy(settings: Any) -> AddressPolicy:
    """What the administrator allows endpoints to reach beyond public addresses."""
    config = config_of(settings)
    return AddressPolicy.of(config.allowed_hosts, allow_private=config.allow_private_networks)


def check_endpoint_url(settings: Any, url: str) -> Checked:
    """The URL if it may be saved as an endpoint; else :class:`RefusedAddress` (422)."""
    return check_url(url, address_policy(settings))


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
        config = config_of(host.settings)
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
            # checked again now (DNS may have changed since the URL was saved), and the
            # request goes to the address just checked, not to a second DNS answer
            checked = check_url(endpoint.url, address_policy(host.settings))
            target, host_header, extensions = pinned(checked)
            headers.update(host_header)
            with httpx.Client(timeout=config.timeout_seconds, follow_redirects=False) as client:
                response = client.post(target, content=body, headers=headers,
                                       extensions=extensions)
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"the endpoint answered {response.status_code}")
        except Exception as exc:
            record(host.engine, endpoint.id or 0, error=f"{type(exc).__name__}: {exc}",
                   max_failures=config.max_failures)
            raise
        record(host.engine, endpoint.id or 0, error=None, max_failures=config.max_failures)


def add_endpoint(session: Session, settings: Any, user_id: int,
                 url: str) -> tuple[WebhookEndpoint, str]:
    """Save a user's endpoint (its URL checked: :class:`RefusedAddress` otherwise)
    with a new secret; returns both, since the secret is shown this once only."""
    checked = check_endpoint_url(settings, url)
    secret = secrets.token_urlsafe(32)
    endpoint = WebhookEndpoint(user_id=user_id, url=checked.url, secret=secret)
    session.add(endpoint)
    session.flush()
    return endpoint, secret


def pinned(checked: Checked) -> tuple[Any, dict[str, str], dict[str, Any]]:
    """The URL with its host replaced by the checked address, the ``Host`` header
    that keeps the name for the receiver, and the request extensions that keep it
    for TLS (SNI and certificate checks still use the host name)."""
    import httpx

    url = httpx.URL(checked.url)
    if checked.literal:
        return url, {}, {}
    extensions = {"sni_hostname": checked.host} if url.scheme == "https" else {}
    return (url.copy_with(host=str(checked.address)),
            {"Host": url.netloc.decode("ascii")}, extensions)


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
