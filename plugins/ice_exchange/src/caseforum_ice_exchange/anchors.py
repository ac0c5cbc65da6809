"""Audit anchors: each chain's length and head hash, kept outside the database.

The chain in ``ice_audit_entry`` proves that no entry was changed, and the
``ice_audit_head`` row that none was cut off the end - unless whoever cut the
entries deleted the head row too (or set it back), which leaves a shorter chain
that verifies.  So after every commit that appended to a chain, its (seq, hash)
is also written to a small file per chain (``<data_dir>/ice/audit-anchors`` or
``plugins.ice_exchange.audit_anchor_dir``), with an HMAC keyed by the instance's
key-encryption secret so that it cannot be forged without that secret.
``caseforum ice verify-audit`` then requires every anchored entry to still be
there with the same hash.

The anchor only moves forwards (a slower commit never writes an older position),
and it is written after the commit, so a rolled-back step never leaves an anchor
the database does not hold.  Restoring the database from an older backup makes
verify-audit report the entries the backup lacks; that is intended.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from sqlmodel import Session

log = logging.getLogger(__name__)
_CHAIN = re.compile(r"^[A-Za-z0-9_]{1,16}$")
_PENDING = "ice_audit_heads"  # session.info key: chain -> (seq, hash) appended, not committed
_REGISTRY: weakref.WeakKeyDictionary[Engine, AuditAnchors] = weakref.WeakKeyDictionary()
_LOCK = threading.Lock()


class AnchorTampered(Exception):
    """An anchor file does not carry a valid HMAC: it was edited or forged."""


@dataclass(frozen=True)
class Anchor:
    chain: str
    seq: int
    hash: str


class AuditAnchors:
    """The anchor files of one instance."""

    def __init__(self, folder: Path, secret: str) -> None:
        self.folder = folder
        self._key = hmac.new(secret.encode(), b"caseforum ice audit anchor",
                             hashlib.sha256).digest()

    def _mac(self, chain: str, seq: int, head: str) -> str:
        return hmac.new(self._key, f"{chain}\n{seq}\n{head}".encode(), hashlib.sha256).hexdigest()

    def _path(self, chain: str) -> Path:
        if not _CHAIN.match(chain):
            raise ValueError(f"bad chain name {chain!r}")
        return self.folder / f"{chain}.json"

    def chains(self) -> list[str]:
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.json") if _CHAIN.match(p.stem))

    def read(self, chain: str) -> Anchor | None:
        """The chain's anchor, ``None`` if it has none; :class:`AnchorTampered` if forged."""
        try:
            data = json.loads(self._path(chain).read_text())
            anchor = Anchor(chain=str(data["chain"]), seq=int(data["seq"]),
                            hash=str(data["hash"]))
            mac = str(data["mac"])
        except FileNotFoundError:
            return None
        except (ValueError, KeyError, TypeError):
            raise AnchorTampered(f"the anchor file of chain {chain} is unreadable") from None
        if anchor.chain != chain or not hmac.compare_digest(
                mac, self._mac(anchor.chain, anchor.seq, anchor.hash)):
            raise AnchorTampered(f"the anchor file of chain {chain} was altered "
                                 "(its signature does not match)")
        return anchor

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with _LOCK, open(self.folder / ".lock", "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)  # other workers on this host
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def record(self, chain: str, seq: int, head: str) -> None:
        """Move the chain's anchor to (seq, head), never backwards."""
        with self._locked():
            try:
                current = self.read(chain)
            except AnchorTampered:
                current = None  # replaced by a good one; verify-audit has said so or will
            if current is not None and current.seq >= seq:
                return
            path = self._path(chain)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"chain": chain, "seq": seq, "hash": head,
                                       "mac": self._mac(chain, seq, head)}))
            os.replace(tmp, path)


def register(engine: Engine, anchors: AuditAnchors) -> None:
    """Anchor the chains of ``engine``'s database in ``anchors`` after each commit."""
    _REGISTRY[engine] = anchors


def for_engine(engine: Any) -> AuditAnchors | None:
    try:
        return _REGISTRY.get(engine)
    except TypeError:
        return None


def remember(session: Session, chain: str, seq: int, head: str) -> None:
    """Called by ``append_audit``: anchor (seq, head) once this transaction commits."""
    session.info.setdefault(_PENDING, {})[chain] = (seq, head)


@event.listens_for(Session, "after_commit")
def _after_commit(session: Any) -> None:
    pending = session.info.pop(_PENDING, None)
    if not pending:
        return
    anchors = for_engine(session.get_bind())
    if anchors is None:
        return
    for chain, (seq, head) in pending.items():
        try:
            anchors.record(chain, seq, head)
        except OSError:  # the entry is committed; the next commit or verify-audit anchors it
            log.exception("could not write the audit anchor of chain %s", chain)


@event.listens_for(Session, "after_rollback")
def _after_rollback(session: Any) -> None:
    session.info.pop(_PENDING, None)
