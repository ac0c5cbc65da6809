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
ROOT = Path(__file__).resolve().parent.parent
#: the plugins that carry catalogues of their own: (babel.cfg, package folder, domain)
PLUGIN_CATALOGUES = [(cfg, pkg, pkg.name) for cfg in sorted(ROOT.glob("plugins/*/babel.cfg"))
                     for pkg in sorted(cfg.parent.glob("src/*/")) if (pkg / "locale").is_dir()]
#: every template of the core and of the plugins with catalogues, by a readable name
TRANSLATED = {
    **{str(p.relative_to(TEMPLATES)): p for p in sorted(TEMPLATES.rglob("*.html"))},
    **{f"{domain}:{p.relative_to(pkg / 'templates')}": p for _cfg, pkg, domain in
       PLUGIN_CATALOGUES for p in sorted((pkg / "templates").rglob("*.html"))},
}
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


def test_every_template_is_checked() -> None:
    assert len(TRANSLATED) >= 50 and "admin/bots.html" in TRANSLATED
    assert "caseforum_ice_exchange:ice/exchange.html" in TRANSLATED


@pytest.mark.parametrize("name", TRANSLATED)
def test_translated_templates_show_no_text_outside_the_catalogue(name: str) -> None:
    assert untranslated_text(TRANSLATED[name].read_text(encoding="utf-8")) == []


def extracted_messages(root: Path = Path(i18n.__file__).parent,
                       config: Path = ROOT / "babel.cfg") -> dict[tuple[str | None, str], Any]:
    """Every message ``make i18n`` would extract now from ``root`` (the core's package,
    or a plugin's with its ``babel.cfg``), by context and msgid."""
    from babel.messages.extract import extract_from_dir
    from babel.messages.frontend import parse_mapping_cfg

    with open(config, encoding="utf-8") as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    keywords = {"_": None, "gettext": None, "ngettext": (1, 2), "pgettext": ((1, "c"), 2),
                "npgettext": ((1, "c"), 2, 3), "N_": None, "Msg": None, "NMsg": (1, 2),
                "CMsg": ((1, "c"), 2)}
    found: dict[tuple[str | None, str], Any] = {}
    for _file, _line, message, _comments, context in extract_from_dir(
            root, method_map, options_map, keywords=keywords):
        found[context, message[0] if isinstance(message, tuple) else message] = message
    return found


TRANSLATED_LANGUAGES = [lang for lang in i18n.LANGUAGES.values()
                        if lang.code != i18n.SOURCE_LANGUAGE]
#: each catalogue: the core's, then each plugin's (folder, domain, what it is made from)
CATALOGUES = [(i18n.LOCALE_DIR, "messages", Path(i18n.__file__).parent, ROOT / "babel.cfg"),
              *((pkg / "locale", domain, pkg, cfg) for cfg, pkg, domain in PLUGIN_CATALOGUES)]


@pytest.mark.parametrize(("folder", "domain", "root", "config"), CATALOGUES,
                         ids=lambda value: value if isinstance(value, str) else None)
@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES, ids=lambda lang: lang.code)
def test_every_catalogue_translates_every_message(language: i18n.Language, folder: Path,
                                                  domain: str, root: Path,
                                                  config: Path) -> None:
    from babel.messages.pofile import read_po

    path = folder / language.catalogue / "LC_MESSAGES" / f"{domain}.po"
    with open(path, "rb") as po:
        catalogue = read_po(po)
    lacking = []
    for (context, msgid), message in extracted_messages(root, config).items():
        entry = catalogue.get(msgid, context=context)
        strings = entry.string if entry is not None else ""
        strings = strings if isinstance(strings, tuple) else (strings,)
        if entry is None or entry.fuzzy or not all(strings):
            lacking.append(msgid)
        elif isinstance(message, tuple) and not isinstance(entry.id, tuple):
            lacking.append(f"{msgid} (needs its plural forms)")
    assert lacking == [], f"{path.name} of {language.code}: run 'make i18n' and translate"
    assert (path.with_suffix(".mo")).is_file(), "compiled by 'make setup'"


