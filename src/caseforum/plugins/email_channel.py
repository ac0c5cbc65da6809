"""E-mail as a notification channel, over SMTP (settings ``[mail]``).

Each mail has a plain-text and an HTML part, a ``Message-ID`` made from the
delivery id (a mail sent twice after a crash is recognisably the same mail),
and a one-click unsubscribe: a signed link in the text and the
``List-Unsubscribe`` / ``List-Unsubscribe-Post`` headers (RFC 8058).

Users who chose a daily or weekly digest get their e-mail deliveries held until
the digest is due; the first one sent then takes the others of that user with it
into one mail.  Immediate mail does the same with what is due at the moment it is
sent: a follower of an office that adds a hundred documents in a minute gets a
mail or two listing them, not a hundred mails (and the last of them no later).

The mail and SMTP modules are imported by the first mail sent, not when the plugin
is loaded: every start of the server loaded them, few servers send mail.
"""

from __future__ import annotations

import base64
import contextlib
import re
import secrets
import threading
import time
from datetime import datetime, timedelta
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from sqlalchemy import update
from sqlmodel import col, select

from caseforum import hookimpl, i18n
from caseforum.channels import LEASE, Outgoing, visible_notes
from caseforum.db import open_session
from caseforum.forum import notices
from caseforum.forum.access import in_chunks
from caseforum.i18n import N_, Msg, NMsg
from caseforum.models import Delivery, Notification, User, utcnow
from caseforum.subscriptions import unsubscribe_token

if TYPE_CHECKING:
    import smtplib

#: an SMTP connection idle longer than this is closed and made anew
KEEP_OPEN_SECONDS = 30.0
#: a connection used this recently is used again without asking it first
TRUST_OPEN_SECONDS = 2.0
#: when digests go out: this hour (UTC), and for weekly ones on Mondays
DIGEST_HOUR = 6
#: notifications one mail lists at most; the rest go in the next
MAX_PER_MAIL = 100


#: characters that must never reach a mail header
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def digest_due(kind: str, now: datetime) -> datetime | None:
    """When a digest of ``kind`` collected from ``now`` on is sent; ``None``: at once."""
    if kind not in ("daily", "weekly"):
        return None
    due = now.replace(hour=DIGEST_HOUR, minute=0, second=0, microsecond=0)
    if due <= now:
        due += timedelta(days=1)
    if kind == "weekly":
        due += timedelta(days=(7 - due.weekday()) % 7)
    return due


