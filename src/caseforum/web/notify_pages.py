"""Notification pages: the list (grouped per thread), subscriptions, the user's
settings (e-mail, channels, webhooks), unsubscribing, the admins' delivery view."""

from html import escape
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import func, update
from sqlmodel import Session, col, select

from caseforum import errors, subscriptions
from caseforum.accounts import clean_email
from caseforum.authz import Viewer, require
from caseforum.channels import retry_now, visible_notes
from caseforum.db import SessionDep
from caseforum.forum import inbox, notify
from caseforum.models import (
    Delivery,
    Notification,
    Subscription,
    User,
    WebhookEndpoint,
    utcnow,
)
from caseforum.netguard import RefusedAddress
from caseforum.plugins.webhook_channel import add_endpoint
from caseforum.web.deps import CurrentUser, CurrentViewer
from caseforum.web.notify_api import channel_names
from caseforum.web.params import PathId
from caseforum.web.templating import render

router = APIRouter(tags=["notification pages"], include_in_schema=False)
LISTED = 200  # the newest notifications the page groups
FEED_SIZE = 50  # entries of an Atom feed


@router.get("/notifications")
def notifications_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    require(viewer, "forum.view")
    shown = inbox.recent(session, viewer, limit=LISTED)
    return render(request, "notifications.html",
                  {"groups": inbox.group_notifications(shown)})


@router.post("/notifications/read")
def notifications_read(request: Request, session: SessionDep, viewer: CurrentViewer,
                       notification_id: Annotated[str, Form(max_length=20)] = "") -> Response:
    """Mark all read, or one notification and the others of its thread."""
    require(viewer, "forum.view")
    if notification_id.strip():
        if not notification_id.strip().isdigit():
            raise errors.BadRequest("notification_id must be a number")
        _read_one(session, viewer.user_id or 0, int(notification_id))
    else:
        notify.mark_read(session, user_id=viewer.user_id or 0)
    session.commit()
    return RedirectResponse("/notifications", status_code=303)


def _read_one(session: Session, user_id: int, notification_id: int) -> Notification:
    """Mark the notification read with the rest of its line on the page: the others
    of its thread, or (no thread: an exchange's alerts, a document's) of its link."""
    note = session.get(Notification, notification_id)
    if note is None or note.user_id != user_id:
        raise errors.NotFound("no such notification")
    if note.thread_id is not None:
        notify.mark_read(session, user_id=user_id, thread_id=note.thread_id)
    else:
        notify.mark_read(session, user_id=user_id, link=note.link)
    return note


@router.get("/notifications/{notification_id}/open")
def notification_open(session: SessionDep, viewer: CurrentViewer,
                      notification_id: PathId) -> Response:
    """Follow a notification: it (and the rest of its thread's) is read now."""
    require(viewer, "forum.view")
    note = _read_one(session, viewer.user_id or 0, notification_id)
    session.commit()
    link = note.link if note.link.startswith("/") and not note.link.startswith("//") else "/"
    return RedirectResponse(link, status_code=303)


# Subscriptions ----------------------------------------------------------------------


def _subscriptions_context(request: Request, session: Session, viewer: Viewer,
                           error: str | None = None, form: dict | None = None) -> dict:
    rows = session.exec(select(Subscription).where(Subscription.user_id == viewer.user_id)
                        .order_by(Subscription.kind, Subscription.label)).all()
    key = request.app.state.settings.secret_key
    return {"subs": rows, "feeds": {s.id: subscriptions.feed_token(key, s) for s in rows},
            "kinds": subscriptions.KINDS, "levels": subscriptions.LEVELS,
            "documents": subscriptions.DOCUMENTS, "directions": subscriptions.DIRECTIONS,
            "channels": channel_names(request), "error": error, "form": form or {}}


@router.get("/subscriptions")
def subscriptions_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                       kind: str = "", target: str = "") -> Response:
    require(viewer, "me.view")
    return render(request, "subscriptions.html", _subscriptions_context(
        request, session, viewer, form={"kind": kind, "target": target}))


