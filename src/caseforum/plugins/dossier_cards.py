"""Dossier cards: the box a number in a post turns into, for each viewer."""

from __future__ import annotations

from typing import Any

from caseforum import hookimpl


@hookimpl
def render_reference(reference: Any, viewer: Any) -> str | None:
    app = getattr(reference, "app", None)
    if app is None:
        return None
    access = reference.access
    family = access.family(app)
    documents = access.documents([app])
    latest = sorted(documents, key=lambda d: (d.date, d.id), reverse=True)[:3]
    citations = access.citations([app], documents)
    return reference.env.get_template("partials/dossier_card.html").render(
        app=app, family_size=len(family), latest=latest, citation_count=len(citations))
