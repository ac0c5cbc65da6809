"""Helpers for forum tests: categories and threads through the real routes."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

from fastapi.testclient import TestClient
from sqlmodel import Session

from caseforum.forum import service
from caseforum.models import Category


def make_category(db: Session, name: str = "Cooling", offices: list[str] | None = None) -> int:
    category = service.create_category(db, name=name, offices=offices or [])
    db.commit()
    return category.id or 0


def start_thread(client: TestClient, csrf: str, category_id: int, title: str,
                 body: str) -> int:
    response = client.post(f"/forum/c/{category_id}/threads",
                           data={"csrf_token": csrf, "title": title, "body": body},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(re.search(r"/threads/(\d+)", response.headers["location"]).group(1))


def reply(client: TestClient, csrf: str, thread_id: int, body: str, **extra: str) -> int:
    response = client.post(f"/threads/{thread_id}/posts",
                           data={"csrf_token": csrf, "body": body, **extra},
                           follow_redirects=False)
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("-", 1)[1])


def wait_for(check: Callable[[], bool], seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.1)
    return check()


__all__ = ["Category", "make_category", "reply", "start_thread", "wait_for"]
