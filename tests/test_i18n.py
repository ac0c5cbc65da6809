"""The interface in English, Simplified Chinese, Japanese and Korean.

The language of a page: the user's preference, else the switcher's cookie, else the
browser's ``Accept-Language``, else the instance default.  Pages say which in
``<html lang>``.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import select

from caseforum import i18n
from caseforum.app import create_app
from caseforum.config import SettingsError, load_settings
from caseforum.models import User
from tests.conftest import csrf_of

HTML_LANG = re.compile(r'<html lang="([^"]+)">')


def html_lang(html: str) -> str:
    found = HTML_LANG.search(html)
    assert found, "page has no <html lang>"
    return found.group(1)


# Choosing the language ------------------------------------------------------------------


@pytest.mark.parametrize(("tags", "expected"), [
    (["zh-CN", "en"], "zh-Hans"),
    (["zh"], "zh-Hans"),
    (["zh-Hans-SG"], "zh-Hans"),
    (["zh-TW", "ja"], "ja"),  # Traditional Chinese is not the Simplified catalogue
    (["KO-kr"], "ko"),
    (["fr", "de"], None),
    (["en-GB"], "en"),
])
def test_browser_tags_match_our_languages(tags: list[str], expected: str | None) -> None:
    assert i18n.match_language(tags) == expected


def test_accept_language_is_read_by_quality_then_order() -> None:
    header = "fr;q=0.9, ja;q=0.8, en;q=0.5, *;q=0.1, ko;q=0"
    assert i18n.accept_language(header) == ["fr", "ja", "en"]
    assert i18n.match_language(i18n.accept_language(header)) == "ja"
    assert i18n.accept_language("en;q=abc, zh") == ["zh"]


def test_anonymous_visitor_gets_the_browser_language(client: TestClient) -> None:
    page = client.get("/login", headers={"Accept-Language": "ja,en;q=0.5"})
    assert html_lang(page.text) == "ja"
    assert "<h1>ログイン</h1>" in page.text
    english = client.get("/login", headers={"Accept-Language": "fr"})
    assert html_lang(english.text) == "en" and "<h1>Log in</h1>" in english.text


def test_the_switcher_keeps_a_visitor_s_choice_in_a_cookie(client: TestClient) -> None:
    page = client.get("/login?next=/forum")
    switched = client.post("/language", data={
        "language": "ko", "next": "/login?next=/forum", "csrf_token": csrf_of(page.text)},
        follow_redirects=False)
    assert switched.status_code == 303
    assert switched.headers["location"] == "/login?next=/forum"
    again = client.get("/login", headers={"Accept-Language": "ja"})  # the choice wins
    assert html_lang(again.text) == "ko" and "로그인" in again.text


def test_the_switcher_refuses_an_unknown_language_and_a_foreign_next(
        client: TestClient) -> None:
    token = csrf_of(client.get("/login").text)
    bad = client.post("/language", data={"language": "xx", "csrf_token": token},
                      headers={"Accept": "application/json"})
    assert bad.status_code == 422 and "language" in bad.json()["detail"]
    away = client.post("/language", data={
        "language": "ja", "next": "https://evil.example/", "csrf_token": token},
        follow_redirects=False)
    assert away.headers["location"] == "/"


def test_a_user_s_preference_beats_the_browser_and_follows_them(as_user: Any,
                                                                 db: Any) -> None:
    browser, token = as_user("cn.examiner")
    assert html_lang(browser.get("/forum", headers={"Accept-Language": "ja"}).text) == "ja"
    saved = browser.post("/settings/locale", data={"language": "zh-Hans", "csrf_token": token},
                         follow_redirects=False)
    assert saved.status_code == 303
    user = db.exec(select(User).where(User.username == "cn.examiner")).one()
    db.refresh(user)
    assert user.locale == "zh-Hans"
    browser.cookies.clear()  # another browser: the preference still holds after log-in
    other, _ = as_user("cn.examiner")
    page = other.get("/forum", headers={"Accept-Language": "ja"})
    assert html_lang(page.text) == "zh-Hans" and ">论坛</a>" in page.text
    # back to "as my browser asks"
    other_token = csrf_of(page.text)
    other.post("/settings/locale", data={"language": "", "csrf_token": other_token})
    db.refresh(user)
    assert user.locale == ""
    assert html_lang(other.get("/forum", headers={"Accept-Language": "ko"}).text) == "ko"


def test_the_instance_default_applies_when_nothing_else_does(data_dir: Path) -> None:
    app = create_app(load_settings(data_dir=data_dir, secret_key="s" * 32,
                                   default_locale="ja"))
    with TestClient(app) as visitor:
        assert html_lang(visitor.get("/login").text) == "ja"
        assert html_lang(visitor.get("/login", headers={"Accept-Language": "ko"}).text) == "ko"


def test_a_bad_default_locale_stops_start_up_with_one_line(data_dir: Path) -> None:
    with pytest.raises(SettingsError, match="CASEFORUM_DEFAULT_LOCALE"):
        load_settings(data_dir=data_dir, secret_key="s" * 32, default_locale="xx")


# Every visible string goes through the catalogue ----------------------------------------

TEMPLATES = Path(i18n.__file__).parent / "templates"
#: the templates translated so far (issue 14); the rest follow screen by screen
TRANSLATED = sorted({
    "base.html", "error.html", "home.html", "landing.html", "login.html", "settings.html",
    *(f"forum/{p.name}" for p in (TEMPLATES / "forum").glob("*.html")),
    *(f"dossiers/{p.name}" for p in (TEMPLATES / "dossiers").glob("*.html")),
    "partials/bell.html", "partials/dossier_head.html", "partials/dossier_list.html",
    "partials/for_you.html", "partials/language_switch.html", "partials/visibility_chip.html",
    # dossier cards and bots' blocks, drawn in each reader's language (pages and live)
    "partials/dossier_card.html", "partials/dossier_ref.html", "partials/embed_none.html",
    "partials/family_citations.html", "partials/new_document.html",
})
#: attributes a reader sees or hears
VISIBLE_ATTRIBUTES = frozenset({"title", "placeholder", "aria-label", "alt", "label"})
#: words that are the same in every language: the product's name
SAME_EVERYWHERE = ("CaseForum",)
_COMMENT = re.compile(r"{#.*?#}", re.S)
_TRANS_BLOCK = re.compile(r"{%-?\s*trans\b.*?{%-?\s*endtrans\s*-?%}", re.S)
_TAG = re.compile(r"{{.*?}}|{%.*?%}", re.S)
_WORD = re.compile(r"[^\W\d_]")


def _needs_translation(text: str) -> bool:
    """Letters a reader would read: not a code in capitals (``CN JP KR``, ``PCT``),
    a sample number or an address, and not the product's name."""
    for name in SAME_EVERYWHERE:
        text = text.replace(name, "")
    text = " ".join(text.split())
    if not _WORD.search(text):
        return False
    if text.startswith(("http://", "https://")):
        return False
    return any(ch.islower() or not ch.isascii() for ch in text if ch.isalpha())


