"""N app hosts, one truth (issue 15), seen from a browser: two real ``caseforum serve``
processes (hosts A and B, :mod:`tests.hosts_helpers`) on one PostgreSQL database and one
Redis, and Debian's chromium, as an examiner would meet them when a load balancer sends
one request to A and the next to B.

How the browser reaches "the other host": the two hosts listen on two ports of
127.0.0.1, and a browser keeps cookies by host name, not by port (RFC 6265, 8.5:
"cookies do not provide isolation by port").  So the session cookie that host A's
log-in page sets is the one the browser sends to host B, as it would be behind a load
balancer with one name, with nothing injected and no proxy between: the tests only
change the port they open.  What the hosts share is what makes that work (one secret
key signs the cookie, the session row lives in the shared database, live updates and
switches travel through the event log and Redis wake-ups); a page of host B also opens
its live socket on host B, so what arrives live there was rendered by B's hub from
what A wrote.

Skipped (with the reason) without CASEFORUM_TEST_POSTGRES_URL and
CASEFORUM_TEST_REDIS_URL, as tests/test_cross_host.py is; CI (.ci/run) sets both."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from caseforum import authcache
from caseforum.demo_dossiers import F1_TITLE
from tests.conftest import _service_or_skip
from tests.hosts_helpers import Host, fresh_database, hosts
from tests.live_helpers import LIVE, Person
from tests.test_forum_live import Browserless

pytestmark = [pytest.mark.browser, pytest.mark.services, pytest.mark.slow]

PHONE = {"width": 390, "height": 844}
JP_APP = "JP 2019-041872"  # demo family 1: a post naming it gets a dossier card
US_APP = "US 16/991,574"  # another demo family's: a card too
GENERAL = "General"  # the demo's category open to every office
WOKEN_SECONDS = 1.0  # a post from A on B's page (B's own look at the log: every 2 s)
SWITCH_SECONDS = 3.0  # how long a switch made on host A may take to count on host B


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Host, Host]]:
    """Hosts A and B on one new database and one Redis, with the demo data."""
    base = _service_or_skip("postgres", os.environ.get("CASEFORUM_TEST_POSTGRES_URL"), 5432)
    redis_url = _service_or_skip("redis", os.environ.get("CASEFORUM_TEST_REDIS_URL"), 6379)
    folder: Path = tmp_path_factory.mktemp("browser-hosts")
    with fresh_database(base) as url, hosts(folder, url, redis_url) as (a, b):
        yield a, b


@pytest.fixture(autouse=True)
def host_logs(cluster: tuple[Host, Host]) -> Iterator[None]:
    """The hosts' own logs of each test, printed (and so shown when the test fails)."""
    sizes = {host.name: host.log.stat().st_size for host in cluster}
    yield
    for host in cluster:
        with host.log.open("rb") as log:
            log.seek(sizes[host.name])
            print(f"--- host {host.name} ---\n" + log.read().decode(errors="replace")[-6000:])


def logged_in_on(browser: Any, host: Host, username: str) -> Person:
    """``username`` in a browser of their own, logged in through ``host``'s log-in page."""
    return Person(browser, host, username)


def sent_to(person: Person, host: Host) -> Person:
    """The same browser (cookies and all), its next pages asked of ``host``: what a load
    balancer does between one request and the next."""
    person.base = host.url
    return person


def general(who: Browserless) -> int:
    """The id of the demo's General category, as the forum index links it."""
    found = re.search(r'href="/forum/c/(\d+)">' + GENERAL + "<", who.http.get("/forum").text)
    assert found, "no General category on the forum index"
    return int(found.group(1))


def fits(page: Any, width: int) -> bool:
    """No sideways scrolling at ``width`` px."""
    page.set_viewport_size({**PHONE, "width": width})
    return bool(page.evaluate("document.documentElement.scrollWidth") <= width)


def test_a_log_in_through_a_opens_a_thread_on_b(browser: Any, cluster: tuple[Host, Host]
                                                ) -> None:
    """No second log-in: host B knows the session host A started, draws the thread with
    its dossier card for this examiner, and opens the live socket itself."""
    a, b = cluster
    jp = Browserless(a.url, "jp.examiner")
    thread = jp.start(general(jp), "Opened across hosts", f"About {JP_APP}.")
    kr = sent_to(logged_in_on(browser, a, "kr.examiner"), b)
    try:
        with kr.page.expect_websocket(timeout=LIVE) as socket:
            kr.page.goto(f"{b.url}/threads/{thread}")
            assert kr.page.url == f"{b.url}/threads/{thread}", "host B sent the examiner away"
        assert socket.value.url.startswith(b.url.replace("http", "ws") + "/ws/threads/")
        kr.page.wait_for_load_state("networkidle")
        expect(kr.page.locator("h1")).to_contain_text("Opened across hosts")
        expect(kr.page.locator(".topbar-user")).to_contain_text("Examiner Kim (KIPO)")
        expect(kr.page.locator(".post .dossier-card")).to_contain_text(F1_TITLE)
        sessions = [c for c in kr.context.cookies() if c["name"] == "cf_session"]
        assert len(sessions) == 1, sessions  # one cookie, sent to both hosts
        assert fits(kr.page, PHONE["width"]), "the thread page scrolls sideways on a phone"
        assert kr.errors == []
    finally:
        kr.context.close()


