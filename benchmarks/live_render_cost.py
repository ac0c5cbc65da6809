"""What one post's live fragments cost to render, in process: the hub's share of the
fan-out, without sockets, so that it barely moves with the machine's load.

The demo data, a thread, and ``--watchers`` examiners of seven offices (JP KR CN US
AU GB SG), each reading in their office's zone; a post that mentions a demo dossier
(so some offices get a card and US does not).  Then the post's fragments for all of
them (``LiveEvent.fragments``, as the hub asks for them), ``--repeats`` times: the
renders done, the distinct fragments, and the thread CPU time per post (p25 and
median).  ``--languages N`` spreads the watchers over the first N of en, zh-Hans, ja,
ko; ``--src`` measures another checkout's code (one without per-language fragments
ignores the languages and zones).

    .venv/bin/python benchmarks/live_render_cost.py                    # 500 watchers
    .venv/bin/python benchmarks/live_render_cost.py --languages 4
    .venv/bin/python benchmarks/live_render_cost.py --src ../main/src  # before/after

Not part of ``make bench`` (no bare anchor: the fan-out benchmark has that).  The
data folder is temporary and removed at the end.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

OFFICES = ("JP", "KR", "CN", "US", "AU", "GB", "SG")
LANGUAGES = ("en", "zh-Hans", "ja", "ko")


def measure(data_dir: Path, watchers: int, languages: int, repeats: int) -> str:
    from sqlmodel import select

    from caseforum import accounts
    from caseforum.app import build_doc_types, create_app
    from caseforum.authz import Viewer
    from caseforum.config import load_settings
    from caseforum.db import make_engine, open_session
    from caseforum.forum import service as forum
    from caseforum.forum.live import LiveEvent
    from caseforum.models import Event, Office, User
    from caseforum.plugin_host import PluginHost
    from caseforum.setup_db import init_database, load_demo

    settings = load_settings(data_dir=data_dir, secret_key="c" * 32, run_consumers=False)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    hub = create_app(settings).state.hub
    codes = LANGUAGES[:languages]
    with open_session(engine) as session:
        author = session.exec(select(User).where(User.username == "jp.examiner")).one()
        category = forum.create_category(session, name="Render cost", offices=[])
        thread, _ = forum.create_thread(session, author=author, category=category,
                                        title="Render cost", body="Opening.",
                                        patterns=host.reference_patterns())
        forum.add_post(session, author=author, thread=thread,
                       body="The search report of JP 2019-041872 cites two documents.",
                       patterns=host.reference_patterns())
        offices = {code: session.get(Office, code) for code in OFFICES}
        viewers = set()
        for i in range(watchers):
            office = offices[OFFICES[i % len(OFFICES)]]
            user = accounts.create_user(session, username=f"render-{i:04d}",
                                        office_code=office.code, role="examiner",
                                        password=None)
            session.flush()
            viewer = Viewer.of(user, office, frozenset({"forum", "dossiers:read"}))
            if hasattr(viewer, "reading"):  # a checkout with per-language fragments
                viewer = viewer.reading(codes[i % len(codes)], office.time_zone)
            viewers.add(viewer)
        session.commit()
        event = session.exec(select(Event).where(Event.kind == "post.created")
                             .order_by(Event.id.desc())).first()  # type: ignore[union-attr]
        wanted = {f"thread:{thread.id}": viewers}
        times = []
        for _ in range(repeats):
            session.expire_all()
            started = time.thread_time()
            live = LiveEvent(session, hub.env, hub.host, event)
            out = live.fragments(wanted)
            times.append((time.thread_time() - started) * 1000)
    times.sort()
    return (f"| {watchers} | {', '.join(codes)} | {live.renders} | {len(set(out.values()))} "
            f"| {times[len(times) // 4]:.1f} | {statistics.median(times):.1f} |")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--watchers", type=int, default=500)
    parser.add_argument("--languages", type=int, default=1, choices=range(1, 5), metavar="N")
    parser.add_argument("--repeats", type=int, default=25)
    parser.add_argument("--quick", action="store_true", help="100 watchers, 10 repeats")
    parser.add_argument("--src", default=None, help="measure the code in this src folder")
    args = parser.parse_args()
    if args.quick:
        args.watchers, args.repeats = 100, 10
    if args.src:
        sys.path.insert(0, str(Path(args.src).resolve()))
    data_dir = Path(tempfile.mkdtemp(prefix="cf-render-cost-"))
    try:
        row = measure(data_dir, args.watchers, args.languages, args.repeats)
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)
    print("| watchers | languages | renders | distinct fragments | CPU ms p25 | CPU ms median |")
    print("|---|---|---|---|---|---|")
    print(row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