class _VisibleText(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[str] = []
        self._skip = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("script", "style"):
            self._skip += 1
        for name, value in attrs:
            if name in VISIBLE_ATTRIBUTES and value and _needs_translation(value):
                self.found.append(f'<{tag} {name}="{value}">')

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style"):
            self._skip = max(0, self._skip - 1)

    def handle_data(self, data: str) -> None:
        if not self._skip and _needs_translation(data):
            self.found.append(" ".join(data.split()))


def untranslated_text(source: str) -> list[str]:
    """The text of a template a reader sees that is not in a translation call: what is
    left once comments, ``{% trans %}`` blocks and every ``{{ }}``/``{% %}`` are gone."""
    source = _TAG.sub("", _TRANS_BLOCK.sub("", _COMMENT.sub("", source)))
    parser = _VisibleText()
    parser.feed(source)
    parser.close()
    return parser.found


def test_the_checker_finds_text_outside_the_translation_functions() -> None:
    assert untranslated_text('<p title="Open it">{{ _("Hello") }} there</p>') == [
        '<p title="Open it">', "there"]
    assert untranslated_text(
        '{# a note #}<p>{% trans n=1 %}<a href="/x">Log in</a>{% endtrans %}</p>'
        '<input placeholder="CN JP KR"><b>{{ x }}</b> · <i>CaseForum</i>') == []


@pytest.mark.parametrize("name", TRANSLATED)
def test_translated_templates_show_no_text_outside_the_catalogue(name: str) -> None:
    assert untranslated_text((TEMPLATES / name).read_text(encoding="utf-8")) == []


def extracted_messages() -> dict[tuple[str | None, str], Any]:
    """Every message ``make i18n`` would extract now, by context and msgid."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    root = Path(i18n.__file__).parent
    with open(root.parents[1] / "babel.cfg", encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
                "npgettext": ((1, "c"), 2, 3), "N_": None, "Msg": None, "NMsg": (1, 2),
                "CMsg": ((1, "c"), 2)}
    found: dict[tuple[str | None, str], Any] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
            root, method_map, options_map, keywords=keywords):
        found[context, message[0] if isinstance(message, tuple) else message] = message
    return found


@pytest.mark.parametrize("language", [lang for lang in i18n.LANGUAGES.values()
                                      if lang.code != i18n.SOURCE_LANGUAGE],
                         ids=lambda lang: lang.code)
def test_every_catalogue_translates_every_message(language: i18n.Language) -> None:
    from babel.messages.pofile import read_po

    path = i18n.LOCALE_DIR / language.catalogue / "LC_MESSAGES" / "messages.po"
    with open(path, "rb") as po:
        catalogue = read_po(po)
    lacking = []
    for (context, msgid), message in extracted_messages().items():
        entry = catalogue.get(msgid, context=context)
        strings = entry.string if entry is not None else ""
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None or entry.fuzzy or not all(strings):
            lacking.append(msgid)
        elif isinstance(message, tuple) and not isinstance(entry.id, tuple):
            lacking.append(f"{msgid} (needs its plural forms)")
    assert lacking == [], f"{path.name} of {language.code}: run 'make i18n' and translate"
    assert (path.with_suffix(".mo")).is_file(), "compiled by 'make setup'"


# Times in the reader's zone -------------------------------------------------------------

POST_TIME = re.compile(
    r'<time datetime="([^"]+)" title="[^"]+">(\d{4}-\d\d-\d\d \d\d:\d\d) ([^<]+)</time>')


def _post_times(html: str) -> list[tuple[str, str, str]]:
    return POST_TIME.findall(html)


def test_offices_have_the_zone_of_their_seat(db: Any) -> None:
    from caseforum.models import Office

    zones = {o.code: o.time_zone for o in db.exec(select(Office))}
    assert zones["JP"] == "Asia/Tokyo" and zones["KR"] == "Asia/Seoul"
    assert zones["CN"] == "Asia/Shanghai" and zones["GB"] == "Europe/London"
    assert all(i18n.zone(name) is not None for name in zones.values())


def test_the_thread_page_shows_times_in_the_reader_s_zone(as_user: Any, db: Any) -> None:
    from datetime import datetime

    from tests.forum_helpers import make_category, start_thread

    category = make_category(db)
    jp, jp_token = as_user("jp.examiner")
    thread = start_thread(jp, jp_token, category, "Zones", "posted once, read everywhere")
    (machine, shown, zone_label), = _post_times(jp.get(f"/threads/{thread}").text)
    moment = datetime.fromisoformat(machine)
    assert moment.utcoffset() is not None and moment.utcoffset().total_seconds() == 0
    tokyo = moment.astimezone(i18n.zone("Asia/Tokyo"))
    assert (shown, zone_label) == (f"{tokyo:%Y-%m-%d %H:%M}", "JST")  # the office's zone

    kr, _ = as_user("kr.examiner")
    assert _post_times(kr.get(f"/threads/{thread}").text)[0][2] == "KST"

    # a zone of one's own beats the office's
    saved = jp.post("/settings/locale", data={"time_zone": "Europe/Berlin",
                                             "csrf_token": jp_token}, follow_redirects=False)
    assert saved.status_code == 303
    berlin = moment.astimezone(i18n.zone("Europe/Berlin"))
    (_, shown, zone_label), = _post_times(jp.get(f"/threads/{thread}").text)
    assert (shown, zone_label) == (f"{berlin:%Y-%m-%d %H:%M}", berlin.tzname())
    assert zone_label in ("CET", "CEST")

    # machines still get UTC
    from tests.dossier_helpers import token_for

    api = jp.get(f"/api/v1/threads/{thread}", headers=token_for(db, "jp.examiner", "forum"))
    created = api.json()["posts"][0]["created_at"]
    assert datetime.fromisoformat(created.replace("Z", "+00:00")).utcoffset().seconds == 0


def test_a_bad_time_zone_is_refused_with_its_name(as_user: Any) -> None:
    browser, token = as_user("jp.examiner")
    refused = browser.post("/settings/locale", data={"time_zone": "Mars/Olympus",
                                                    "csrf_token": token})
    assert refused.status_code == 422 and "Mars/Olympus" in refused.text


# Every translated page in every language ---------------------------------------------------


def _core_pages(db: Any, browser: TestClient, token: str) -> list[str]:
    """One address of each translated screen, from the demo data and a post of the
    ``browser``'s user (edited once, so that it has a history)."""
    from caseforum.models import Application, Category, Document, Thread
    from tests.forum_helpers import reply

    thread = db.exec(select(Thread).where(Thread.category_id.is_not(None))
                     .order_by(Thread.id)).first()
    post_id = reply(browser, token, thread.id, "A first version")
    browser.post(f"/posts/{post_id}/edit", data={"body": "A second one", "csrf_token": token})
    category = db.get(Category, thread.category_id)
    app = db.exec(select(Application).where(Application.office_code == "JP")
                  .order_by(Application.id)).first()
    docs = db.exec(select(Document).where(Document.application_id == app.id)
                   .order_by(Document.id)).all()
    dossier = f"/dossiers/{app.office_code}/{app.number}"
    return [
        "/", "/settings", "/forum", f"/forum/c/{category.id}", f"/threads/{thread.id}",
        f"/threads/{thread.id}/chat", "/forum/unread", "/forum/flags", "/messages/new",
        f"/posts/{post_id}/edit", f"/posts/{post_id}/revisions", "/dossiers",
        "/dossiers?q=nothing-like-a-number", "/dossiers-new", dossier, f"{dossier}/timeline",
        f"/documents/{docs[0].id}", f"/compare?doc={docs[0].id}&doc={docs[1].id}",
        "/threads/999999",
    ]


def _catalogue_phrases(code: str) -> list[str]:
    """English phrases (three words or more) of the catalogue that the language
    translates differently: none of them may be left on a page in that language."""
    translations = i18n.translations(code)
    phrases = []
    for (context, msgid), _message in extracted_messages().items():
        if "%" in msgid or "<" in msgid or len(msgid.split()) < 3:
            continue
        shown = (translations.pgettext(context, msgid) if context
                 else translations.gettext(msgid))
        if shown != msgid:
            phrases.append(msgid)
    return phrases


def _visible_text(html: str) -> str:
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    from html import unescape

    return " ".join(unescape(text).split())


@pytest.mark.parametrize("code", list(i18n.LANGUAGES))
def test_every_translated_screen_renders_in_every_language(as_user: Any, db: Any,
                                                          code: str) -> None:
    browser, token = as_user("jp.admin")  # an office admin: every screen is open to them
    switched = browser.post("/language", data={"language": code, "csrf_token": token},
                            follow_redirects=False)
    assert switched.status_code == 303
    phrases = _catalogue_phrases(code)
    for path in _core_pages(db, browser, token):
        page = browser.get(path)
        assert page.status_code in (200, 404), (path, page.status_code)
        assert html_lang(page.text) == code, path
        text = _visible_text(page.text)
        left = [phrase for phrase in phrases if phrase in text]
        assert left == [], f"{path} in {code} still shows English: {left}"


def test_a_chinese_examiner_reads_chinese_navigation_and_errors(as_user: Any,
                                                                db: Any) -> None:
    browser, token = as_user("cn.examiner")
    browser.post("/settings/locale", data={"language": "zh-Hans", "csrf_token": token})
    forum = browser.get("/forum")
    assert html_lang(forum.text) == "zh-Hans"
    nav = forum.text.split('<nav class="sidenav"')[1].split("</nav>")[0]
    assert ">首页</a>" in nav and ">案卷</a>" in nav and ">论坛</a>" in nav
    assert ">退出</button>" in forum.text
    missing = browser.get("/threads/999999")
    assert missing.status_code == 404
    assert "<h1>未找到</h1>" in missing.text and "没有该主题" in missing.text
    forbidden = browser.get("/admin")
    assert forbidden.status_code == 403 and "您无权执行此操作" in forbidden.text
    refused = browser.get("/compare?doc=1")
    assert refused.status_code == 422 and "请勾选两份文件进行比较" in refused.text
    # a message with values: the dossier's number inside the Chinese sentence
    unknown = browser.get("/dossiers/JP/2099999999")
    assert unknown.status_code == 404 and "没有您可查看的案卷 JP" in unknown.text
    # a machine asking the same gets English and the stable code
    api = browser.get("/api/v1/threads/999999")
    assert api.json()["code"] == "not_found" and api.json()["detail"] == "No such thread"


def test_an_anonymous_visitor_asking_for_japanese_gets_the_landing_page_in_japanese(
        client: TestClient) -> None:
    page = client.get("/", headers={"Accept-Language": "ja-JP,ja;q=0.9,en;q=0.8"})
    assert html_lang(page.text) == "ja"
    assert "一般公開している庁" in page.text and ">ログイン</a>" in page.text
    switch = page.text.split('<details class="lang-switch">')[1].split("</details>")[0]
    assert 'value="ko" lang="ko"' in switch and "한국어" in switch


# Templates compiled per language ----------------------------------------------------------


def test_fixed_messages_are_translated_when_compiled_and_the_rest_when_rendered() -> None:
    from caseforum.web.template_i18n import for_language
    from caseforum.web.templating import make_environment

    env = make_environment([])
    source = ('{{ _("Reply") }}|{{ pgettext("verb", "Post") }}|{{ x._("Reply") }}|'
              '{{ _("Welcome, %(name)s", name=who) }}|{{ ngettext("%(num)d post", '
              '"%(num)d posts", 2) }}|{% trans %}Log in{% endtrans %}')

    class Thing:
        def _(self, text: str) -> str:
            return f"[{text}]"

    japanese = for_language(env, "ja")
    compiled = japanese.compile(source, raw=True)
    assert "返信|投稿する|" in compiled  # written into the page: no lookup left to do
    with i18n.using(i18n.PageLocale.of("ja")):
        shown = japanese.from_string(source).render(x=Thing(), who="<b>")
    assert shown == ("返信|投稿する|[Reply]|ようこそ、&lt;b&gt; さん|"
                     "2 件の投稿|ログイン")
    # the app's environment is the default language's: live fragments render there
    assert env.from_string(source).render(x=Thing(), who="<b>").startswith("Reply|Post|")
    assert for_language(env, "xx") is env