def test_posts_made_through_a_appear_live_on_b_in_order_with_their_card(
        browser: Any, cluster: tuple[Host, Host]) -> None:
    """Host B's hub reads the shared log when Redis wakes it, and on its own every two
    seconds.  So that a missing wake-up shows (posts would still arrive, a second or two
    late), an examiner on B posts first, which makes B read the log, and one on A right
    after: the post from A must not wait for B's next look."""
    a, b = cluster
    jp, gb = Browserless(a.url, "jp.examiner"), Browserless(b.url, "gb.examiner")
    thread = jp.start(general(jp), "Live across hosts", "Opening.")
    kr = sent_to(logged_in_on(browser, a, "kr.examiner"), b)
    cn = logged_in_on(browser, a, "cn.examiner")
    try:
        kr.open(f"/threads/{thread}")
        kr.page.evaluate("window.notReloaded = true")
        cn.reply(thread, f"CNIPA cited the same art as {JP_APP}.")  # the form, on host A
        expected = ["Opening.", f"CNIPA cited the same art as {JP_APP}."]
        waits = []
        for turn in range(1, 4):  # the best of three: a busy machine may stall one
            gb.post(thread, f"UKIPO, through host B ({turn}).")
            expected.append(f"UKIPO, through host B ({turn}).")
            shown(kr.page, len(expected))
            started = time.monotonic()
            jp.post(thread, f"JPO, through host A ({turn}).")
            expected.append(f"JPO, through host A ({turn}).")
            shown(kr.page, len(expected))
            waits.append(time.monotonic() - started)
            if waits[-1] < WOKEN_SECONDS:
                break
        print(f"posts from A reached B's page in {[round(w, 2) for w in waits]} s")
        assert min(waits) < WOKEN_SECONDS, f"posts from A waited {waits} s: no wake-up on B"
        posts = kr.page.locator("#posts .post")
        assert [body.strip() for body in posts.locator(".post-body").all_inner_texts()
                ] == expected
        expect(posts.nth(1).locator(".dossier-card")).to_contain_text(F1_TITLE)
        assert kr.page.evaluate("window.notReloaded === true"), "the page was reloaded"
        assert fits(kr.page, PHONE["width"]), "the live thread scrolls sideways on a phone"
        assert kr.errors == [] and cn.errors == []
    finally:
        kr.context.close()
        cn.context.close()


def shown(page: Any, count: int) -> None:
    """Until the thread shows ``count`` posts (checked every 20 ms: ``expect`` polls
    ever more slowly, which would blur the time measured)."""
    page.wait_for_function("n => document.querySelectorAll('#posts .post').length >= n",
                           arg=count, polling=20, timeout=LIVE)


def test_cards_switched_off_on_a_are_off_in_the_next_post_on_b(
        browser: Any, cluster: tuple[Host, Host]) -> None:
    """An admin switches the dossier cards off through host A and a post naming a
    dossier follows at once, while host B is too busy to read its wake-ups: B's hub
    then reads the switch and the post in one round.  The post must come without its
    card, as the page shows it after a reload (it came with one: the hub rendered the
    whole round before applying the switch)."""
    a, b = cluster
    admin, jp = Browserless(a.url, "admin"), Browserless(a.url, "jp.examiner")
    thread = jp.start(general(jp), "Cards off across hosts", f"Before: {US_APP}.")
    kr = sent_to(logged_in_on(browser, a, "kr.examiner"), b)
    try:
        kr.open(f"/threads/{thread}")
        expect(kr.page.locator(".post .dossier-card")).to_have_count(1)  # the opening's
        b.pause()
        try:
            switch(admin, "dossier_cards", "disable")
            jp.post(thread, f"After: {JP_APP}.")
        finally:
            b.resume()
        posts = kr.page.locator(".post")
        expect(posts).to_have_count(2, timeout=LIVE)
        expect(posts.last).to_contain_text("After:")
        assert posts.last.locator(".dossier-card").count() == 0, "a card switched off"
        kr.open(f"/threads/{thread}")  # and the page, drawn afresh, says the same
        expect(kr.page.locator(".post")).to_have_count(2)
        expect(kr.page.locator(".post .dossier-card")).to_have_count(0)
        assert kr.errors == []
    finally:
        switch(admin, "dossier_cards", "enable")
        kr.context.close()


