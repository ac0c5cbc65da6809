"""Documents in two languages: a translation names its original; the pair is shown side
by side, offered in Compare, and labelled with its languages everywhere, never revealing
a document the viewer may not see."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, inspect, text
from sqlmodel import select

from caseforum.models import Document, Event
from caseforum.plugin_host import PluginHost
from tests.conftest import login
from tests.dossier_helpers import (
    dossier_json,
    new_dossier,
    package_bytes,
    pdf_bytes,
    token_for,
)

JP_NUMBER = "2020-098765"
ORIGINAL_TEXT = "拒絶理由通知書 請求項1に係る発明は進歩性を有しない。"


def _upload(client: TestClient, headers: dict[str, str], content: bytes, *,
            language: str, office: str = "JP", number: str = JP_NUMBER,
            **fields: Any) -> Any:
    data = {"code": "A131", "date": "2021-03-01", "language": language,
            "visibility": "offices", **{k: str(v) for k, v in fields.items()}}
    return client.post(f"/api/v1/dossiers/{office}/{number}/documents", headers=headers,
                       data=data, files={"file": ("notice.pdf", content, "application/pdf")})


@pytest.fixture
def jp(client: TestClient, db) -> dict[str, str]:
    headers = token_for(db, "jp.admin")
    new_dossier(client, headers, "JP", JP_NUMBER, publication_number="JP 2021-012345 A",
                title="Fin spacing")
    return headers


def _pair(client: TestClient, headers: dict[str, str], *, original_visibility: str = "offices",
          original_offices: str = "", translation_visibility: str = "offices"
          ) -> tuple[dict[str, Any], dict[str, Any]]:
    # the original's text in Latin letters: the test PDF font has no kana
    original = _upload(client, headers, pdf_bytes("Notice of Reasons for Refusal (JA)",
                                                  "Kyozetsu riyu tsuchisho"),
                       language="ja", code="A131-JP", visibility=original_visibility,
                       offices=original_offices)
    assert original.status_code == 201, original.text
    translation = _upload(client, headers, pdf_bytes("Notice of Reasons for Refusal",
                                                      "Claim 1 lacks an inventive step."),
                          language="en", visibility=translation_visibility,
                          translation_of=original.json()["id"])
    assert translation.status_code == 201, translation.text
    return original.json(), translation.json()


def _count(db, model) -> int:
    db.expire_all()
    return db.exec(select(func.count()).select_from(model)).one()


def test_a_translation_naming_its_original_is_shown_beside_it(client, app, db, jp) -> None:
    original, translation = _pair(client, jp)
    assert translation["translation_of"] == original["id"] and translation["is_translation"]
    assert translation["language"] == "en" and translation["translations"] == []

    body = client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}", headers=jp).json()
    docs = {d["id"]: d for d in body["documents"]}
    assert docs[original["id"]]["language"] == "ja"
    assert docs[original["id"]]["translations"] == [translation["id"]]
    assert docs[original["id"]]["translation_of"] is None
    assert docs[translation["id"]]["translation_of"] == original["id"]
    one = client.get(f"/api/v1/documents/{original['id']}", headers=jp).json()
    assert (one["translations"], one["translation_of"]) == ([translation["id"]], None)

    page = TestClient(app)
    login(page, "kr.examiner")  # another office: JP documents for all offices
    for shown in (original["id"], translation["id"]):
        html = page.get(f"/documents/{shown}").text
        cols = html.split('class="pair-cols"', 1)[1]
        # original left, translation right, each through the sandboxed content route
        assert cols.index(f'/documents/{original["id"]}/content') < \
            cols.index(f'/documents/{translation["id"]}/content')
        assert "Japanese" in cols and "English" in cols
        assert f'/compare?a={original["id"]}&amp;b={translation["id"]}' in html
    listing = page.get(f"/dossiers/JP/{JP_NUMBER}").text
    assert "translation of" in listing and f'/documents/{original["id"]}?with=' \
        f'{translation["id"]}' in listing
    newest = page.get("/").text.split("New documents", 1)[1]  # the home page's list too
    assert "English (en), translation" in newest and "Japanese (ja)" in newest
    compare = page.get(f"/compare?a={translation['id']}&b={original['id']}").text
    heads = compare.split('class="compare-heads"', 1)[1]
    assert heads.index("Original") < heads.index("Translation")  # the original left
    assert "line by line" in compare and "<del>" not in compare


def test_the_upload_form_pairs_and_the_listing_labels_languages(as_user, client, jp) -> None:
    original = _upload(client, jp, pdf_bytes("Decision to grant"), language="ja",
                       code="A01-JP").json()
    web, csrf = as_user("jp.admin")
    form = web.get(f"/dossiers/JP/{JP_NUMBER}").text
    assert f'<option value="{original["id"]}">' in form  # the originals to choose from
    sent = web.post(f"/dossiers/JP/{JP_NUMBER}/documents",
                    data={"csrf_token": csrf, "code": "A01", "date": "2021-03-01",
                          "language": "EN", "translation_of": str(original["id"]),
                          "visibility": "offices"},
                    files={"file": ("grant.pdf", pdf_bytes("Decision to grant a patent"),
                                    "application/pdf")}, follow_redirects=False)
    assert sent.status_code == 303, sent.text
    docs = client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}", headers=jp).json()["documents"]
    [made] = [d for d in docs if d["translation_of"] == original["id"]]
    assert made["language"] == "en" and made["is_translation"]
    listing = web.get(f"/dossiers/JP/{JP_NUMBER}").text
    assert listing.count('class="chip lang"') == 2  # every row says its language
    ja = web.get(f"/dossiers/JP/{JP_NUMBER}", headers={"Accept-Language": "ja"}).text
    assert "日本語 (ja)" in ja and "英語 (en)、翻訳文" in ja and "原文：" in ja  # labels translated
    # a bad choice in the form: the error names the field, nothing is stored
    again = web.post(f"/dossiers/JP/{JP_NUMBER}/documents",
                     data={"csrf_token": csrf, "code": "A01", "date": "2021-03-01",
                           "language": "ja", "translation_of": str(original["id"])},
                     files={"file": ("x.pdf", pdf_bytes("x"), "application/pdf")})
    assert again.status_code == 422 and "translation_of" in again.text
    assert len(client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}",
                          headers=jp).json()["documents"]) == 2


def test_a_pair_never_reveals_an_original_the_viewer_may_not_see(app, client, db,
                                                                 jp) -> None:
    """The original restricted to JP, its translation for every office: CN reads the
    translation alone, with no trace of the original."""
    original, translation = _pair(client, jp, original_visibility="restricted",
                                  original_offices="JP")
    cn_api = token_for(db, "cn.examiner", "dossiers:read")
    body = client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}", headers=cn_api).json()
    assert [d["id"] for d in body["documents"]] == [translation["id"]]
    [seen] = body["documents"]
    assert seen["translation_of"] is None and seen["translations"] == []
    alone = client.get(f"/api/v1/documents/{translation['id']}", headers=cn_api).json()
    assert alone["translation_of"] is None
    assert client.get(f"/api/v1/documents/{original['id']}", headers=cn_api).status_code == 404

    cn = TestClient(app)
    login(cn, "cn.examiner")
    secret = re.compile(rf"/documents/{original['id']}\b|A131-JP|Japanese|pair-cols")
    for path in (f"/documents/{translation['id']}", f"/dossiers/JP/{JP_NUMBER}",
                 f"/documents/{translation['id']}?with={original['id']}",
                 f"/dossiers/JP/{JP_NUMBER}/timeline"):
        page = cn.get(path)
        assert page.status_code == 200 and not secret.search(page.text), path
    assert cn.get(f"/compare?a={translation['id']}&b={original['id']}").status_code == 404

    jp_page = TestClient(app)
    login(jp_page, "jp.examiner")  # the office it is restricted to sees the pair
    assert "pair-cols" in jp_page.get(f"/documents/{translation['id']}").text


@pytest.fixture
def elsewhere(client: TestClient, db) -> dict[str, int]:
    """Documents a JP uploader may not name: one of another dossier it sees, and one of
    a dossier it may see whose document is restricted to CN (hidden from JP)."""
    kr = token_for(db, "kr.examiner")
    new_dossier(client, kr, "KR", "10-2020-0012345", publication_number="KR 10-2021-0054321 A")
    ids = {}
    for name, visibility, offices in (("other", "offices", ""), ("hidden", "restricted",
                                                                  "CN")):
        r = _upload(client, kr, pdf_bytes(name), language="ko", office="KR",
                    number="10-2020-0012345", visibility=visibility, offices=offices)
        assert r.status_code == 201, r.text
        ids[name] = r.json()["id"]
    assert client.get(f"/api/v1/documents/{ids['hidden']}",
                      headers=token_for(db, "jp.examiner")).status_code == 404
    return ids


@pytest.mark.parametrize(("case", "fragment"), [
    ("other dossier", "for you"), ("hidden", "for you"), ("nonexistent", "for you"),
    ("itself", "for you"), ("a translation", "a translation itself"),
    ("same language", "in ja too")])
def test_a_bad_translation_of_is_refused_and_nothing_stored(client, db, jp, elsewhere,
                                                            data_dir, case,
                                                            fragment) -> None:
    original, translation = _pair(client, jp)
    next_id = db.exec(select(func.max(Document.id))).one() + 1
    named = {"other dossier": elsewhere["other"], "hidden": elsewhere["hidden"],
             "nonexistent": 9_999_999, "itself": next_id, "a translation": translation["id"],
             "same language": original["id"]}[case]
    before = (_count(db, Document), _count(db, Event),
              sorted(p.name for p in (data_dir / "files").rglob("*.pdf")))
    answer = _upload(client, jp, pdf_bytes(f"refused {case}"), language="ja",
                     translation_of=named)
    assert answer.status_code == 422, answer.text
    detail = answer.json()["detail"]
    assert detail.startswith("translation_of: ") and fragment in detail, detail
    after = (_count(db, Document), _count(db, Event),
             sorted(p.name for p in (data_dir / "files").rglob("*.pdf")))
    assert after == before
    if case == "hidden":  # hidden reads exactly as missing: no hint that it exists
        missing = _upload(client, jp, pdf_bytes("x"), language="en", translation_of=9_999_999)
        assert detail.replace(str(named), "N") == \
            missing.json()["detail"].replace("9999999", "N")


def test_a_package_pairs_by_path_and_refuses_a_bad_one(client, db, jp) -> None:
    entry = dossier_json("JP", "2020-055555", publication_number="JP 2021-066666 A")
    files = {"docs/a131-jp.pdf": pdf_bytes("Original (JA)"),
             "docs/a131.pdf": pdf_bytes("Translation (EN)")}
    bad = {"office": "JP", "dossiers": [{**entry, "documents": [
        {"file": "docs/a131.pdf", "code": "A131", "date": "2021-01-05", "language": "en",
         "translation_of": "docs/a131.pdf"}]}]}
    refused = client.post("/api/v1/packages", headers=jp,
                          files={"package": ("p.zip", package_bytes(bad, files))})
    assert refused.status_code == 422
    assert "documents.0.translation_of" in refused.json()["detail"]
    assert "itself" in refused.json()["detail"]
    good = {"office": "JP", "dossiers": [{**entry, "documents": [
        {"file": "docs/a131.pdf", "code": "A131", "date": "2021-01-05", "language": "en",
         "translation_of": "docs/a131-jp.pdf"},  # named before it is listed: fine
        {"file": "docs/a131-jp.pdf", "code": "A131-JP", "date": "2021-01-05",
         "language": "ja"}]}]}
    landed = client.post("/api/v1/packages", headers=jp,
                         files={"package": ("p.zip", package_bytes(good, files))})
    assert landed.status_code == 201, landed.text
    docs = client.get("/api/v1/dossiers/JP/2020-055555", headers=jp).json()["documents"]
    by_code = {d["code"]: d for d in docs}
    assert by_code["A131"]["translation_of"] == by_code["A131-JP"]["id"]
    assert by_code["A131-JP"]["translations"] == [by_code["A131"]["id"]]


def test_language_tags_are_checked_and_normalised(client, jp) -> None:
    made = _upload(client, jp, pdf_bytes("zh"), language="ZH-hant")
    assert made.status_code == 201 and made.json()["language"] == "zh-Hant"
    for bad in ("english", "e", "zh_Hant", "zh-Hant-TW"):
        refused = _upload(client, jp, pdf_bytes("x"), language=bad)
        assert refused.status_code == 422 and "language" in refused.json()["detail"], bad


def test_migration_pairs_the_remote_documents_a_database_already_has(engine, db) -> None:
    """0010 on a database with documents: the column is added, every document is kept,
    and a remote translation whose original's reference was recorded is paired."""
    from alembic import command

    from caseforum import schema

    host = PluginHost()
    host.load()
    config = schema.alembic_config(host.migrations())  # the plugins' branches too
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0009_locale_zones")
    with engine.begin() as connection:
        assert "translation_of" not in {c["name"] for c in
                                        inspect(connection).get_columns("document")}
        app_id, first, second = connection.execute(text(
            "SELECT application_id, min(id), max(id) FROM document GROUP BY application_id "
            "HAVING count(*) >= 2 ORDER BY application_id LIMIT 1")).one()
        count = connection.execute(text("SELECT count(*) FROM document")).scalar()
        for doc_id, ref, original in ((first, "r/original", None),
                                      (second, "r/translation", "r/original")):
            connection.execute(text(
                "INSERT INTO remote_document (document_id, source, ref, label, original_ref) "
                "VALUES (:d, 'opd_link', :r, '', :o)"), {"d": doc_id, "r": ref, "o": original})
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "heads")
    db.expire_all()
    assert _count(db, Document) == count
    assert db.get(Document, second).translation_of == first
    assert db.get(Document, first).translation_of is None
    assert db.exec(select(func.count()).select_from(Document).where(
        Document.translation_of.is_not(None))).one() == 1  # type: ignore[union-attr]
    assert app_id


