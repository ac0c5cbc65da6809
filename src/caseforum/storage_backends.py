"""Where document files and ICE parcels are kept: the storage backend contract.

The rest of CaseForum talks to one object, ``app.state.store``, that answers
:class:`StorageBackend`.  The backend is chosen by the ``[storage] backend`` setting
among those the plugins register (hook ``register_storage_backends``); the built-in
plugin ``caseforum.plugins.object_storage`` registers ``local`` (the folder
``<data_dir>/files``, :class:`caseforum.storage.FileStore`, the default) and ``s3``
(an S3-compatible bucket, :class:`caseforum.s3_storage.S3Store`).

Every backend keeps the same promises: content is addressed by its SHA-256 and
stored once; the type is told from the first bytes and the size limit is enforced
while streaming (:func:`caseforum.storage.spool`), so a refused upload leaves
nothing behind; downloads are streamed, never read whole into memory.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol, runtime_checkable

if TYPE_CHECKING:
    from caseforum.config import Settings
    from caseforum.storage import StoredFile


@runtime_checkable
class StorageBackend(Protocol):
    """What the application needs of a place to keep files."""

    #: the ``[storage] backend`` value that chose it
    name: str
    #: ``True`` when a blob's key is also its path under the data folder, so a file
    #: written there is stored already (the ICE plugin then keeps its folders as they are)
    local_paths: bool

    def put(self, stream: BinaryIO, *, max_bytes: int) -> StoredFile:
        """Store ``stream`` under its SHA-256; refuse empty, oversize or unknown types
        (:class:`caseforum.storage.StorageError`, 4xx) without keeping any of it."""

    def exists(self, sha256: str) -> bool: ...

    def iter_bytes(self, sha256: str) -> Iterator[bytes]:
        """The stored bytes, chunk by chunk."""

    def local_copy(self, sha256: str) -> contextlib.AbstractContextManager[Path]:
        """A path to read the content from (text extraction needs a seekable file)."""

    def discard(self, stored: StoredFile) -> None:
        """Undo a ``put`` whose database write failed (only content it created)."""

    def stale_content(self, cutoff: float) -> Iterator[tuple[str, int]]:
        """``(sha256, size)`` of content last written before ``cutoff`` (epoch seconds)."""

    def remove_if_stale(self, sha256: str, cutoff: float) -> bool:
        """Remove content unless it was written again since ``cutoff``; ``True`` if removed."""

    def sweep_temporary(self, cutoff: float) -> tuple[int, int]:
        """Remove leftovers of interrupted uploads older than ``cutoff``: (count, bytes)."""

    def put_blob(self, key: str, path: Path) -> None:
        """Keep the file at ``path`` under ``key`` (a ``/``-separated name)."""

    def open_blob(self, key: str) -> BinaryIO: ...

    def delete_blobs(self, prefix: str) -> None:
        """Remove every blob whose key starts with ``prefix``."""

    def blob_keys(self, prefix: str) -> Iterator[str]:
        """The keys that start with ``prefix``, content included (``files/ab/cd/<sha>``
        is a blob key too); for ``caseforum backup``."""

    def check(self) -> str:
        """``"ok"`` or a short reason why the store cannot be used now (``/readyz``)."""

    def prepare(self) -> str:
        """Make what the store needs (``caseforum init``); says what it did."""


class StorageBackendFactory(Protocol):
    """What ``register_storage_backends`` returns a list of."""

    name: str

    def open(self, settings: Settings) -> StorageBackend: ...


def builtin_factories() -> list[Any]:
    from caseforum.plugins import object_storage

    return object_storage.register_storage_backends()


def open_store(settings: Settings, factories: list[Any] | None = None) -> StorageBackend:
    """The backend the settings name, made by the first factory of that name: the
    plugins' (``factories``) first, then the built-in ones, which are always there
    (a host loaded without the ``object_storage`` plugin still has ``local``)."""
    from caseforum.config import SettingsError

    found = [*(factories or []), *builtin_factories()]
    wanted = settings.storage.backend
    for factory in found:
        if getattr(factory, "name", None) == wanted:
            store: StorageBackend = factory.open(settings)
            return store
    names = ", ".join(sorted({str(getattr(f, "name", "?")) for f in found}))
    raise SettingsError(f"bad setting CASEFORUM_STORAGE__BACKEND: no storage backend called "
                        f"{wanted!r} (available: {names})")


def part_opener(store: StorageBackend, key: str) -> Callable[[], BinaryIO]:
    """A callable that opens the blob ``key`` each time it is called."""
    return lambda: store.open_blob(key)