@router.post("/subscriptions")
def subscriptions_add(request: Request, session: SessionDep, viewer: CurrentViewer,
                      user: CurrentUser, kind: Annotated[str, Form(max_length=16)],
                      target: Annotated[str, Form(max_length=100)],
                      documents: Annotated[str, Form(max_length=16)] = "all",
                      direction: Annotated[str, Form(max_length=16)] = "all",
                      level: Annotated[str, Form(max_length=16)] = "watching",
                      channels: Annotated[list[str] | None, Form()] = None,
                      for_office: Annotated[str, Form(max_length=2)] = "") -> Response:
    require(viewer, "me.view")
    try:
        subscriptions.subscribe(
            session, user=user, viewer=viewer, kind=kind, target=target, documents=documents,
            direction=direction, level=level, channels=channels or ["inapp"],
            known_channels=channel_names(request), for_office=for_office)
    except errors.CaseForumError as exc:
        session.rollback()
        return render(request, "subscriptions.html", _subscriptions_context(
            request, session, viewer, error=exc.message,
            form={"kind": kind, "target": target}), status_code=exc.status)
    session.commit()
    return RedirectResponse("/subscriptions", status_code=303)


@router.post("/subscriptions/{subscription_id}/delete")
def subscriptions_delete(session: SessionDep, viewer: CurrentViewer,
                         subscription_id: PathId) -> Response:
    require(viewer, "me.view")
    subscriptions.unsubscribe(session, viewer=viewer, subscription_id=subscription_id)
    session.commit()
    return RedirectResponse("/subscriptions", status_code=303)


# Settings: e-mail address, digest, channels per kind, webhook endpoints ---------------


def _settings_context(request: Request, session: Session, user: User,
                      error: str | None = None, secret: str | None = None) -> dict:
    kinds = (*subscriptions.PERSONAL, *subscriptions.KINDS)
    return {"me": user, "kinds": kinds, "channels": channel_names(request),
            "chosen": {k: subscriptions.channels_for(session, user.id or 0, k) for k in kinds},
            "digests": subscriptions.DIGESTS, "error": error, "secret": secret,
            "endpoints": session.exec(select(WebhookEndpoint).where(
                WebhookEndpoint.user_id == user.id)).all()}


@router.get("/settings")
def settings_page(request: Request, session: SessionDep, viewer: CurrentViewer,
                  user: CurrentUser) -> Response:
    require(viewer, "me.view")
    return render(request, "settings.html", _settings_context(request, session, user))


@router.post("/settings")
async def settings_save(request: Request, session: SessionDep, viewer: CurrentViewer,
                        user: CurrentUser) -> Response:
    """E-mail address, digest and the channel grid (one checkbox per kind and channel)."""
    require(viewer, "me.view")
    form = await request.form()
    email = str(form.get("email", "")).strip()
    digest = str(form.get("email_digest", "immediate"))
    try:
        user.email = clean_email(email)
        if digest not in subscriptions.DIGESTS:
            raise errors.InvalidInput(
                f"email_digest: use one of {', '.join(subscriptions.DIGESTS)}")
        user.email_digest = digest
        known = channel_names(request)
        for kind in (*subscriptions.PERSONAL, *subscriptions.KINDS):
            names = [str(v) for v in form.getlist(f"channels_{kind}")]
            chosen = subscriptions.clean_channels(names, known)
            if "email" in chosen and not user.email:
                raise errors.InvalidInput("to choose e-mail, give your e-mail address")
            subscriptions.set_channels(session, user.id or 0, kind, chosen)
    except errors.CaseForumError as exc:
        session.rollback()
        return render(request, "settings.html", _settings_context(
            request, session, user, error=exc.message), status_code=exc.status)
    session.add(user)
    session.commit()
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/webhooks")
def webhook_add(request: Request, session: SessionDep, viewer: CurrentViewer,
                user: CurrentUser, url: Annotated[str, Form(max_length=500)]) -> Response:
    require(viewer, "me.view")
    try:
        _, secret = add_endpoint(session, request.app.state.settings, user.id or 0, url)
    except RefusedAddress as exc:
        return render(request, "settings.html", _settings_context(
            request, session, user, error=exc.message), status_code=exc.status)
    session.commit()
    # the secret is shown once, on this answer, never again
    return render(request, "settings.html", _settings_context(request, session, user,
                                                              secret=secret))


def _own_endpoint(session: Session, viewer: Viewer, endpoint_id: int) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None or endpoint.user_id != viewer.user_id:
        raise errors.NotFound("no such webhook endpoint")
    return endpoint


@router.post("/settings/webhooks/{endpoint_id}/enable")
def webhook_enable(session: SessionDep, viewer: CurrentViewer, endpoint_id: PathId) -> Response:
    """Switch an endpoint back on: what waited for it goes out now."""
    require(viewer, "me.view")
    endpoint = _own_endpoint(session, viewer, endpoint_id)
    endpoint.active, endpoint.failures, endpoint.disabled_at = True, 0, None
    session.add(endpoint)
    retry_now(session, channel="webhook", endpoint_id=endpoint.id)
    session.commit()
    return RedirectResponse("/settings", status_code=303)


