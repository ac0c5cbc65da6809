"""The built-in code lists of dossier document types: the common codes and the
US, JP, KR, CN and EP tables (see ``caseforum.doccodes``)."""

from typing import Any

from caseforum import hookimpl
from caseforum.doccodes import BUILTIN_DOC_TYPES


@hookimpl
def register_document_types() -> list[Any]:
    return list(BUILTIN_DOC_TYPES)
