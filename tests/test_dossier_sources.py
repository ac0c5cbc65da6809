"""The dossier-source contract holds: the host checks each source at load, guards
every call, and one broken source never takes the number box or the admin page down."""

from __future__ import annotations

import time
from datetime import date
from typing import Any

import pytest
from fastapi.testclient import TestClient

from caseforum import hookimpl
from caseforum.app import create_app
from caseforum.config import Settings
from caseforum.plugin_host import PluginHost
from caseforum.sources import (
    GuardedSource,
    NumberMatch,
    SourceApplication,
    SourceDossier,
    SourceHealth,
    SourceUnavailable,
    contract_problem,
)
from tests.conftest import login


class Good:
    name = "good"
    label = "Good source"

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        if "55/555,555" not in number:
            return []
        return [NumberMatch("US", "55555555", "55/555,555", "application", "good-1")]

    def fetch_dossier(self, ref: str) -> SourceDossier:
        member = SourceApplication("US", "55555555", "55/555,555", date(2021, 3, 4),
                                   title="Answered by the good source", documents=())
        return SourceDossier(ref, "US", "55555555", (member,))

    def stream_document(self, ref: str) -> list[bytes]:
        return [b"%PDF-1.4\n%%EOF\n"]


class Raising(Good):
    name = "raising"

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        raise RuntimeError("remote index corrupt")


class Slow(Good):
    name = "slow"
    timeout_seconds = 0.2

    def lookup(self, number: str, *, office: str | None = None) -> list[NumberMatch]:
        time.sleep(1)
        return []


class WrongShape(Good):
    name = "wrong_shape"

    def lookup(self, number: str, *, office: str | None = None) -> Any:
        return {"office": "US"}  # a dict, not a list of NumberMatch


class OldSignature:
    """The contract of the old docs: ``lookup(number)`` and ``fetch_document``."""

    name = "old_signature"

    def lookup(self, number: str) -> None:
        return None

    def fetch_document(self, ref: str) -> bytes:
        return b""


def _plugin(*sources: Any) -> Any:
    class P:
        @hookimpl
        def register_dossier_sources(self) -> list[Any]:
            return list(sources)
    return P()


def test_contract_check_names_what_is_wrong() -> None:
    assert contract_problem(Good()) == ""
    assert "cannot be called as lookup(number, *, office=None)" in contract_problem(OldSignature())
    no_fetch = type("F", (Good,), {"fetch_dossier": None})()
    assert "has no fetch_dossier(ref) method" in contract_problem(no_fetch)
    bad_lookup = type("B", (Good,), {"lookup": lambda self, number: []})()
    assert "cannot be called as lookup(number, *, office=None)" in contract_problem(bad_lookup)
    assert "name" in contract_problem(type("N", (Good,), {"name": "Has Spaces"})())


def test_sources_are_checked_at_load_and_a_refused_one_is_never_called() -> None:
    host = PluginHost()
    host.load(use_entry_points=False)
    host.add(_plugin(OldSignature(), Good()), name="mixed")
    health = {h.name: h for h in host.source_health()}
    assert health["old_signature"].state == "wrong contract"
    assert [type(s).__name__ for s in host.dossier_sources()] == ["Good", "HostedRepository"]
    with pytest.raises(SourceUnavailable, match="not usable"):
        host.source("old_signature").lookup("x")  # type: ignore[union-attr]


@pytest.mark.parametrize("source, error", [
    (Raising(), "RuntimeError: remote index corrupt"),
    (Slow(), "no answer within 0.2 s"),
    (WrongShape(), "answered dict"),
])
def test_a_failing_call_marks_the_source_unhealthy(source: Any, error: str) -> None:
    guard = GuardedSource(source, SourceHealth(source.name, "p", source.name))
    started = time.monotonic()
    with pytest.raises(SourceUnavailable):
        guard.lookup("US 55/555,555")
    assert time.monotonic() - started < 0.9  # the slow one is cut off at its time-out
    assert guard.health.state == "failing" and error in guard.health.last_error
    assert guard.health.last_error_at is not None and guard.health.last_success is None


def test_the_circuit_opens_after_three_failures_and_closes_after_a_success() -> None:
    guard = GuardedSource(Raising(), SourceHealth("raising", "p", "Raising"), cooldown=0.3)
    for _ in range(3):
        with pytest.raises(SourceUnavailable, match="failed"):
            guard.lookup("1")
    assert guard.health.state == "circuit open"
    with pytest.raises(SourceUnavailable, match="tried again in"):
        guard.lookup("1")
    assert guard.health.calls == 3  # the fourth call never reached the source
    time.sleep(0.35)
    guard.source = Good()  # the remote side recovered
    assert guard.lookup("US 55/555,555")[0].ref == "good-1"
    assert guard.health.state == "ok" and guard.health.median_ms is not None


def test_broken_sources_leave_the_number_box_and_admin_page_working(
        settings: Settings) -> None:
    host = PluginHost()
    host.load()
    host.add(_plugin(Raising(), Slow(), WrongShape(), OldSignature(), Good()), name="mixed")

    class Silent:  # a plugin that implements no hook at all
        pass

    host.add(Silent(), name="silent")
    app = create_app(settings, plugins=host)
    with TestClient(app) as client:
        login(client, "kr.examiner")
        page = client.get("/dossiers", params={"q": "US 55/555,555"})
        assert page.status_code == 200 and "Answered by the good source" in page.text
        held = client.get("/dossiers", params={"q": "JP 2019-041872"})
        assert held.status_code == 200
        login(client, "admin")
        admin = client.get("/admin/plugins").text

    def row(element_id: str) -> str:
        part = admin[admin.index(f'id="{element_id}"'):]
        return part[:part.index("</tr>")]

    assert "RuntimeError: remote index corrupt" in row("source-raising")
    assert "no answer within 0.2 s" in row("source-slow")
    assert "answered dict" in row("source-wrong_shape")
    assert "wrong contract" in row("source-old_signature")
    good = row("source-good")
    assert ">ok<" in good and " ms</td>" in good and "—" in good  # no error yet
    assert "no hooks" in row("plugin-silent")
