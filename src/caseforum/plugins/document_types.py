"""The standard code list of dossier document types."""

from typing import Any

from caseforum import hookimpl
from caseforum.doccodes import DEFAULT_DOC_TYPES


@hookimpl
def register_document_types() -> list[Any]:
    return list(DEFAULT_DOC_TYPES)
