"""Exchanges in CaseForum's search: what the two offices of an exchange may find.

Only the exchange's own facts are indexed (application, kind, state, who asked);
parcel contents are encrypted for the two offices and never reach the index.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from .models import IceExchange


def _exchange_ids(events: list[Any]) -> set[str]:
    ids = set()
    for event in events:
        payload = event.payload or {}
        if event.subject_type == "ice_exchange" and event.subject_id:
            ids.add(str(event.subject_id))
        elif payload.get("exchange_id"):
            ids.add(str(payload["exchange_id"]))
    return ids


def exchange_items(session: Session, events: list[Any] | None) -> list[dict[str, Any]]:
    """Items for the exchanges ``events`` change (all of them when ``events`` is None)."""
    query = select(IceExchange)
    wanted: set[str] = set()
    if events is not None:
        wanted = _exchange_ids(events)
        if not wanted:
            return []
        query = query.where(col(IceExchange.id).in_(wanted))
    found = list(session.exec(query))
    items: list[dict[str, Any]] = [{"id": f"exchange:{gone}", "gone": True}
                                   for gone in wanted - {x.id for x in found}]
    for x in found:
        items.append({
            "id": f"exchange:{x.id}", "kind": "exchange",
            "title": f"ICE {x.kind}: {x.application_office} {x.application_display}",
            "body": (f"{x.recipient_office} asks {x.donor_office}, {x.status}. "
                     f"{x.requested_by}"),
            "office": x.application_office, "date": x.updated_at, "url": f"/ice/{x.id}",
            "parties": [x.recipient_office, x.donor_office], "scope": "ice",
        })
    return items
