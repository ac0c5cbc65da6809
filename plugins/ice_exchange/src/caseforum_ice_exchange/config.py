"""Settings under ``[plugins.ice_exchange]`` and the runtime that carries them.

``IceRuntime`` bundles what every ICE operation needs (database, wake-up broker,
settings, plugin settings, transfer routes), so the web layer, the CLI and the
delivery loop call the same functions the same way.
"""

from __future__ import annotations

import logging
import shutil
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from pydantic import BaseModel, Field
from sqlalchemy.engine import Engine
from sqlmodel import Session

from caseforum.config import Settings
from caseforum.db import open_session
from caseforum.storage_backends import StorageBackend, open_store

PLUGIN_NAME = "ice_exchange"
log = logging.getLogger(__name__)


class Config(BaseModel):
    """``[plugins.ice_exchange]`` in the settings file."""

    model_config = {"extra": "forbid"}

    key_encryption_secret: str | None = Field(
        default=None, min_length=16,
        description="protects the offices' private keys; defaults to the instance secret",
    )
    max_parcel_mb: int = Field(default=500, ge=1, le=10_000)
    retry_initial_seconds: float = Field(
        default=10.0, gt=0, le=3600,
        description="first wait before a failed delivery is tried again (then doubling)",
    )
    retry_max_seconds: float = Field(
        default=900.0, gt=0, le=86_400, description="longest wait between delivery attempts",
    )
    delivery_timeout_seconds: float = Field(
        default=120.0, gt=0, le=3600,
        description="how long a peer may take to verify a parcel and answer",
    )
    audit_anchor_dir: Path | None = Field(
        default=None,
        description="where each audit chain's length and head hash are kept outside the "
                    "database (default <data_dir>/ice/audit-anchors)",
    )
    poll_seconds: float = Field(
        default=15.0, gt=0, le=3600,
        description="how often the delivery loop looks for due retries when nothing wakes it",
    )


@dataclass
class IceRuntime:
    """Everything an ICE operation needs, made once per app or CLI run."""

    engine: Engine
    settings: Settings
    config: Config
    routes: dict[str, Any] = field(default_factory=dict)
    broker: Any = None
    #: the instance's storage backend (``app.state.store``); opened from the settings
    #: on first use when not given
    backend: Any = None

    @classmethod
    def build(cls, *, engine: Engine, settings: Settings, plugin_config: dict[str, Any],
              routes: list[Any], broker: Any = None, backend: Any = None) -> IceRuntime:
        return cls(engine=engine, settings=settings, config=Config(**plugin_config),
                   routes={r.name: r for r in routes}, broker=broker, backend=backend)

    def __post_init__(self) -> None:
        from .anchors import register

        if self.config.key_encryption_secret or self.settings.secret_key:
            register(self.engine, self.audit_anchors)

    @property
    def audit_anchors(self) -> Any:
        """The :class:`~.anchors.AuditAnchors` of this instance."""
        from .anchors import AuditAnchors

        return AuditAnchors(self.config.audit_anchor_dir or self.store / "audit-anchors",
                            self.secret)

    def session(self) -> Session:
        return open_session(self.engine, self.broker)

    @property
    def secret(self) -> str:
        secret = self.config.key_encryption_secret or self.settings.secret_key
        if not secret:
            raise RuntimeError("no key-encryption secret: set CASEFORUM_SECRET_KEY")
        return secret

    @property
    def max_parcel_bytes(self) -> int:
        return self.config.max_parcel_mb * 1024 * 1024

    @property
    def store(self) -> Path:
        return self.settings.data_dir / "ice"

    def parcel_dir(self, parcel_id: str) -> Path:
        """Where a parcel's ciphertext lives; ids are validated UUIDs, never raw input."""
        canonical = str(uuid.UUID(parcel_id))
        return self.store / "parcels" / canonical[:2] / canonical

    # Where the parts live.  A parcel is always written to its folder first; with a
    # backend that keeps blobs elsewhere (an S3 bucket) the parts are then sent there
    # under the same relative name, before the parcel's row is committed, and the
    # folder removed, so every host reads them from the bucket.

    @property
    def objects(self) -> StorageBackend:
        if self.backend is None:
            self.backend = open_store(self.settings)
        backend: StorageBackend = self.backend
        return backend

    @staticmethod
    def parcel_prefix(parcel_id: str) -> str:
        canonical = str(uuid.UUID(parcel_id))
        return f"ice/parcels/{canonical[:2]}/{canonical}/"

    def part_opener(self, parcel_id: str, part: str) -> Callable[[], BinaryIO]:
        """Opens one part of a stored parcel, wherever the backend keeps it."""
        if self.objects.local_paths:
            path = self.parcel_dir(parcel_id) / f"{part}.bin"
            return lambda: path.open("rb")
        key = f"{self.parcel_prefix(parcel_id)}{part}.bin"
        return lambda: self.objects.open_blob(key)

    def offload(self, parcel_id: str) -> None:
        """Send a parcel's freshly written folder to the backend (nothing to do locally)."""
        if self.objects.local_paths:
            return
        folder = self.parcel_dir(parcel_id)
        for path in sorted(folder.glob("*.bin")):
            self.objects.put_blob(self.parcel_prefix(parcel_id) + path.name, path)
        shutil.rmtree(folder, ignore_errors=True)

    def forget(self, parcel_id: str) -> None:
        """Remove what a failed send or receipt stored of a parcel (folder and blobs)."""
        shutil.rmtree(self.parcel_dir(parcel_id), ignore_errors=True)
        if not self.objects.local_paths:
            try:
                self.objects.delete_blobs(self.parcel_prefix(parcel_id))
            except Exception:  # the error being handled matters more; the sweep is manual
                log.exception("parcel %s: its parts could not be removed from the store",
                              parcel_id)

    def new_staging_dir(self) -> Path:
        """A private folder on the same file system as the store (so moves are renames)."""
        folder = self.store / "staging" / uuid.uuid4().hex
        folder.mkdir(parents=True, mode=0o700)
        return folder
