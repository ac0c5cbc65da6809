"""Live fragments and dossier cards in each reader's language and zone (issue 14, item 5).

A post pushed over the websockets reaches a Japanese and a Korean examiner each in
their own language, with its time in their own zone, and with the same cards; a thread
page draws its cards in the reader's language; a room that reads one language still
renders once per distinct output, whatever the zones of its readers.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any

import pytest
from sqlmodel import select

from caseforum import i18n
from caseforum.authz import Viewer
from caseforum.forum.live import LiveEvent
from caseforum.models import Event, Office, User
from tests.conftest import LiveServer
from tests.forum_helpers import make_category, reply, start_thread
from tests.test_forum_live import Browserless, receive_posts

JP_APP = "JP 2019-041872"  # demo family 1: JP and KR examiners both see its card
POST_TIME = re.compile(r'<time datetime="([^"]+)" title="[^"]+">'
                       r'(\d{4}-\d\d-\d\d \d\d:\d\d) ([^<]+)</time>')
CARD = re.compile(r'<aside class="dossier-card".*?</aside>', re.S)
LINKS = re.compile(r'href="(/(?:dossiers|documents)/[^"]+)"')


@pytest.fixture
def server(app: Any) -> Any:
    s = LiveServer(app).start()
    yield s
    s.stop()


def choose_language(person: Browserless, code: str) -> None:
    saved = person.http.post("/settings/locale", data={"language": code,
                                                       "csrf_token": person.csrf})
    assert saved.status_code == 303, saved.text


def shown_time(html: str) -> tuple[datetime, str, str]:
    """The post's moment (UTC, from the machine-readable attribute), and the time and
    zone the reader is shown."""
    found = POST_TIME.search(html)
    assert found, "no post time in the fragment"
    return datetime.fromisoformat(found.group(1)), found.group(2), found.group(3)


def card_of(html: str) -> str:
    found = CARD.search(html)
    assert found, "no dossier card"
    return found.group(0)


def test_a_live_post_reaches_each_watcher_in_their_language_and_zone(server: Any,
                                                                     db: Any) -> None:
    category = make_category(db)
    cn = Browserless(server.url, "cn.examiner")
    thread = cn.start(category, "Sulfide electrolytes", "Opening the discussion.")
    jp, kr = Browserless(server.url, "jp.examiner"), Browserless(server.url, "kr.examiner")
    choose_language(jp, "ja")
    choose_language(kr, "ko")
    with jp.socket(f"/ws/threads/{thread}") as ja_socket, \
            kr.socket(f"/ws/threads/{thread}") as ko_socket:
        cn.post(thread, f"The search report of {JP_APP} cites two documents.")
        [ja], [ko] = receive_posts(ja_socket, 1), receive_posts(ko_socket, 1)

    # each in their own language: the interface's words and the card's labels
    assert "返信" in ja and "답글" in ko
    ja_card, ko_card = card_of(ja), card_of(ko)
    assert "出願日" in ja_card and "ドシエを開く" in ja_card and "Open dossier" not in ja_card
    assert "출원일" in ko_card and "도시에 열기" in ko_card and "Open dossier" not in ko_card
    # the same card: the same dossier, title and documents, only the words differ
    assert LINKS.findall(ja_card) == LINKS.findall(ko_card) != []
    assert "Sulfide solid electrolyte" in ja_card and "Sulfide solid electrolyte" in ko_card

    # each in their own zone (the office's seat): one moment, two clocks
    moment, ja_time, ja_zone = shown_time(ja)
    same, ko_time, ko_zone = shown_time(ko)
    assert moment == same
    assert (ja_time, ja_zone) == (f"{moment.astimezone(i18n.zone('Asia/Tokyo')):%Y-%m-%d %H:%M}",
                                  "JST")
    assert (ko_time, ko_zone) == (f"{moment.astimezone(i18n.zone('Asia/Seoul')):%Y-%m-%d %H:%M}",
                                  "KST")
    assert "\ue000" not in ja + ko  # no time left unfilled


def test_a_socket_without_a_chosen_language_follows_the_browser_then_the_default(
        server: Any, db: Any) -> None:
    category = make_category(db)
    gb = Browserless(server.url, "gb.examiner")
    thread = gb.start(category, "Heat sinks", "Opening.")
    headers = {"Cookie": gb.cookie, "Origin": server.url}
    from websockets.sync.client import connect

    url = server.url.replace("http", "ws") + f"/ws/threads/{thread}"
    with connect(url, additional_headers={**headers, "Accept-Language": "zh-CN,zh;q=0.9"},
                 open_timeout=5) as chinese, \
            connect(url, additional_headers={**headers, "Accept-Language": "fr"},
                    open_timeout=5) as default:
        gb.post(thread, "A second look.")
        [zh], [en] = receive_posts(chinese, 1), receive_posts(default, 1)
    assert "回复" in zh and ">Reply<" in en
    # no zone of their own: the office's (London) for both
    assert shown_time(zh)[2] in ("GMT", "BST") and shown_time(en)[2] == shown_time(zh)[2]


def test_cards_on_a_page_are_in_the_reader_s_language(as_user: Any, db: Any) -> None:
    cn, cn_token = as_user("cn.examiner")
    thread = start_thread(cn, cn_token, make_category(db), "Cards", f"About {JP_APP}.")
    reply(cn, cn_token, thread, f"/dossier {JP_APP}")  # no bot runs here: a plain post
    cn.post("/settings/locale", data={"language": "zh-Hans", "csrf_token": cn_token})
    kr, kr_token = as_user("kr.examiner")
    kr.post("/settings/locale", data={"language": "ko", "csrf_token": kr_token})

    zh_card, ko_card = card_of(cn.get(f"/threads/{thread}").text), card_of(
        kr.get(f"/threads/{thread}").text)
    assert "申请日" in zh_card and "打开案卷" in zh_card and "引用文献" in zh_card
    assert 'aria-label="案卷 JP' in zh_card
    assert "출원일" in ko_card and "도시에 열기" in ko_card and "인용문헌" in ko_card
    assert 'aria-label="도시에 JP' in ko_card
    # the same dossier, the documents each office may see, the same dates
    assert re.findall(r"\d{4}-\d\d-\d\d", zh_card)[0] == re.findall(r"\d{4}-\d\d-\d\d",
                                                                    ko_card)[0]
    assert LINKS.findall(zh_card)[0] == LINKS.findall(ko_card)[0]


def _viewer(db: Any, username: str, language: str, zone_name: str) -> Viewer:
    user = db.exec(select(User).where(User.username == username)).one()
    return Viewer.of(user, db.get(Office, user.office_code)).reading(language, zone_name)


def test_zones_cost_no_render_and_each_language_one(app: Any, as_user: Any, db: Any) -> None:
    """The fan-out's cost: readers in seven zones share one render per output; a
    second language is a second render, never more."""
    jp, token = as_user("jp.examiner")
    thread = start_thread(jp, token, make_category(db), "Costs", "A plain post.")
    event = db.exec(select(Event).where(Event.kind == "post.created")
                    .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
    hub, topic = app.state.hub, f"thread:{thread}"
    zones = {"jp.examiner": "Asia/Tokyo", "kr.examiner": "Asia/Seoul",
             "cn.examiner": "Asia/Shanghai", "gb.examiner": "Europe/London"}

    one_language = {_viewer(db, name, "en", zone) for name, zone in zones.items()}
    live = LiveEvent(db, hub.env, hub.host, event)
    out = live.fragments({topic: one_language})
    assert live.renders == 1
    assert len(set(out.values())) == 4  # four clocks, from one render
    assert {shown_time(html)[2] for html in out.values()} == {"JST", "KST", "CST", "GMT"} \
        or {shown_time(html)[2] for html in out.values()} == {"JST", "KST", "CST", "BST"}

    languages = {_viewer(db, name, code, zone) for (name, zone), code
                 in zip(zones.items(), ("en", "zh-Hans", "ja", "ko"), strict=True)}
    live = LiveEvent(db, hub.env, hub.host, event)
    out = live.fragments({topic: languages})
    assert live.renders == 4
    by_language = {v.language: out[(topic, v)] for v in languages}
    assert ">Reply<" in by_language["en"] and "回复" in by_language["zh-Hans"]
    assert "返信" in by_language["ja"] and "답글" in by_language["ko"]
