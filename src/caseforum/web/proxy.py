"""Behind a load balancer: the client's address, scheme and host as the proxy saw them.

A proxy in front of CaseForum connects from its own address, so without this every
request would seem to come from the balancer: one log-in throttle for all users, plain
``http`` although users came over HTTPS, and the balancer's host name.  The
``X-Forwarded-For``, ``X-Forwarded-Proto`` and ``X-Forwarded-Host`` headers say what
the proxy saw; anyone can send them, so they are believed only when the connection
itself comes from an address in ``trusted_proxies``.  From anyone else they are ignored.

Done in the app rather than by uvicorn (``caseforum serve`` runs uvicorn with
``proxy_headers=False``) so the same rule holds however the app is served, and so the
forwarded host is honoured too.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from starlette.requests import HTTPConnection
from starlette.types import ASGIApp, Receive, Scope, Send

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

#: a host name or address with an optional port: nothing that could smuggle a path
_HOST_RE = re.compile(r"[A-Za-z0-9.\-]{1,253}(:[0-9]{1,5})?|\[[0-9A-Fa-f:.]{2,45}\](:[0-9]{1,5})?")


def parse_networks(values: Iterable[str]) -> tuple[Network, ...]:
    """``10.0.0.0/8``, ``192.0.2.7`` or ``::1`` as networks (a lone address: its /32 or
    /128); raises ``ValueError`` naming the entry that is neither."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError:
            raise ValueError(f"{value!r} is not an address or network such as 10.0.0.0/8") \
                from None
    return tuple(networks)


def address_in(address: str | None, networks: tuple[Network, ...]) -> bool:
    """Whether ``address`` (as the ASGI server gives it) lies in one of ``networks``."""
    if not address or not networks:
        return False
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in networks)


class ProxyHeadersMiddleware:
    """Rewrites the scope's client, scheme and ``Host`` from the forwarded headers when
    the peer is a trusted proxy.  The client is the right-most ``X-Forwarded-For``
    address that is not itself a trusted proxy (each proxy appends the address it saw,
    so the entries left of an untrusted one are whatever the client chose to send)."""

    def __init__(self, app: ASGIApp, *, trusted: Iterable[str]) -> None:
        self.app = app
        self.trusted = parse_networks(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted and scope["type"] in ("http", "websocket"):
            peer = scope.get("client")
            if peer and address_in(peer[0], self.trusted):
                self._apply(scope)
        await self.app(scope, receive, send)

    def _apply(self, scope: Scope) -> None:
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        found: dict[bytes, str] = {}
        for name, value in headers:
            if name in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host"):
                # several headers of one name: joined, as HTTP says they are one list
                text = value.decode("latin-1")
                found[name] = f"{found[name]},{text}" if name in found else text
        chain = [part.strip() for part in found.get(b"x-forwarded-for", "").split(",")]
        chain = [part for part in chain if part]
        for hop in reversed(chain):
            if not address_in(hop, self.trusted):
                if _is_address(hop):
                    scope["client"] = (hop, 0)
                break
        else:
            if chain and _is_address(chain[0]):
                scope["client"] = (chain[0], 0)  # all proxies: the first one is the client
        proto = found.get(b"x-forwarded-proto", "").split(",")[0].strip().lower()
        if proto in ("http", "https"):
            if scope["type"] == "websocket":
                scope["scheme"] = "wss" if proto == "https" else "ws"
            else:
                scope["scheme"] = proto
        host = found.get(b"x-forwarded-host", "").split(",")[0].strip()
        if host and _HOST_RE.fullmatch(host):
            scope["headers"] = [(n, v) for n, v in headers if n != b"host"] + \
                [(b"host", host.encode("latin-1"))]


def _is_address(value: str) -> bool:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def cookies_secure(conn: HTTPConnection) -> bool:
    """Whether cookies set on this answer get ``Secure``: always when the setting says
    so or the public address (``base_url``) is HTTPS, and also when this request came
    over HTTPS (directly, or through a trusted proxy that said so)."""
    settings: Any = conn.app.state.settings
    return bool(settings.secure_cookies or str(settings.base_url).startswith("https:")
                or conn.scope.get("scheme") in ("https", "wss"))