class EmailChannel:
    name = "email"
    label = "E-mail"
    concurrency = 2  # SMTP connections at once
    max_attempts = 8
    retry_seconds = 30.0
    one_per_user = True  # a mail takes the user's other due ones along (_gather)

    def available(self, settings: Any) -> bool:
        return bool(settings.mail.host)

    def due_at(self, user: User, now: datetime) -> datetime | None:
        return digest_due(user.email_digest, now)

    def endpoints(self, session: Any, user: User) -> list[int]:
        return [0] if user.email else []  # no address: nothing to queue

    def deliver(self, outgoing: Outgoing) -> None:
        host = outgoing.host
        user = outgoing.user
        if not user.email:
            raise ValueError("the user has no e-mail address any more")
        taken, more = self._gather(host.engine, outgoing)
        try:
            self._send(host, user, [outgoing.notification, *more], outgoing.delivery_id)
        except Exception:
            if taken:  # the others wait for the next try with this one
                _set_state(host.engine, taken, "pending", sent=False)
            raise
        outgoing.along.extend(taken)  # marked sent with this one, in one statement

    def _gather(self, engine: Any, outgoing: Outgoing) -> tuple[list[int], list[Notification]]:
        """Claim the user's other due e-mail deliveries for this mail (up to
        :data:`MAX_PER_MAIL` in all): a digest's, and the immediate ones that are
        due as well, so a burst of new documents is one mail per follower rather
        than one per document, none later for it.  What the user may no longer see
        is dropped.  A few statements, however many are gathered."""
        now = utcnow()
        table = Delivery.__table__  # type: ignore[attr-defined]
        with open_session(engine) as session:
            ids = list(session.exec(select(Delivery.id).where(
                Delivery.user_id == outgoing.user.id, Delivery.channel == self.name,
                Delivery.state == "pending", col(Delivery.due_at) <= now,
                Delivery.id != outgoing.delivery_id).order_by(col(Delivery.id))
                .limit(MAX_PER_MAIL - 1)))
            if not ids:
                return [], []
            taken = list(session.connection().execute(
                update(table).where(table.c.id.in_(ids), table.c.state == "pending")
                .values(state="sending", lease_until=now + LEASE)
                .returning(table.c.id)).scalars())
            rows = list(session.exec(
                select(Delivery.id, Notification)
                .join(Notification, col(Notification.id) == col(Delivery.notification_id))
                .where(col(Delivery.id).in_(taken)).order_by(col(Notification.id))))
            notes = visible_notes(session, outgoing.user, [note for _, note in rows])
            session.commit()
        shown = {note.id for note in notes}
        gone = [d for d, note in rows if note.id not in shown]
        gone += sorted(set(taken) - {d for d, _ in rows})  # the notification was deleted
        if gone:
            _set_state(engine, gone, "dropped", sent=False,
                       error="the user may no longer see this, or it is gone")
        return [d for d, note in rows if note.id in shown], notes

    def __init__(self) -> None:
        self._local = threading.local()  # each sending thread keeps its own connection

    def _send(self, host: Any, user: User, notes: list[Notification], delivery_id: int) -> None:
        import smtplib  # the mail modules load with the first mail, not at start-up

        message = compose(host, user, notes, delivery_id)
        sender = host.settings.mail.from_address
        # an address that is not ASCII travels only with SMTPUTF8 (as send_message does)
        utf8 = not (sender + user.email).isascii()
        smtp, reused = self._connection(host.settings.mail)

        def send() -> None:
            if utf8 and not smtp.has_extn("smtputf8"):
                raise smtplib.SMTPNotSupportedError(
                    "the mail server does not take addresses that are not ASCII (SMTPUTF8)")
            smtp.sendmail(sender, [user.email], message,
                          mail_options=["SMTPUTF8", "BODY=8BITMIME"] if utf8 else ())

        try:
            try:
                send()
            except smtplib.SMTPServerDisconnected:
                if not reused:
                    raise
                # the kept connection was closed by the server meanwhile: once more on a
                # new one (a mail cut off mid-way may arrive twice: same Message-ID)
                self._drop()
                smtp, _ = self._connection(host.settings.mail)
                send()
        except BaseException:
            self._drop()  # start afresh next time
            raise
        self._local.used = time.monotonic()

    def _connection(self, mail: Any) -> tuple[smtplib.SMTP, bool]:
        """This thread's open connection when it was used lately, else a new one:
        connecting, STARTTLS and logging in cost more than a mail.  One idle for a
        while is asked first whether it still answers (a ``NOOP``); one in steady use
        is not (that was a round trip per mail).  Says whether it was kept."""
        import smtplib
        import ssl

        key = (mail.host, mail.port, mail.tls, mail.starttls, mail.user)
        smtp = getattr(self._local, "smtp", None)
        if smtp is not None:
            idle = time.monotonic() - self._local.used
            try:
                if self._local.key == key and (
                        idle < TRUST_OPEN_SECONDS
                        or (idle < KEEP_OPEN_SECONDS and smtp.noop()[0] == 250)):
                    return smtp, True
            except (smtplib.SMTPException, OSError):
                pass
            self._drop()
        context = ssl.create_default_context()
        if mail.tls:
            smtp = smtplib.SMTP_SSL(mail.host, mail.port, timeout=mail.timeout_seconds,
                                    context=context)
        else:
            smtp = smtplib.SMTP(mail.host, mail.port, timeout=mail.timeout_seconds)
        try:
            if mail.starttls and not mail.tls:
                smtp.starttls(context=context)
            if mail.user:
                smtp.login(mail.user, mail.password)
        except BaseException:
            smtp.close()
            raise
        self._local.smtp, self._local.key, self._local.used = smtp, key, time.monotonic()
        return smtp, False

    def _drop(self) -> None:
        smtp = getattr(self._local, "smtp", None)
        self._local.smtp = None
        if smtp is not None:
            import smtplib  # loaded by the mail that opened the connection

            with contextlib.suppress(smtplib.SMTPException, OSError):
                smtp.quit()
            smtp.close()


def _set_state(engine: Any, ids: list[int], state: str, *, sent: bool,
               error: str = "") -> None:
    table = Delivery.__table__  # type: ignore[attr-defined]
    with open_session(engine) as session:
        for chunk in in_chunks(ids):
            session.connection().execute(update(table).where(table.c.id.in_(chunk)).values(
                state=state, lease_until=None, sent_at=utcnow() if sent else None,
                last_error=error))
        session.commit()


