"""Calmer cards: no card for a number in a quote, in code or on a bot command line;
a dossier carded earlier in the thread gets a one-line reference (the same on the
full page and in a live-pushed post); existing users' @mentions are highlighted,
completed as they are typed, and unknown ones are flagged before sending."""

from __future__ import annotations

import re
from typing import Any

import pytest
from sqlmodel import Session, select

from caseforum import accounts
from caseforum.authz import Viewer
from caseforum.bots import dossier_embed
from caseforum.bots.base import find_invocations
from caseforum.bots.builtin import DossierBot
from caseforum.forum import service as forum
from caseforum.forum.live import LiveEvent
from caseforum.forum.text import render_post
from caseforum.markdown import LINE_END, LINE_START
from caseforum.models import Event, Office, Post, Thread, User
from tests.forum_helpers import make_category, reply, start_thread
from tests.sql_helpers import counted

TITLE = "Sulfide solid electrolyte, electrode mixture and all-solid-state battery"
JP_APP = "JP 2019-041872"  # demo family 1, seen by the accessing offices, not by US
JP_PUB = "JP 2020-149862 A"  # the same dossier by its publication number
CARD_RE = re.compile(r'<aside class="dossier-card" aria-label="Dossier ([^"]+)">')
REF_RE = re.compile(r'<p class="dossier-ref">.*?</p>', re.S)


def numbers(source: str) -> list[str]:
    return [ref.text for ref in render_post(source).references]


# What a post marks ------------------------------------------------------------------


def test_numbers_in_quotes_and_code_are_not_marked() -> None:
    source = (f"> As they wrote, {JP_APP} is close.\n> > and {JP_PUB}\n\n"
              f"`{JP_APP}` and\n\n```\n{JP_APP}\n```\n\n    {JP_APP}\n\nMine: {JP_APP}")
    rendered = render_post(source)
    assert [r.text for r in rendered.references] == [JP_APP]  # only the author's own
    assert rendered.html.count("data-ref=") == 1
    assert rendered.html.count(JP_APP) == 5  # the text itself stays


def test_numbers_on_a_bot_command_line_are_not_marked_but_the_next_line_is() -> None:
    source = (f"/citations {JP_APP}\nand {JP_PUB} is its publication\n"
              f"   /dossier {JP_PUB}\n\n/x **{JP_APP}**")
    assert numbers(source) == [JP_PUB]


@pytest.mark.parametrize("source", [
    f"- /dossier {JP_APP}",  # a list item: "- " starts the line
    f"`/dossier` {JP_APP}",  # the command is shown in code, not used
    f"# /dossier {JP_APP}",
    f"/dossiers/JP/2019041872 {JP_APP}",  # a path, not a command
    f"see /dossier {JP_APP}",
])
def test_lines_the_bots_do_not_take_as_commands_keep_their_numbers(source: str) -> None:
    assert numbers(source) == [JP_APP]


@pytest.mark.parametrize("body, commands, kept", [
    (f"/dossier {JP_APP}", 1, []),
    (f"Hi\n/dossier {JP_APP}\nthanks {JP_PUB}", 1, [JP_PUB]),
    (f"- /dossier {JP_APP}\n\n  /dossier {JP_PUB}", 1, [JP_APP]),  # a list's later line
    (f"> /dossier {JP_APP}\n\n`/dossier` {JP_PUB}", 0, [JP_PUB]),
    (f"text  \n/dossier {JP_APP}", 1, []),  # after a hard line break
    (f"/dossier {JP_APP}\r\n{JP_PUB}\r\n", 1, [JP_PUB]),
    (f"```\n/dossier {JP_APP}\n```\n{JP_PUB}", 0, [JP_PUB]),
])
def test_a_line_loses_its_numbers_exactly_when_the_bots_take_it_as_a_command(
        body: str, commands: int, kept: list[str]) -> None:
    """The card rule and the bot runner read command lines the same way."""
    assert len(find_invocations("dossier", DossierBot.triggers, body, [])) == commands
    assert numbers(body) == kept


def test_sentinels_typed_by_an_author_change_nothing() -> None:
    rendered = render_post(f"{LINE_START}/dossier {JP_APP}{LINE_END} and {JP_PUB}")
    assert LINE_START not in rendered.html and LINE_END not in rendered.html
    assert [r.text for r in rendered.references] == [JP_APP, JP_PUB]


def test_mentions_are_marked_outside_code_links_and_quotes() -> None:
    rendered = render_post("Hi @kr.examiner, see `@cn.examiner` and [x](/@au.examiner)\n\n"
                           "> @gb.examiner said\n\n/citations JP 2019-041872 @sg.examiner")
    assert rendered.mentions == ["kr.examiner", "sg.examiner"]
    assert '<span data-mention="kr.examiner">@kr.examiner</span>' in rendered.html
    assert rendered.html.count("data-mention=") == 2