def switch(admin: Browserless, plugin: str, action: str) -> None:
    done = admin.http.post(f"/admin/plugins/{plugin}/{action}",
                           data={"csrf_token": admin.csrf})
    assert done.status_code == 303, done.text


def until_page(person: Person, path: str, shows: Any, seconds: float) -> None:
    """Open ``path`` again and again, each time the examiner's next click, until
    ``shows(page)``; the test fails after ``seconds``."""
    started = time.monotonic()
    while True:
        person.page.goto(person.base + path)
        if shows(person.page):
            return
        assert time.monotonic() - started < seconds, f"{path}: not within {seconds} s"
        time.sleep(0.1)


def test_a_plugin_switched_off_on_a_is_gone_from_b_at_the_next_click(
        browser: Any, cluster: tuple[Host, Host]) -> None:
    """The admin clicks "Disable" for the ICE exchange on host A's plugin page; the
    examiner reading Exchanges on host B loses the menu entry at the next click and the
    page answers 404, within seconds and without a restart of B."""
    a, b = cluster
    admin = logged_in_on(browser, a, "admin")
    jp = sent_to(logged_in_on(browser, a, "jp.examiner"), b)
    exchanges = jp.page.get_by_role("navigation", name="Main").get_by_role(
        "link", name="Exchanges")
    switch = admin.page.locator("#plugin-ice_exchange").get_by_role("button")
    try:
        jp.open("/ice")
        expect(exchanges).to_be_visible()
        admin.open("/admin/plugins")
        switch.click()
        expect(switch).to_contain_text("Enable")  # done on host A
        until_page(jp, "/forum", lambda page: exchanges.count() == 0, SWITCH_SECONDS)
        assert jp.errors == [] and admin.errors == []
        answer = jp.page.goto(f"{b.url}/ice")  # the page the examiner had open
        assert answer is not None and answer.status == 404, "host B still serves /ice"
        assert fits(jp.page, PHONE["width"]), "the 404 page scrolls sideways on a phone"
    finally:
        switch_back_on(switch, admin, jp)


def test_an_account_disabled_on_a_is_logged_out_on_b_at_once(
        browser: Any, cluster: tuple[Host, Host]) -> None:
    """Host B keeps who a cookie belongs to for :data:`authcache.CACHE_SECONDS` from its
    first look; it forgets at once when its live hub reads that the account was
    disabled, and closes the page's live socket."""
    a, b = cluster
    admin = logged_in_on(browser, a, "admin")
    gb = sent_to(logged_in_on(browser, a, "gb.examiner"), b)
    switch = admin.page.get_by_role("button", name=re.compile(r"^(Disable|Enable) gb\.examiner$"))
    try:
        admin.open("/admin/users")
        started = time.monotonic()
        with gb.page.expect_websocket(timeout=LIVE) as opened:
            gb.page.goto(f"{b.url}/forum")  # host B's first look at the session
        socket = opened.value
        switch.click()
        expect(switch).to_contain_text("Enable")  # done on host A
        closing = time.monotonic()
        while not socket.is_closed():  # host B closes it, once its hub reads the event
            assert time.monotonic() - closing < SWITCH_SECONDS, "B left the socket open"
            gb.page.wait_for_timeout(50)
        until_page(gb, "/forum", lambda page: "/login" in page.url, authcache.CACHE_SECONDS)
        took = time.monotonic() - started
        print(f"host B's log-in page {took:.2f} s after its first look at the session")
        assert took < authcache.CACHE_SECONDS - 1, f"{took:.1f} s: host B's cache ran out"
        expect(gb.page.get_by_label("Username")).to_be_visible()
        assert fits(gb.page, PHONE["width"]), "the log-in page scrolls sideways on a phone"
        assert gb.errors == [] and admin.errors == []
    finally:
        switch_back_on(switch, admin, gb)


def switch_back_on(switch: Any, *browsers: Any) -> None:
    """After a test that switched something off on host A: on again for the next test
    (the hosts are shared), and the browsers closed."""
    if "Enable" in switch.inner_text():
        switch.click()
        expect(switch).to_contain_text("Disable")
    for each in browsers:
        each.context.close()
