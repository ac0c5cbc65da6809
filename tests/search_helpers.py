"""Helpers for the search tests: bring the index up to date, ask the API."""

from __future__ import annotations

from typing import Any

from caseforum.search.indexer import SearchIndexer


def index_now(app: Any) -> None:
    """Apply every pending event to the app's index now (the background consumer
    would, a moment later)."""
    for consumer in app.state.consumers.consumers:
        if isinstance(consumer, SearchIndexer):
            consumer.process(app.state.engine)


def found(client: Any, q: str, **params: str) -> dict[str, Any]:
    answer = client.get("/api/v1/search", params={"q": q, **params})
    assert answer.status_code == 200, answer.text
    return answer.json()
