"""Subscriptions API and the one-click unsubscribe of e-mails."""

from datetime import datetime
from typing import Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import col, select

from caseforum import errors, subscriptions
from caseforum.authz import require
from caseforum.channels import available
from caseforum.db import SessionDep
from caseforum.models import Subscription, WebhookEndpoint
from caseforum.plugins.webhook_channel import add_endpoint
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.params import PathId

router = APIRouter(prefix="/api/v1", tags=["subscriptions"])


class SubscriptionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["application", "family", "office", "thread", "category"]
    target: str = Field(min_length=1, max_length=100, description=(
        "an application or publication number in any form (or the dossier id), "
        "an office code, or a thread or category id"))
    documents: Literal["search", "examination", "all"] = "all"
    direction: Literal["incoming", "outgoing", "all"] = "all"
    level: Literal["watching", "tracking", "muted"] = "watching"
    channels: list[str] | None = Field(default=None, max_length=10, description=(
        "channel names (inapp, email, webhook); left out: your choice for this kind"))
    for_office: str | None = Field(default=None, max_length=2, description=(
        "an office code: a default for everybody of that office (its administrators only)"))


class SubscriptionOut(BaseModel):
    id: int
    kind: str
    target: str
    label: str
    documents: str
    direction: str
    level: str
    channels: list[str]
    for_office: str | None
    created_at: datetime


def out(sub: Subscription) -> SubscriptionOut:
    return SubscriptionOut(id=sub.id or 0, kind=sub.kind, target=sub.target, label=sub.label,
                           documents=sub.documents, direction=sub.direction, level=sub.level,
                           channels=sub.channel_list, for_office=sub.for_office or None,
                           created_at=sub.created_at)


def channel_names(request: Request) -> list[str]:
    """The channels users may choose now (e-mail only when a mail server is set)."""
    settings = request.app.state.settings
    return [c.name for c in request.app.state.plugins.notification_channels()
            if available(c, settings)]


@router.get("/subscriptions", response_model=list[SubscriptionOut])
def list_subscriptions(session: SessionDep, viewer: CurrentViewer) -> list[SubscriptionOut]:
    require(viewer, "me.view")
    rows = session.exec(select(Subscription).where(Subscription.user_id == viewer.user_id)
                        .order_by(Subscription.id))  # type: ignore[arg-type]
    return [out(s) for s in rows]


@router.post("/subscriptions", status_code=201, response_model=SubscriptionOut)
def create_subscription(request: Request, session: SessionDep, viewer: CurrentViewer,
                        user: CurrentUser, body: SubscriptionIn) -> SubscriptionOut:
    """Follow something; posting the same kind and target again changes it."""
    require(viewer, "me.view")
    chosen = (body.channels if body.channels is not None
              else subscriptions.channels_for(session, user.id or 0, body.kind))
    sub = subscriptions.subscribe(
        session, user=user, viewer=viewer, kind=body.kind, target=body.target,
        documents=body.documents, direction=body.direction, level=body.level,
        channels=chosen, known_channels=channel_names(request), for_office=body.for_office or "")
    session.commit()
    return out(sub)


@router.delete("/subscriptions/{subscription_id}", status_code=204)
def delete_subscription(session: SessionDep, viewer: CurrentViewer,
                        subscription_id: PathId) -> Response:
    require(viewer, "me.view")
    subscriptions.unsubscribe(session, viewer=viewer, subscription_id=subscription_id)
    session.commit()
    return Response(status_code=204)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: str = Field(min_length=1, max_length=500, description=(
        "http:// or https:// address that receives the signed POSTs; internal "
        "addresses only where an administrator allows them"))


class WebhookOut(BaseModel):
    id: int
    url: str
    active: bool
    failures: int
    last_error: str
    last_success_at: datetime | None
    disabled_at: datetime | None
    created_at: datetime
    secret: str | None = Field(default=None, description=(
        "the signing secret: in the answer to the POST only, never again"))


def webhook_out(endpoint: WebhookEndpoint, secret: str | None = None) -> WebhookOut:
    return WebhookOut(id=endpoint.id or 0, url=endpoint.url, active=endpoint.active,
                      failures=endpoint.failures, last_error=endpoint.last_error,
                      last_success_at=endpoint.last_success_at,
                      disabled_at=endpoint.disabled_at, created_at=endpoint.created_at,
                      secret=secret)


@router.get("/webhooks", response_model=list[WebhookOut], tags=["webhooks"])
def list_webhooks(session: SessionDep, viewer: CurrentViewer) -> list[WebhookOut]:
    """The caller's webhook endpoints and their state (switched off after failures)."""
    require(viewer, "me.view")
    rows = session.exec(select(WebhookEndpoint).where(WebhookEndpoint.user_id == viewer.user_id)
                        .order_by(col(WebhookEndpoint.id)))
    return [webhook_out(e) for e in rows]


@router.post("/webhooks", status_code=201, response_model=WebhookOut, tags=["webhooks"],
             responses=errors.responses(422))
def create_webhook(request: Request, session: SessionDep, viewer: CurrentViewer,
                   body: WebhookIn) -> WebhookOut:
    """Add an endpoint for the webhook channel; the answer carries its secret once."""
    require(viewer, "me.view")
    endpoint, secret = add_endpoint(session, request.app.state.settings,
                                    viewer.user_id or 0, body.url)
    session.commit()
    return webhook_out(endpoint, secret)


@router.delete("/webhooks/{endpoint_id}", status_code=204, tags=["webhooks"])
def delete_webhook(session: SessionDep, viewer: CurrentViewer, endpoint_id: PathId) -> Response:
    require(viewer, "me.view")
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.user_id != viewer.user_id:
        raise errors.NotFound("no such webhook endpoint")
    session.delete(endpoint)
    session.commit()
    return Response(status_code=204)


@router.post("/unsubscribe/{token}", include_in_schema=False)
def one_click_unsubscribe(request: Request, session: SessionDep, token: str) -> dict[str, str]:
    """RFC 8058 one-click unsubscribe: mail programs POST here, with no log-in."""
    user_id = subscriptions.read_unsubscribe_token(request.app.state.settings.secret_key, token)
    subscriptions.stop_email(session, user_id)
    session.commit()
    return {"detail": "You will get no more e-mail from CaseForum."}
