"""Office keys at rest and the peers we trust.

An office hosted on this instance has a row in ``ice_office_key``: its public keys
in the clear and both private keys wrapped under a key-encryption key (KEK) that
is derived from a deployment secret which never enters the database. A peer office
(one running its own instance) has a row in ``ice_peer`` with its public keys and
inbox address, imported from the JSON its administrator exported.
"""

from __future__ import annotations

import base64
import hashlib
import threading
from typing import Any
from urllib.parse import urlsplit

import nacl.public
import nacl.signing
from sqlmodel import Session, select

from caseforum.models import Office
from caseforum.models.office import IceRole

from . import crypto
from .audit import append_audit
from .errors import IceError, NotFound
from .models import INSTANCE_CHAIN, IceOfficeKey, IcePeer

_CACHE_LOCK = threading.Lock()
_UNWRAPPED: dict[tuple[str, str], crypto.OfficeKeys] = {}
"""Unwrapped keys by (blob digest, secret digest): deriving the KEK costs ~64 MiB
of Argon2id work, far too much per request. Keyed by digests, never the secret."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


def _office(session: Session, code: str) -> Office:
    office = session.get(Office, code.strip().upper())
    if office is None:
        raise NotFound(f"unknown office {code!r}: see 'caseforum offices list'")
    return office


def generate_keys(session: Session, *, office_code: str, secret: str,
                  actor: str = "cli") -> IceOfficeKey:
    """Make the office's key pairs and store them wrapped; refuses to replace keys.

    Replacing keys would make every parcel sealed to the old key unreadable and
    every peer's copy of our public key wrong, so it is not a side effect of a
    repeated command.
    """
    office = _office(session, office_code)
    existing = session.get(IceOfficeKey, office.code)
    if existing is not None:
        raise IceError(f"office {office.code} already has keys (signing key "
                       f"{crypto.fingerprint(_unb64(existing.ed25519_public))}); "
                       "they are not replaced", code="exists", status=409)
    if session.get(IcePeer, office.code) is not None:
        raise IceError(f"office {office.code} is configured as a peer on another instance; "
                       "an office is either hosted here or a peer", code="exists", status=409)
    keys = crypto.generate_office_keys()
    salt = crypto.new_kek_salt()
    wrapped = crypto.wrap_private_keys(keys, crypto.derive_kek(secret, salt))
    row = IceOfficeKey(
        office_code=office.code,
        x25519_public=_b64(bytes(keys.encryption_public)),
        ed25519_public=_b64(bytes(keys.verify_key)),
        wrapped_private=_b64(wrapped),
        kek_salt=_b64(salt),
    )
    session.add(row)
    with _CACHE_LOCK:  # the KEK was just derived: spare the first use a second derivation
        _UNWRAPPED[_cache_key(row, secret)] = keys
    append_audit(session, chain=office.code, action="keys.generated", actor=actor,
                 detail=f"encryption {keys.encryption_fingerprint}, "
                        f"signing {keys.signing_fingerprint}")
    return row


def local_offices(session: Session) -> set[str]:
    """Offices whose private keys this instance holds."""
    return set(session.exec(select(IceOfficeKey.office_code)).all())


def is_local(session: Session, office_code: str) -> bool:
    return session.get(IceOfficeKey, office_code) is not None


def _cache_key(row: IceOfficeKey, secret: str) -> tuple[str, str]:
    blob_digest = hashlib.sha256((row.wrapped_private + row.kek_salt).encode()).hexdigest()
    return blob_digest, hashlib.sha256(secret.encode()).hexdigest()


def private_keys(session: Session, *, office_code: str, secret: str) -> crypto.OfficeKeys:
    """Unwrap an office's private keys (cached per process)."""
    row = session.get(IceOfficeKey, office_code)
    if row is None:
        raise IceError(f"office {office_code} has no keys on this instance: "
                       f"run 'caseforum keys generate --office {office_code}'",
                       code="no_keys", status=409)
    cache_key = _cache_key(row, secret)
    with _CACHE_LOCK:
        cached = _UNWRAPPED.get(cache_key)
    if cached is not None:
        return cached
    kek = crypto.derive_kek(secret, _unb64(row.kek_salt))
    try:
        keys = crypto.unwrap_private_keys(_unb64(row.wrapped_private), kek)
    except crypto.KeyUnwrapError as exc:
        raise IceError(f"office {office_code}: {exc} (was the instance secret or "
                       "plugins.ice_exchange.key_encryption_secret changed?)",
                       code="key_unwrap", status=500) from None
    with _CACHE_LOCK:
        _UNWRAPPED[cache_key] = keys
    return keys