#: a placeholder of a message: ``%(name)s``, ``%(num)d`` (and ``%%``, a plain percent sign)
PLACEHOLDER = re.compile(r"%(?:\(\w+\))?[-#0 +]*\d*(?:\.\d+)?[sdifr%]")
#: what markup a translation may add: nothing the English has not (fixed messages are
#: written into templates as they are, so a stray ``<`` or ``&`` would be markup)
MARKUP = ("<", ">", "&", '"')


@pytest.mark.parametrize(("folder", "domain", "root", "config"), CATALOGUES,
                         ids=lambda value: value if isinstance(value, str) else None)
@pytest.mark.parametrize("language", TRANSLATED_LANGUAGES, ids=lambda lang: lang.code)
def test_translations_keep_the_english_placeholders_and_add_no_markup(
        language: i18n.Language, folder: Path, domain: str, root: Path,
        config: Path) -> None:
    """A translator's typo in ``%(name)s`` would otherwise be a 500 on every page that
    shows the message (templates fill them in without a fallback)."""
    from babel.messages.pofile import read_po

    path = folder / language.catalogue / "LC_MESSAGES" / f"{domain}.po"
    with open(path, "rb") as po:
        catalogue = read_po(po)
    wrong = []
    for entry in catalogue:
        if not entry.id or not entry.string:
            continue
        ids = entry.id if isinstance(entry.id, tuple) else (entry.id,)
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        allowed = {p for msgid in ids for p in PLACEHOLDER.findall(msgid)}
        english = "".join(ids)
        for text in strings:
            extra = set(PLACEHOLDER.findall(text)) - allowed
            added = [c for c in MARKUP if text.count(c) > max(m.count(c) for m in ids)]
            if text and (extra or (added and not all(c in english for c in added))):
                wrong.append((ids[0], text, sorted(extra), added))
    assert wrong == [], f"{path} ({language.code})"


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


def test_an_office_s_admin_sets_its_time_zone_on_the_offices_page(as_user: Any,
                                                                 db: Any) -> None:
    from caseforum.models import Office

    admin, token = as_user("jp.admin")
    admin.post("/language", data={"language": "ja", "csrf_token": token})
    saved = admin.post("/admin/offices/JP/time-zone",
                       data={"time_zone": " Asia/Singapore ", "csrf_token": token})
    assert saved.status_code == 200 and "JP のタイムゾーンを保存しました" in saved.text
    assert 'name="time_zone" value="Asia/Singapore"' in saved.text
    office = db.get(Office, "JP")
    db.refresh(office)
    assert office.time_zone == "Asia/Singapore"
    from tests.forum_helpers import make_category, start_thread

    examiner, examiner_token = as_user("jp.examiner")  # the office's users see times there
    thread = start_thread(examiner, examiner_token, make_category(db), "Zones", "Here?")
    (_, _, zone_label), = _post_times(examiner.get(f"/threads/{thread}").text)
    assert zone_label == "UTC+08"
    refused = admin.post("/admin/offices/JP/time-zone",
                         data={"time_zone": "Mars/Olympus", "csrf_token": token})
    assert refused.status_code == 422 and "Mars/Olympus" in refused.text
    assert html_lang(refused.text) == "ja"
    other = admin.post("/admin/offices/KR/time-zone",
                       data={"time_zone": "Asia/Tokyo", "csrf_token": token})
    assert other.status_code == 403  # another office's: the platform admin's to decide
    admin.post("/admin/offices/JP/time-zone", data={"time_zone": "", "csrf_token": token})
    db.refresh(office)
    assert office.time_zone == ""  # the instance default again


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
        "/threads/999999", "/search?q=argyrodite", "/search?q=SRPT&kind=document&page=1",
        "/search?q=ipc:", "/notifications", "/subscriptions", "/stats", "/admin",
        "/admin/plugins", "/admin/offices", "/admin/users", "/admin/audit",
        "/admin/deliveries",
    ]


