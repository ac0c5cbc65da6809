"""Blocks that bots attach to their posts, rendered per viewer.

The renderer renders each distinct block once per page (``Renderer.embed``)
and has already looked up the dossiers of ``dossier`` blocks with the page's
other mentions, so their cards come from the page's batch as well.

A bot's answer is stored as short text plus *embeds* (``{"kind": ...}``), so
that what it reveals is decided when each examiner reads it, by the same
rules as everything else: an office that may not see a document never sees
it, in a bot's answer either.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from markupsafe import Markup

from caseforum.forum.view import embed_key
from caseforum.models import Application

if TYPE_CHECKING:
    from caseforum.forum.view import Renderer


def family_citations(renderer: Renderer, app: Application,
                     members: list[Application] | None = None) -> list[dict[str, Any]]:
    """Every family member's visible citations, grouped by cited document.
    ``members``: the visible family, when the caller has it already."""
    access = renderer.access
    if members is None:
        members = access.family(app)
    docs = access.documents(members)
    by_member = {m.id: m for m in members}
    grouped: dict[str, dict[str, Any]] = {}
    for c in access.citations(members, docs):
        key = c.cited_number or c.cited.strip().lower()
        entry = grouped.setdefault(key, {"cited": c.cited, "by": [], "offices": set()})
        member = by_member.get(c.application_id)
        entry["by"].append({"office": c.citing_office, "category": c.category,
                            "claims": c.claims, "phase": c.phase,
                            "number": member.display_number if member else ""})
        entry["offices"].add(c.citing_office)
    rows = sorted(grouped.values(), key=lambda e: (-len(e["offices"]), e["cited"]))
    for row in rows:
        row["offices"] = sorted(row["offices"])
    return rows


def render_embed(renderer: Renderer, spec: dict[str, Any]) -> Markup | None:
    kind = spec.get("kind")
    env = renderer.env
    key = embed_key(spec)
    if key is not None:
        app = renderer.app_for(*key)
        if app is None:
            # the same words for a missing dossier and a hidden one, naming only
            # what the question said (bots that set no ``asked`` get nothing)
            asked = str(spec.get("asked") or "")
            return Markup(env.get_template("partials/embed_none.html").render(
                asked=asked)) if asked else None
        if kind == "dossier":
            return renderer.card(*key, "")
        members = renderer.access.family(app)
        rows = family_citations(renderer, app, members)
        return Markup(env.get_template("partials/family_citations.html").render(
            app=app, rows=rows, members=members))
    if kind == "document":
        found = renderer.access.document(int(spec.get("document_id", 0)))
        if found is None:
            return None
        doc, app = found
        return Markup(env.get_template("partials/new_document.html").render(
            doc=doc, app=app, label=spec.get("label", doc.code)))
    return None