# Cards once per thread ------------------------------------------------------------------


def _post_parts(page: str) -> dict[int, str]:
    """Each post's body and blocks (what lies between its header and its footer)."""
    return {int(m.group(1)): m.group(2) for m in re.finditer(
        r'<article id="post-(\d+)".*?</header>(.*?)<footer', page, re.S)}


@pytest.fixture
def thread(as_user, db) -> dict[str, Any]:
    """Four posts about one dossier: by application number, again by publication
    number, in a quote, and a reply mentioning it twice."""
    author, csrf = as_user("jp.examiner")
    thread_id = start_thread(author, csrf, make_category(db), "Electrolytes",
                             f"What do you make of {JP_APP}?")
    second = reply(author, csrf, thread_id, f"Published as {JP_PUB}, same dossier.")
    quoted = reply(author, csrf, thread_id, f"> What do you make of {JP_APP}?\n\nNothing.")
    twice = reply(author, csrf, thread_id, f"{JP_APP} again, {JP_PUB} too.")
    return {"id": thread_id, "posts": [second, quoted, twice], "author": author, "csrf": csrf}


def test_a_dossier_is_carded_once_and_then_referenced_in_one_line(as_user, thread) -> None:
    kr, _ = as_user("kr.examiner")
    page = kr.get(f"/threads/{thread['id']}").text
    second, quoted, twice = thread["posts"]
    parts = _post_parts(page)
    first = min(parts)
    assert CARD_RE.findall(parts[first]) == [JP_APP]  # the whole card, once
    assert CARD_RE.findall(page) == [JP_APP]
    for post_id in (second, twice):  # named again: one line with number and title
        [line] = REF_RE.findall(parts[post_id])
        assert '<a href="/dossiers/JP/2019041872">2019-041872</a>' in line
        assert TITLE in line
    assert parts[twice].count('<a class="ref"') == 2  # both numbers stay links
    assert "dossier-ref" not in parts[quoted] and 'class="ref"' not in parts[quoted]


def test_a_reader_who_may_not_see_the_dossier_sees_plain_text(as_user, thread) -> None:
    us, _ = as_user("us.admin")  # providing only: no JP dossiers
    page = us.get(f"/threads/{thread['id']}").text
    assert "dossier-card" not in page and "dossier-ref" not in page
    assert TITLE not in page and "/dossiers/JP/" not in page
    assert JP_PUB in page


def test_hiding_the_carding_post_gives_the_card_to_the_next_one(as_user, db, thread) -> None:
    first = db.exec(select(Post).where(Post.thread_id == thread["id"])
                    .order_by(Post.id)).first()  # type: ignore[arg-type]
    admin = db.exec(select(User).where(User.username == "admin")).one()
    forum.set_hidden(db, moderator=admin, post=first, hidden=True, reason="test")
    db.commit()
    kr, _ = as_user("kr.examiner")
    parts = _post_parts(kr.get(f"/threads/{thread['id']}").text)
    second, _, twice = thread["posts"]
    assert CARD_RE.findall(parts[second]) == [JP_APP]
    assert len(REF_RE.findall(parts[twice])) == 1


def _viewer(db: Session, username: str) -> Viewer:
    user = db.exec(select(User).where(User.username == username)).one()
    return Viewer.of(user, db.get(Office, user.office_code))


def _live_part(app: Any, db: Session, post_id: int, viewer: Viewer) -> str:
    event = next(e for e in db.exec(select(Event).where(Event.kind == "post.created"))
                 if e.payload.get("post_id") == post_id)
    live = LiveEvent(db, app.state.hub.env, app.state.hub.host, event)
    topic = f"thread:{event.payload['thread_id']}"
    return _post_parts(live.fragments({topic: {viewer}})[(topic, viewer)])[post_id]


@pytest.mark.parametrize("username", ["kr.examiner", "cn.examiner", "us.admin"])
def test_a_live_post_is_drawn_as_the_full_page_draws_it(app, as_user, db, thread,
                                                         username) -> None:
    client, _ = as_user(username)
    parts = _post_parts(client.get(f"/threads/{thread['id']}").text)
    viewer = _viewer(db, username)
    for post_id in parts:
        assert _live_part(app, db, post_id, viewer) == parts[post_id], post_id