@router.post("/settings/webhooks/{endpoint_id}/delete")
def webhook_delete(session: SessionDep, viewer: CurrentViewer, endpoint_id: PathId) -> Response:
    require(viewer, "me.view")
    session.delete(_own_endpoint(session, viewer, endpoint_id))
    session.commit()
    return RedirectResponse("/settings", status_code=303)


# Unsubscribe (no log-in) and the administrators' view ---------------------------------


@router.get("/unsubscribe/{token}")
def unsubscribe_page(request: Request, token: str) -> Response:
    subscriptions.read_unsubscribe_token(request.app.state.settings.secret_key, token)
    return render(request, "unsubscribe.html", {"token": token, "done": False})


@router.post("/unsubscribe/{token}")
def unsubscribe_confirm(request: Request, session: SessionDep, token: str) -> Response:
    user_id = subscriptions.read_unsubscribe_token(request.app.state.settings.secret_key, token)
    subscriptions.stop_email(session, user_id)
    session.commit()
    return render(request, "unsubscribe.html", {"token": token, "done": True})


def _managed_users(session: Session, viewer: Viewer) -> dict[int | None, User]:
    """Platform administrators see every user's deliveries, office ones their office's."""
    return {u.id: u for u in session.exec(select(User))
            if viewer.role == "platform_admin" or u.office_code == viewer.office_code}


@router.post("/admin/deliveries/retry")
def deliveries_retry(session: SessionDep, viewer: CurrentViewer) -> Response:
    """Send the failed deliveries (of the users one manages) again, now."""
    require(viewer, "admin.view")
    query = update(Delivery).where(col(Delivery.state) == "failed")
    if viewer.role != "platform_admin":
        query = query.where(col(Delivery.user_id).in_(
            select(User.id).where(User.office_code == viewer.office_code)))
    session.exec(query.values(state="pending", attempts=0, due_at=utcnow()))
    session.commit()
    return RedirectResponse("/admin/deliveries", status_code=303)


@router.get("/admin/deliveries")
def deliveries_page(request: Request, session: SessionDep, viewer: CurrentViewer) -> Response:
    """Failed and waiting deliveries, and switched-off webhook endpoints."""
    require(viewer, "admin.view")
    users = _managed_users(session, viewer)
    failing = [d for d in session.exec(select(Delivery).where(
        col(Delivery.state).in_(("failed", "pending")), Delivery.last_error != "")
        .order_by(col(Delivery.id).desc()).limit(200)) if d.user_id in users]
    endpoints = [e for e in session.exec(select(WebhookEndpoint).order_by(
        col(WebhookEndpoint.id))) if e.user_id in users]
    counts = dict(session.exec(select(Delivery.state, func.count()).group_by(Delivery.state)).all())
    return render(request, "admin/deliveries.html", {"failing": failing, "endpoints": endpoints,
                                                     "users": users, "counts": counts})


@router.get("/feeds/{token}.atom")
def subscription_feed(request: Request, session: SessionDep, token: str) -> Response:
    """An Atom feed of one subscription's notifications, for feed readers (the link
    on the subscriptions page carries a signed token instead of a log-in).  What the
    owner may no longer see is left out."""
    settings = request.app.state.settings
    sub = subscriptions.read_feed_token(session, settings.secret_key, token)
    owner = session.get(User, sub.user_id)
    notes = session.exec(select(Notification).where(
        Notification.subscription_id == sub.id, Notification.user_id == sub.user_id)
        .order_by(col(Notification.id).desc()).limit(FEED_SIZE)).all()
    visible = visible_notes(session, owner, list(notes))
    base = str(settings.base_url).rstrip("/")
    updated = (visible[0].created_at if visible else sub.created_at).isoformat()
    entries = "".join(
        f"<entry><id>{base}/notifications/{n.id}</id><title>{escape(n.text)}</title>"
        f'<link href="{escape(base + n.link)}"/><updated>{n.created_at.isoformat()}</updated>'
        "</entry>" for n in visible)
    body = ('<?xml version="1.0" encoding="utf-8"?>\n'
            '<feed xmlns="http://www.w3.org/2005/Atom">'
            f"<id>{base}/feeds/subscription-{sub.id}</id>"
            f"<title>CaseForum: {escape(sub.kind)} {escape(sub.label)}</title>"
            f"<updated>{updated}</updated>{entries}</feed>")
    return Response(body, media_type="application/atom+xml; charset=utf-8")
