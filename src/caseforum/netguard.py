"""Which addresses a user-given URL (a webhook endpoint) may make the server reach.

A webhook URL is typed by any user, and the server POSTs to it: without a check a
user could make CaseForum call its own admin interfaces, the cloud provider's
metadata service (169.254.169.254) or anything else on the internal network. So
addresses that are not globally routable (loopback, link-local, private,
carrier-grade NAT, reserved, multicast, unspecified) are refused unless an
administrator allows them, by host name, address or network, or all at once.

The check runs when the URL is saved and again right before each send, and the
send then connects to the very address that was checked (``pinned``): a host
name whose DNS answer changes after the check (DNS rebinding) cannot lead the
request elsewhere.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from caseforum.errors import InvalidInput

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
Lookup = Callable[..., list[Any]]
resolve: Lookup = socket.getaddrinfo  # the DNS look-up (tests replace it)

HOW_TO_ALLOW = ("an administrator can allow it with plugins.webhook_channel.allowed_hosts "
                "or plugins.webhook_channel.allow_private_networks")


class RefusedAddress(InvalidInput):
    """The URL is malformed, does not resolve, or leads to an internal address."""

    code = "refused_address"


@dataclass(frozen=True)
class AddressPolicy:
    """What the administrator allows beyond public addresses."""

    allow_private: bool = False
    hosts: frozenset[str] = frozenset()  # host names, lower case
    networks: tuple[IPNetwork, ...] = field(default=())

    @classmethod
    def of(cls, allowed: Iterable[str], *, allow_private: bool = False) -> AddressPolicy:
        """From settings: each entry a host name, an address or a network (CIDR)."""
        hosts, networks = set(), []
        for entry in (e.strip().lower() for e in allowed):
            if not entry:
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(allow_private, frozenset(hosts), tuple(networks))

    def allows(self, host: str, address: IPAddress) -> bool:
        return (self.allow_private or is_public(address) or host in self.hosts
                or any(address in n for n in self.networks))


def is_public(address: IPAddress) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    if mapped is not None:  # ::ffff:127.0.0.1 is 127.0.0.1
        address = mapped
    return address.is_global and not address.is_multicast


def describe(address: IPAddress) -> str:
    """What kind of internal address, in words for the error message."""
    mapped = getattr(address, "ipv4_mapped", None) or address
    for test, words in (("is_loopback", "a loopback"), ("is_link_local", "a link-local"),
                        ("is_multicast", "a multicast"), ("is_unspecified", "an unspecified"),
                        ("is_private", "a private")):
        if getattr(mapped, test):
            return words
    return "an internal"


@dataclass(frozen=True)
class Checked:
    """A URL that passed: its host and the address to connect to."""

    url: str
    host: str
    address: IPAddress
    literal: bool  # the URL names the address itself, not a host name


def check_url(url: str, policy: AddressPolicy, *, lookup: Lookup | None = None) -> Checked:
    """Resolve ``url``'s host and refuse it unless every address it has is allowed
    (one refused address is enough: the connection could go to any of them)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise RefusedAddress("url: use an http:// or https:// address")
    host = parts.hostname.lower().rstrip(".")
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        raise RefusedAddress("url: the port must be a number from 1 to 65535") from None
    addresses = _addresses(host, port, lookup or resolve)
    literal = _literal(host) is not None
    for address in addresses:
        if not policy.allows(host, address):
            via = "" if literal else f" ({host} resolves to it)"
            raise RefusedAddress(
                f"url: {address} is {describe(address)} address{via}; webhooks may only "
                f"reach public addresses ({HOW_TO_ALLOW})")
    return Checked(url=url.strip(), host=host, address=addresses[0], literal=literal)


def _addresses(host: str, port: int, lookup: Lookup) -> list[IPAddress]:
    """The host itself when it is an address, else what DNS answers for it."""
    address = _literal(host)
    if address is not None:
        return [address]
    try:
        found = lookup(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as exc:
        raise RefusedAddress(f"url: the host name {host} does not resolve ({exc})") from None
    addresses = list(dict.fromkeys(ipaddress.ip_address(str(f[4][0]).split("%")[0])
                                   for f in found))
    if not addresses:
        raise RefusedAddress(f"url: the host name {host} does not resolve")
    return addresses


def _literal(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None
