"""``caseforum-opd-reference`` serves every recorded response at the path it answered,
and each fault switch makes it misbehave the way a remote service does."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from plugins.opd_link.tests.conftest import FIXTURES, Reference

PATHS = {
    "family_application_US_16123456.json": "/patent-family/svc/family/application/US/16123456",
    "family_application_US_16740760.json": "/patent-family/svc/family/application/US/16740760",
    "family_application_US_17193105.json": "/patent-family/svc/family/application/US/17193105",
    "family_publication_EP_1000000.json": "/patent-family/svc/family/publication/EP/1000000",
    "doclist_US_16123456_A.json": "/doc-list/svc/doclist/US/16123456/A",
    "doclist_US_16740760_A.json": "/doc-list/svc/doclist/US/16740760/A",
    "doclist_JP_2017187096_A.json": "/doc-list/svc/doclist/JP/2017187096/A",
    "doccontent_US_201816123456.A_KJM2MWIEDFLYX10_1.pdf":
        "/doc-content/svc/doccontent/US/201816123456.A/KJM2MWIEDFLYX10/1/PDF",
}
FAMILY = PATHS["family_application_US_16123456.json"]


def test_every_recording_is_served_at_its_path(reference: Reference) -> None:
    assert sorted(p.name for p in FIXTURES.iterdir()) == sorted(PATHS)
    for name, path in PATHS.items():
        answer = httpx.get(reference.url + path, timeout=5)
        assert answer.status_code == 200, path
        recorded = (FIXTURES / name).read_bytes()
        assert answer.content == recorded
        if name.endswith(".json"):
            assert isinstance(json.loads(answer.content), dict)
        else:
            assert answer.headers["content-type"] == "application/pdf"


def test_an_unknown_number_or_path_is_404(reference: Reference) -> None:
    assert httpx.get(reference.url + "/doc-list/svc/doclist/US/99999999/A").status_code == 404
    assert httpx.get(reference.url + "/elsewhere").status_code == 404
    assert httpx.get(reference.url + "/doc-list/svc/doclist/US/..%2Fx/A").status_code in (400,
                                                                                          404)


def test_delay(reference: Reference) -> None:
    reference.faults(delay=0.4)
    started = time.monotonic()
    assert httpx.get(reference.url + FAMILY, timeout=5).status_code == 200
    assert time.monotonic() - started >= 0.4


def test_error_rate(reference: Reference) -> None:
    reference.faults(error_rate=1)
    assert httpx.get(reference.url + FAMILY).status_code == 503
    reference.faults(error_rate=0.5)
    statuses = {httpx.get(reference.url + FAMILY).status_code for _ in range(40)}
    assert statuses == {200, 503}


def test_malformed(reference: Reference) -> None:
    reference.faults(malformed=True)
    with pytest.raises(ValueError):
        json.loads(httpx.get(reference.url + FAMILY).content)
    pdf = httpx.get(reference.url + PATHS["doccontent_US_201816123456.A_KJM2MWIEDFLYX10_1.pdf"])
    assert pdf.status_code == 200 and not pdf.content.startswith(b"%PDF-")


def test_down(reference: Reference) -> None:
    before = reference.faults(down=True)["requests"]
    with pytest.raises(httpx.TransportError):
        httpx.get(reference.url + FAMILY, timeout=5)
    assert reference.faults(down=False)["requests"] == before  # nothing was answered
    assert httpx.get(reference.url + FAMILY).status_code == 200


def test_an_unknown_switch_is_refused(reference: Reference) -> None:
    answer = httpx.post(reference.url + "/_faults", json={"slow": 1})
    assert answer.status_code == 400 and "unknown switch 'slow'" in answer.text
