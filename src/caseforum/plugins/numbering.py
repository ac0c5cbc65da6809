"""Application and publication number formats of the participating offices."""

from typing import Any

from caseforum import hookimpl
from caseforum.numbers import DEFAULT_PATTERNS


@hookimpl
def register_reference_patterns() -> list[Any]:
    return list(DEFAULT_PATTERNS)