def _catalogue_phrases(code: str) -> list[str]:
    """English phrases (three words or more) of the catalogues (the core's and the
    plugins') that the language translates differently: none of them may be left on a
    page in that language."""
    translations = i18n.translations(code)
    phrases = []
    messages = {key: message for _folder, _domain, root, config in CATALOGUES
                for key, message in extracted_messages(root, config).items()}
    for (context, msgid), _message in messages.items():
        if "%" in msgid or "<" in msgid or len(msgid.split()) < 3:
            continue
        shown = (translations.pgettext(context, msgid) if context
                 else translations.gettext(msgid))
        if shown != msgid:
            phrases.append(msgid)
    return phrases


def _visible_text(html: str) -> str:
    """The page's text, less scripts, the search hits' snippets (they quote the
    documents themselves, which may well say "Examiner's search strategy") and what a
    page quotes as recorded (``translate="no"``: an ICE audit entry's signed text)."""
    html = re.sub(r"<(script|style)\b.*?</\1>", " ", html, flags=re.S)
    html = re.sub(r'<p class="snippet">.*?</p>', " ", html, flags=re.S)
    html = re.sub(r'<(\w+)[^>]*\btranslate="no"[^>]*>.*?</\1>', " ", html, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", html)
    from html import unescape

    return " ".join(unescape(text).split())


def _shows_no_english(page: Any, path: str, code: str, phrases: list[str]) -> None:
    assert page.status_code in (200, 404), (path, page.status_code)
    assert html_lang(page.text) == code, path
    text = _visible_text(page.text)
    left = [text[max(0, text.index(p) - 60):text.index(p) + len(p) + 20]
            for p in phrases if p in text]
    assert left == [], f"{path} in {code} still shows English: {left}"


@pytest.mark.parametrize("code", list(i18n.LANGUAGES))
def test_every_translated_screen_renders_in_every_language(as_user: Any, db: Any,
                                                          app: Any, code: str) -> None:
    from caseforum.subscriptions import unsubscribe_token

    browser, token = as_user("jp.admin")  # an office admin: every screen is open to them
    switched = browser.post("/language", data={"language": code, "csrf_token": token},
                            follow_redirects=False)
    assert switched.status_code == 303
    phrases = _catalogue_phrases(code)
    admin = db.exec(select(User).where(User.username == "jp.admin")).one()
    stop = f"/unsubscribe/{unsubscribe_token(app.state.settings.secret_key, admin.id)}"
    for path in [*_core_pages(db, browser, token), stop]:
        _shows_no_english(browser.get(path), path, code, phrases)
    made = browser.post(f"/admin/users/{admin.id}/tokens", data={
        "scopes": "forum", "name": "nightly", "csrf_token": token})
    _shows_no_english(made, "token created", code, phrases)


@pytest.mark.parametrize("code", list(i18n.LANGUAGES))
def test_every_page_of_the_tour_in_every_language(data_dir: Path, code: str) -> None:
    """The pages the browser tests tour (the ICE plugin's included, with an exchange to
    show), each as the user who may see it, and the platform admin's own pages."""
    from tests.conftest import login
    from tests.page_tour import _ice_demo, _open_exchange, _stops

    settings = load_settings(data_dir=data_dir, secret_key="s" * 32)
    _ice_demo(settings)
    app = create_app(settings)
    exchange_id = _open_exchange(app)
    stops = [(stop.user, stop.path) for stop in _stops(app.state.engine, exchange_id)
             if not stop.path.startswith("/api/")]  # Swagger UI speaks English
    stops += [("admin", "/admin/availability"), ("admin", "/admin/deliveries"),
              ("sg.examiner", f"/ice/{exchange_id}"), ("admin", f"/ice/{exchange_id}"),
              ("admin", "/ice")]
    phrases = _catalogue_phrases(code)
    clients: dict[str | None, TestClient] = {}
    try:
        for user, path in stops:
            if user not in clients:
                clients[user] = client = TestClient(app)
                client.__enter__()
                token = login(client, user) if user else csrf_of(client.get("/login").text)
                client.post("/language", data={"language": code, "csrf_token": token})
            _shows_no_english(clients[user].get(path), f"{path} ({user})", code, phrases)
    finally:
        for client in clients.values():
            client.__exit__(None, None, None)


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


# Plugins' own catalogues ----------------------------------------------------------------


@pytest.fixture
def no_plugin_catalogues(monkeypatch: pytest.MonkeyPatch) -> Any:
    """The process's merged translations without the installed plugins' catalogues,
    and as they were again afterwards."""
    monkeypatch.setattr(i18n, "_plugin_catalogues", ())
    i18n.translations.cache_clear()
    i18n._page_locale.cache_clear()
    yield
    i18n.translations.cache_clear()
    i18n._page_locale.cache_clear()


def _plugin_catalogue(folder: Path, domain: str, entries: dict[str, str]) -> Path:
    """A compiled Japanese catalogue of a plugin, as ``make i18n`` leaves it."""
    from babel.messages.catalog import Catalog
    from babel.messages.mofile import write_mo

    catalogue = Catalog(locale="ja", domain=domain)
    for msgid, msgstr in entries.items():
        catalogue.add(msgid, msgstr)
    target = folder / "locale" / "ja" / "LC_MESSAGES"
    target.mkdir(parents=True)
    with open(target / f"{domain}.mo", "wb") as mo:
        write_mo(mo, catalogue)
    return folder / "locale"


def test_hook_register_translations_merges_a_plugin_s_catalogue(
        tmp_path: Path, no_plugin_catalogues: Any) -> None:
    from caseforum import hookimpl
    from caseforum.plugin_host import PluginHost
    from caseforum.web.template_i18n import for_language
    from caseforum.web.templating import make_environment

    locale = _plugin_catalogue(tmp_path, "caseforum_hello", {
        "Hello from a plugin": "プラグインからこんにちは",
        "Reply": "リプライ",  # the core translates it already: the core's stays
    })

    class Hello:
        @hookimpl
        def register_translations(self) -> list[i18n.Catalogue]:
            return [i18n.Catalogue(locale, "caseforum_hello"),
                    i18n.Catalogue(tmp_path / "nowhere", "caseforum_hello")]

    host = PluginHost()
    host.load(use_entry_points=False)
    host.add(Hello(), name="hello")
    found = host.translations()
    assert found == [i18n.Catalogue(locale, "caseforum_hello")]  # no folder: left out
    assert i18n.translations("ja").gettext("Hello from a plugin") == "Hello from a plugin"
    i18n.add_catalogues(found)
    japanese = i18n.translations("ja")
    assert japanese.gettext("Hello from a plugin") == "プラグインからこんにちは"
    assert japanese.gettext("Reply") == "返信"
    # the plugin's templates and marked messages use it as the core's do
    env = for_language(make_environment([]), "ja")
    page = '{{ _("Hello from a plugin") }}|{{ _("Reply") }}|{{ label }}'
    with i18n.using(i18n.PageLocale.of("ja")):
        shown = env.from_string(page).render(label=i18n.Msg("Hello from a plugin"))
    assert shown == "プラグインからこんにちは|返信|プラグインからこんにちは"
    assert i18n.translations("ko").gettext("Hello from a plugin") == "Hello from a plugin"


def test_the_ice_plugin_speaks_the_reader_s_language_through_its_catalogue(
        as_user: Any) -> None:
    browser, token = as_user("jp.examiner")
    browser.post("/settings/locale", data={"language": "ko", "csrf_token": token})
    page = browser.get("/ice")
    assert html_lang(page.text) == "ko" and "<h1>교환</h1>" in page.text
    nav = page.text.split('<nav class="sidenav"')[1].split("</nav>")[0]
    assert ">교환</a>" in nav  # its menu entry, a message of the plugin
    assert "소속 청 처리 대기" in page.text  # a tab


# Messages made in code, shown in the reader's language ------------------------------------


def test_a_chinese_examiner_reads_document_types_in_chinese(as_user: Any, db: Any) -> None:
    from caseforum.doccodes import describe

    browser, token = as_user("cn.examiner")
    browser.post("/settings/locale", data={"language": "zh-Hans", "csrf_token": token})
    dossier = browser.get("/dossiers/JP/2019041872").text
    assert "检索报告" in dossier  # SRPT, "Search report"
    assert "Search report" not in _visible_text(dossier)
    # the original of a translated document: the label inside its own message
    assert i18n.translate(describe("JP", "A131-JP").label,
                          i18n.PageLocale.of("zh-Hans")) == "审查意见通知书（原文）"
    assert describe("JP", "A131-JP").label == "Notice of reasons for refusal (original language)"
    # machines still get the English label
    from tests.dossier_helpers import token_for

    api = browser.get("/api/v1/dossiers/JP/2019041872",
                      headers=token_for(db, "cn.examiner", "dossiers:read"))
    assert "Search report" in api.text and "检索报告" not in api.text


def test_notification_texts_are_found_again_and_translated() -> None:
    from caseforum.forum import notices

    made = i18n.Msg(notices.MENTIONED, who="Examiner Sato (JPO)", title="Argyrodite")
    stored = str(made)
    assert stored == "Examiner Sato (JPO) mentioned you in “Argyrodite”"
    found = notices.as_message(stored)
    assert isinstance(found, i18n.Msg) and found.params == made.params
    assert i18n.translate(found, i18n.PageLocale.of("ja")) == (
        "Examiner Sato (JPO) さんが「Argyrodite」であなたをメンションしました")
    step = notices.ice_step("in_progress", exchange="2986cf8c", office="JP")
    assert str(step) == "ICE: work on exchange 2986cf8c started by JP"
    assert i18n.translate(notices.as_message(str(step)), i18n.PageLocale.of("ko")) == (
        "ICE: JP이(가) 교환 2986cf8c 작업을 시작했습니다")
    assert notices.as_message("the dossier bot could not answer") == (
        "the dossier bot could not answer")  # made elsewhere: shown as stored


# The command line ---------------------------------------------------------------------------


@pytest.mark.parametrize(("environ", "expected"), [
    ({"LANG": "ja_JP.UTF-8"}, "ja"),
    ({"LC_ALL": "ko_KR.UTF-8", "LANG": "ja_JP.UTF-8"}, "ko"),  # LC_ALL first
    ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_GB.UTF-8"}, "zh-Hans"),
    ({"LANG": "zh_TW.UTF-8"}, "en"),  # no Traditional Chinese catalogue: English
    ({"LANG": "fr_FR.UTF-8"}, "en"),
    ({"LANG": "C.UTF-8"}, "ja"),  # says no language: the instance default
    ({}, "ja"),
])
def test_the_terminal_s_locale_picks_the_command_line_s_language(
        environ: dict[str, str], expected: str) -> None:
    from caseforum.terminal import terminal_language

    assert terminal_language("ja", environ) == expected


def test_commands_answer_in_the_terminal_s_language(data_dir: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from caseforum.cli import cli

    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    runner = CliRunner()
    made = runner.invoke(cli, ["users", "create", "jp.reader", "--office", "JP",
                               "--role", "examiner"], env={"LANG": "ja_JP.UTF-8"})
    assert made.exit_code == 0, made.output
    assert made.output.strip() == "jp.reader を作成しました（JP、examiner）"
    unknown = runner.invoke(cli, ["users", "disable", "nobody"], env={"LANG": "ko_KR.UTF-8"})
    assert unknown.exit_code == 1
    assert "사용자 'nobody'이(가) 없습니다" in unknown.output
    # a service's environment names no language: the instance default
    monkeypatch.setenv("CASEFORUM_DEFAULT_LOCALE", "zh-Hans")
    again = runner.invoke(cli, ["users", "disable", "jp.reader"], env={"LANG": "C"})
    assert again.output.strip() == "已停用 jp.reader"