#: what a mail says around its notifications (in the recipient's language)
HELLO = N_("Hello %(name)s,")
WHY_TEXT = N_("You get this because of your CaseForum settings: %(settings)s")
STOP_TEXT = N_("Stop these e-mails: %(stop)s")
WHY_HTML = N_('You get this because of your <a href="%(settings)s">CaseForum settings</a>. '
              '<a href="%(stop)s">Stop these e-mails</a>.')


def recipient_language(user: User, default: str) -> str:
    """The language a mail to ``user`` is written in: their own choice (the settings
    page, the switcher), else the instance default; a mail has no browser to ask."""
    found = i18n.match_language([user.locale]) if user.locale else None
    return found or default


def compose(host: Any, user: User, notes: list[Notification], delivery_id: int) -> bytes:
    """The mail as it goes over SMTP: one notification, or a digest of several, in
    text and HTML.

    Written out directly rather than built with ``email.message.EmailMessage``, whose
    header objects (parsed and folded one by one) were a fifth of a mail's cost.  The
    shape is fixed: ASCII headers (the subject in RFC 2047 words when it is not),
    long lines left unfolded (RFC 5322 allows 998: a folded List-Unsubscribe URL is
    not followed by mail programs), and a ``multipart/alternative`` of two UTF-8 parts
    in base64, whose alphabet cannot contain the boundary."""
    from email.header import Header
    from email.utils import formatdate

    base = host.base_url
    token = unsubscribe_token(host.settings.secret_key or "", user.id or 0)
    stop_page = f"{base}/unsubscribe/{token}"
    one_click = f"{base}/api/v1/unsubscribe/{token}"
    locale = i18n.PageLocale.of(recipient_language(user, host.settings.default_locale))

    def say(message: str, **values: Any) -> str:
        return i18n.translate(Msg(message, **values), locale)

    texts = [i18n.translate(notices.as_message(n.text), locale) for n in notes]
    subject = "[CaseForum] " + (texts[0] if len(notes) == 1 else i18n.translate(
        NMsg("%(num)d new notification", "%(num)d new notifications", len(notes)), locale))
    lines = [f"- {shown}\n  {base}{n.link}" for shown, n in zip(texts, notes, strict=True)]
    text = (say(HELLO, name=user.label) + "\n\n" + "\n".join(lines) + "\n\n-- \n"
            + say(WHY_TEXT, settings=f"{base}/settings") + "\n"
            + say(STOP_TEXT, stop=stop_page) + "\n")
    items = "".join(f'<li><a href="{escape(base + n.link)}">{escape(shown)}</a></li>'
                    for shown, n in zip(texts, notes, strict=True))
    html = (f'<!doctype html><html lang="{locale.code}"><body>'
            f"<p>{escape(say(HELLO, name=user.label))}</p><ul>{items}</ul><p><small>"
            + say(WHY_HTML, settings=escape(f"{base}/settings"), stop=escape(stop_page))
            + "</small></p></body></html>\n")
    boundary = f"=_caseforum_{delivery_id}_{secrets.token_hex(8)}"
    # a notification's text may carry a peer's or a user's words: no line break (or
    # other control character) may reach the header and start a header of its own
    subject = " ".join(_CONTROL.sub(" ", subject).split())
    headers = [
        ("Subject", subject if subject.isascii()
         else Header(subject, "utf-8").encode(linesep="\r\n")),
        ("From", host.settings.mail.from_address),
        ("To", user.email),
        ("Date", formatdate(usegmt=True)),
        ("Message-ID", f"<delivery-{delivery_id}@{urlsplit(base).hostname or 'caseforum'}>"),
        ("List-Unsubscribe", f"<{one_click}>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    out = [f"{name}: {value}" for name, value in headers]
    out.append("")
    for subtype, body in (("plain", text), ("html", html)):
        out += [f"--{boundary}", f'Content-Type: text/{subtype}; charset="utf-8"',
                "Content-Transfer-Encoding: base64", "",
                base64.encodebytes(body.encode("utf-8")).decode("ascii").rstrip("\n")
                .replace("\n", "\r\n")]
    out += [f"--{boundary}--", ""]
    return "\r\n".join(out).encode("utf-8")


CHANNEL = EmailChannel()


@hookimpl
def register_notification_channels() -> list[Any]:
    return [CHANNEL]