@pytest.mark.usefixtures("steady_identity_cache")
def test_the_pair_pages_ask_a_fixed_number_of_queries(settings, db) -> None:
    """However many translations an original has, its page and the dossier's API answer
    send the same statements (the pairs come from rows already read)."""
    from caseforum.app import create_app
    from tests.sql_helpers import counted

    # no background consumers: every statement counted belongs to the request
    app = create_app(settings.model_copy(update={"run_consumers": False}))
    client = TestClient(app)
    jp = token_for(db, "jp.admin")
    new_dossier(client, jp, "JP", JP_NUMBER, publication_number="JP 2021-012345 A")
    original, _ = _pair(client, jp)
    page = TestClient(app)
    login(page, "kr.examiner")

    def cost() -> tuple[int, int]:
        with counted(app.state.engine) as html:
            assert page.get(f"/documents/{original['id']}").status_code == 200
        with counted(app.state.engine) as api:
            assert client.get(f"/api/v1/dossiers/JP/{JP_NUMBER}", headers=jp).status_code == 200
        return len(html), len(api)

    cost()  # caches warm
    one = cost()
    single = _upload(client, jp, pdf_bytes("alone"), language="en").json()["id"]
    page.get(f"/documents/{single}")
    with counted(app.state.engine) as alone:
        page.get(f"/documents/{single}")
    for language in ("ko", "zh"):
        assert _upload(client, jp, pdf_bytes(f"Notice ({language})"), language=language,
                       translation_of=original["id"]).status_code == 201
    again = cost()
    assert again == one, (one, again)
    print(f"document page with its pair: {one[0]} statements, alone: {len(alone)}; "
          f"dossier API: {one[1]}")
