"""The two transfer routes this plugin registers (``register_transfer_routes``).

A route is an object with ``name``, ``label``, ``synchronous``,
``problem(session, sender=, recipient=)`` (why it cannot carry parcels between
two offices, or None), ``send(envelope, rt)`` returning the peer's signed receipt,
and ``receive(envelope, rt)``. ``send`` raises ``Refused`` when the receiving side
refused the parcel for good and ``DeliveryError`` when trying again later may work.
Other plugins can add routes of the same shape (say, a courier with a USB disk).
"""

from __future__ import annotations

import json
import re
from contextlib import ExitStack
from typing import TYPE_CHECKING, Any

from sqlmodel import Session

from . import __version__, inbox, keys
from .config import IceRuntime
from .errors import DeliveryError, Refused
from .inbox import Envelope, SignedReceipt
from .models import IcePeer

if TYPE_CHECKING:
    import httpx

INBOX_PATH = "/api/v1/ice/inbox"
MAX_ANSWER_BYTES = 1024 * 1024
PERMANENT = {400, 403, 409, 413, 422}


class HostedRoute:
    """Both offices use this instance: delivery is the recipient's verification, in-process."""

    name = "hosted"
    label = "Same instance"
    synchronous = True

    def problem(self, session: Session, *, sender: str, recipient: str) -> str | None:
        local = keys.local_offices(session)
        missing = [code for code in (sender, recipient) if code not in local]
        if missing:
            return f"{' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not " \
                   "hosted on this instance"
        return None

    def send(self, envelope: Envelope, rt: IceRuntime) -> SignedReceipt:
        return self.receive(envelope, rt)

    def receive(self, envelope: Envelope, rt: IceRuntime) -> SignedReceipt:
        return inbox.receive(rt, envelope, via="hosted")


class WebserviceRoute:
    """The other office runs its own instance: push the parcel to its inbox over HTTP."""

    name = "webservice"
    label = "Peer instance (web service)"
    synchronous = False

    def problem(self, session: Session, *, sender: str, recipient: str) -> str | None:
        if not keys.is_local(session, sender):
            return f"{sender} is not hosted on this instance"
        if session.get(IcePeer, recipient) is None:
            return f"{recipient} is not a configured peer ('caseforum peers add')"
        return None

    def receive(self, envelope: Envelope, rt: IceRuntime) -> SignedReceipt:
        return inbox.receive(rt, envelope, via="webservice")

    def send(self, envelope: Envelope, rt: IceRuntime) -> SignedReceipt:
        recipient = str(envelope.manifest.get("recipient"))
        with rt.session() as session:
            peer = session.get(IcePeer, recipient)
            url = f"{peer.url}{INBOX_PATH}" if peer else None
        if url is None:
            raise DeliveryError(f"{recipient} is not a configured peer any more")
        headers = {
            "User-Agent": f"caseforum-ice/{__version__}",
            "Accept": "application/json",
            "X-Ice-Parcel": str(envelope.manifest.get("parcel_id")),
            "X-Ice-Sender": str(envelope.manifest.get("sender")),
            "X-Ice-Recipient": recipient,
        }
        import httpx  # here: the plugin's start-up imports this module (cold start)

        timeout = httpx.Timeout(rt.config.delivery_timeout_seconds, connect=10.0)
        with ExitStack() as stack:
            files = [(part, (f"{part}.bin", stack.enter_context(opener()),
                             "application/octet-stream"))
                     for part, opener in envelope.parts.items()]
            data = {"manifest": json.dumps(envelope.manifest, ensure_ascii=False),
                    "signature": envelope.signature}
            try:
                with httpx.Client(timeout=timeout, follow_redirects=False) as client, \
                        client.stream("POST", url, data=data, files=files,
                                      headers=headers) as response:
                    body = _read_limited(response)
            except httpx.HTTPError as exc:
                raise DeliveryError(f"cannot deliver to {url}: {type(exc).__name__}: "
                                    f"{exc}") from None
        return _interpret(response.status_code, body, url)


def _read_limited(response: httpx.Response) -> bytes:
    chunks, size = [], 0
    for chunk in response.iter_bytes():
        size += len(chunk)
        if size > MAX_ANSWER_BYTES:
            raise DeliveryError("the peer's answer is implausibly large")
        chunks.append(chunk)
    return b"".join(chunks)


def _receipt_from(answer: dict[str, Any]) -> SignedReceipt | None:
    receipt, signature = answer.get("receipt"), answer.get("signature")
    if isinstance(receipt, dict) and isinstance(signature, str):
        return SignedReceipt(receipt, signature)
    return None


def _interpret(status: int, body: bytes, url: str) -> SignedReceipt:
    try:
        answer = json.loads(body) if body else {}
    except ValueError:
        answer = {}
    if not isinstance(answer, dict):
        answer = {}
    detail = str(answer.get("detail") or body[:200].decode("utf-8", "replace") or status)
    code = str(answer.get("code") or "refused")
    if not re.fullmatch(r"[a-z_]{1,40}", code):  # a peer's word, shown in mail and pages
        code = "refused"
    if status in (200, 201):
        signed = _receipt_from(answer)
        if signed is None:
            raise DeliveryError(f"{url} answered {status} without a signed receipt")
        return signed
    if status == 409 and code == "replay":
        signed = _receipt_from(answer)
        if signed is not None:  # our earlier attempt arrived; its answer was lost
            return signed
    if status in PERMANENT:
        raise Refused(f"{detail}", code=code, status=status)
    raise DeliveryError(f"{url} answered {status}: {detail}")


def all_routes() -> list[Any]:
    return [HostedRoute(), WebserviceRoute()]