def test_a_bot_card_counts_as_carded_and_is_itself_always_whole(app, as_user, db) -> None:
    author, csrf = as_user("jp.examiner")
    thread_id = start_thread(author, csrf, make_category(db), "Asked", f"About {JP_APP}.")
    bot = accounts.create_user(db, username="dossier", office_code="IB", role="bot",
                               password=None)
    thread = db.get(Thread, thread_id)
    post = forum.add_post(db, author=bot, thread=thread, body=f"`{JP_APP}`",
                          embeds=[dossier_embed("JP", "2019041872", asked=JP_APP)])
    db.commit()
    later = reply(author, csrf, thread_id, f"So {JP_PUB} it is.")
    kr, _ = as_user("kr.examiner")
    page = kr.get(f"/threads/{thread_id}").text
    parts = _post_parts(page)
    assert CARD_RE.findall(parts[post.id or 0]) == [JP_APP]  # asked for: whole
    assert len(REF_RE.findall(parts[later])) == 1
    assert _live_part(app, db, later, _viewer(db, "kr.examiner")) == parts[later]


def test_a_live_post_costs_the_same_statements_in_a_long_thread(app, db) -> None:
    from tests.test_thread_queries import build_dossiers, make_thread

    mentions = build_dossiers(db)
    category = forum.create_category(db, name="Long and short", offices=[])
    db.commit()
    viewer = _viewer(db, "kr.examiner")
    costs = []
    for size in (30, 120):  # either way the last post's dossiers were carded before it
        thread_id = make_thread(db, app, category, size, mentions[:20])
        last = db.exec(select(Post.id).where(Post.thread_id == thread_id)
                       .order_by(Post.id.desc())).first()  # type: ignore[union-attr]
        event = next(e for e in db.exec(select(Event).where(Event.kind == "post.created"))
                     if e.payload.get("post_id") == last)
        topic = f"thread:{thread_id}"
        LiveEvent(db, app.state.hub.env, app.state.hub.host, event).fragments(
            {topic: {viewer}})  # warm the process's caches (offices' roles)
        db.expunge_all()  # as the hub's session for a batch: nothing in it yet
        with counted(db.get_bind()) as statements:
            live = LiveEvent(db, app.state.hub.env, app.state.hub.host, event)
            html = live.fragments({topic: {viewer}})
        assert 'class="dossier-ref"' in html[(topic, viewer)]
        costs.append(len(statements))
    assert costs[0] == costs[1] > 0, costs


# Mentions ---------------------------------------------------------------------------------


def test_mentions_of_existing_users_are_highlighted(as_user, db) -> None:
    author, csrf = as_user("jp.examiner")
    thread_id = start_thread(author, csrf, make_category(db), "Who",
                             "Ask @kr.examiner and @nobody.here, not `@cn.examiner`.")
    page = author.get(f"/threads/{thread_id}").text
    assert re.search(r'<span class="mention" title="[^"]*\(KR\)">@kr.examiner</span>', page)
    assert "@nobody.here" in page and 'class="mention" title="nobody' not in page
    assert page.count('class="mention"') == 1  # the one in code stays code


def test_preview_warns_about_unknown_names_and_knows_the_thread(as_user, thread) -> None:
    author, csrf = thread["author"], thread["csrf"]
    answer = author.post("/preview", headers={"HX-Request": "true"}, data={
        "csrf_token": csrf, "thread": str(thread["id"]),
        "body": f"@kr.examiner @nobody.here {JP_APP}"})
    assert answer.status_code == 200
    assert "<strong>@nobody.here</strong>: no such user" in answer.text
    assert "@kr.examiner</strong>" not in answer.text
    assert "dossier-ref" in answer.text and "dossier-card" not in answer.text  # carded above
    fresh = author.post("/preview", headers={"HX-Request": "true"},
                        data={"csrf_token": csrf, "body": f"@kr.examiner {JP_APP}"})
    assert "mention-warning" not in fresh.text and "dossier-card" in fresh.text
    hidden = author.post("/preview", data={"csrf_token": csrf, "thread": "999999",
                                           "body": "x"})
    assert hidden.status_code == 404


def test_people_lists_matching_active_users_to_logged_in_users(as_user, client, db) -> None:
    kr, _ = as_user("kr.examiner")
    found = kr.get("/forum/people", params={"q": "@KR"}).json()
    assert [p["username"] for p in found] == ["kr.examiner"]
    assert found[0]["office"] == "KR"
    assert kr.get("/forum/people", params={"q": "_"}).json() == []  # no LIKE wildcards
    assert kr.get("/forum/people", params={"q": ""}).json() == []
    user = db.exec(select(User).where(User.username == "kr.examiner")).one()
    accounts.set_active(db, user=user, active=False, actor_id=None)
    db.commit()
    cn, _ = as_user("cn.examiner")
    assert cn.get("/forum/people", params={"q": "kr"}).json() == []
    assert client.get("/forum/people", params={"q": "kr"},
                      headers={"Accept": "application/json"}).status_code == 401
    assert cn.get("/forum/people", params={"q": "x" * 65}).status_code == 422
