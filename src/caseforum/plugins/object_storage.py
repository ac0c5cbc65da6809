"""The built-in storage backends: ``local`` (a folder, the default) and ``s3``.

See ``caseforum.storage_backends`` for the contract and ``docs/configuration.md``
(``[storage]``) for the settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from caseforum import hookimpl

if TYPE_CHECKING:
    from caseforum.config import Settings
    from caseforum.storage_backends import StorageBackend


@dataclass(frozen=True)
class LocalFactory:
    name: str = "local"

    def open(self, settings: Settings) -> StorageBackend:
        from caseforum.storage import FileStore

        return FileStore(settings.storage_dir)


@dataclass(frozen=True)
class S3Factory:
    name: str = "s3"

    def open(self, settings: Settings) -> StorageBackend:
        from caseforum.s3_storage import S3Store

        return S3Store.from_settings(settings)


@hookimpl
def register_storage_backends() -> list[Any]:
    return [LocalFactory(), S3Factory()]