def _public_from(office: str, x25519: str, ed25519: str) -> crypto.PublicOfficeKeys:
    return crypto.PublicOfficeKeys(office, nacl.public.PublicKey(_unb64(x25519)),
                                   nacl.signing.VerifyKey(_unb64(ed25519)))


def public_keys(session: Session, office_code: str) -> crypto.PublicOfficeKeys | None:
    """An office's public keys, hosted here or a peer; None when unknown."""
    row = session.get(IceOfficeKey, office_code)
    if row is not None:
        return _public_from(office_code, row.x25519_public, row.ed25519_public)
    peer = session.get(IcePeer, office_code)
    if peer is not None:
        return _public_from(office_code, peer.x25519_public, peer.ed25519_public)
    return None


def peer_public_keys(session: Session, office_code: str) -> crypto.PublicOfficeKeys | None:
    """Only a configured peer's keys: what the inbox may trust."""
    peer = session.get(IcePeer, office_code)
    if peer is None:
        return None
    return _public_from(office_code, peer.x25519_public, peer.ed25519_public)


def export_keys(session: Session, *, office_code: str) -> dict[str, Any]:
    """The public key record another instance imports with ``caseforum peers add``."""
    office = _office(session, office_code)
    row = session.get(IceOfficeKey, office.code)
    if row is None:
        raise IceError(f"office {office.code} has no keys on this instance: "
                       f"run 'caseforum keys generate --office {office.code}'",
                       code="no_keys", status=409)
    x_raw, ed_raw = _unb64(row.x25519_public), _unb64(row.ed25519_public)
    return {
        "version": 1,
        "office": office.code,
        "x25519": row.x25519_public,
        "ed25519": row.ed25519_public,
        "x25519_fingerprint": crypto.fingerprint(x_raw),
        "ed25519_fingerprint": crypto.fingerprint(ed_raw),
    }


def fingerprints(session: Session, office_code: str) -> dict[str, str] | None:
    keys = public_keys(session, office_code)
    if keys is None:
        return None
    return {"encryption": keys.encryption_fingerprint, "signing": keys.signing_fingerprint}


def add_peer(session: Session, *, office_code: str, url: str, record: Any,
             ice_role: str | None = None, actor: str = "cli") -> IcePeer:
    """Trust a peer office's public keys and push its parcels to ``url``.

    Re-adding a peer replaces its keys and address (key rotation on their side);
    the audit log keeps both fingerprints.
    """
    office = _office(session, office_code)
    try:
        imported = crypto.import_public(record)
    except ValueError as exc:
        raise IceError(f"key file: {exc}", code="bad_keys") from None
    if imported.office.strip().upper() != office.code:
        raise IceError(f"the key file is for office {imported.office}, not {office.code}",
                       code="bad_keys")
    if session.get(IceOfficeKey, office.code) is not None:
        raise IceError(f"office {office.code} is hosted on this instance (it has keys here); "
                       "a peer is an office on another instance", code="exists", status=409)
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
        raise IceError(f"peer URL {url!r} must be the base address of the peer's CaseForum, "
                       "e.g. https://caseforum.example.org", code="bad_url")
    clean_url = url.strip().rstrip("/")
    peer = session.get(IcePeer, office.code)
    previous = peer.ed25519_public if peer else None
    if peer is None:
        peer = IcePeer(office_code=office.code, url=clean_url, x25519_public="", ed25519_public="")
    peer.url = clean_url
    peer.x25519_public = _b64(bytes(imported.encryption_public))
    peer.ed25519_public = _b64(bytes(imported.verify_key))
    session.add(peer)
    office.peer_url = clean_url
    if ice_role is not None:
        try:
            office.ice_role = IceRole(ice_role)
        except ValueError:
            raise IceError(f"unknown ICE role {ice_role!r}: use donor, recipient or both",
                           code="bad_role") from None
    elif office.ice_role == IceRole.none:
        office.ice_role = IceRole.both
    session.add(office)
    verb = "replaced" if previous and previous != peer.ed25519_public else (
        "confirmed" if previous else "added")
    append_audit(session, chain=INSTANCE_CHAIN, action="peer." + verb, actor=actor,
                 detail=f"{office.code} at {clean_url}: encryption "
                        f"{imported.encryption_fingerprint}, signing "
                        f"{imported.signing_fingerprint}")
    return peer


def list_peers(session: Session) -> list[IcePeer]:
    return list(session.exec(select(IcePeer).order_by(IcePeer.office_code)))  # type: ignore[arg-type]
