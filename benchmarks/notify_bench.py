"""Notification fan-out: many followers of one office, a burst of new documents.

``--subscribers`` examiners of the other accessing offices each follow JP's new
content (an office subscription: all documents, both directions) by bell and
e-mail, mailed at once (no digest). Then ``jp.admin`` uploads ``--documents``
documents, one after the other, through the dossier API of a ``caseforum``
server running in its own process (one uvicorn worker with its background
consumers and delivery worker, SQLite), whose ``[mail]`` points at a real SMTP
server (aiosmtpd) in this process on loopback. Measured from the first upload:

* until the last of the subscribers x documents notifications is stored (the
  notifier's rows, polled in the database every 0.1 s);
* until the SMTP server has accepted the mail that names the last of them: every
  follower must have been mailed every document, each exactly once.  A mail lists
  what was due for its follower when it was sent (the e-mail channel puts a
  follower's due notifications in one mail), so there are fewer mails than
  notifications; the script reads each mail's text part for the documents it names.

There is no bare anchor: no bare-framework program does the same job (permission
checks per viewer profile, one row per notification and channel, delivery with
retries), so the SUMMARY rows carry CaseForum's times alone and a null ratio, like
``startup_bench``'s ``caseforum init`` row.

    .venv/bin/python benchmarks/notify_bench.py            # 10,000 subscribers x 100 documents
    .venv/bin/python benchmarks/notify_bench.py --quick    # 1,000 x 10

The full size means 1,000,000 notifications; ``--max-seconds`` (25 minutes) stops
waiting, and the rows then say how far it got. The exit status is 1 when a document
was mailed twice to a follower (or a Message-ID came twice), or when every
notification was mailed but not all were stored.
Only loopback traffic; the data folder is temporary and removed at the end, and the
server is stopped at the end, also on errors and Ctrl-C.
"""

from __future__ import annotations

import argparse
import email
import os
import re
import shutil
import signal
import sqlite3
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from benchlib import ServerProcess, free_port, summary, wait_for_consumers

SECRET = "notify-bench-secret-key-0123456789"
OFFICE = "JP"  # whose new content everybody follows
NUMBER = "2019-041872"  # the demo dossier the documents are added to
UPLOADER = "jp.admin"
MESSAGE_ID_RE = re.compile(rb"^Message-ID:\s*(\S+)", re.MULTILINE | re.IGNORECASE)
DOCUMENT_LINK_RE = re.compile(r"/documents/(\d+)\s*$", re.MULTILINE)


def log(text: str) -> None:
    print(text, flush=True)


# The data ---------------------------------------------------------------------------------


def build(data_dir: Path, subscribers: int) -> dict[str, Any]:
    """Demo data, ``subscribers`` followers of JP, a token for the uploader; the notifier
    starts after the demo's history (as on a server that has run for a while)."""
    from sqlalchemy import func
    from sqlmodel import select

    from caseforum import accounts
    from caseforum.app import build_doc_types
    from caseforum.config import load_settings
    from caseforum.db import make_engine, open_session
    from caseforum.forum.notify import Notifier
    from caseforum.models import ConsumerCursor, Event, Office, Subscription, User
    from caseforum.plugin_host import PluginHost
    from caseforum.setup_db import init_database, load_demo

    started = time.perf_counter()
    settings = load_settings(data_dir=data_dir, secret_key=SECRET)
    engine = make_engine(settings)
    host = PluginHost(settings.plugins)
    host.load()
    init_database(engine, host)
    load_demo(engine, storage_dir=settings.storage_dir, doc_types=build_doc_types(host))
    with open_session(engine) as session:
        offices = [o.code for o in session.exec(select(Office).where(
            Office.accessing, Office.code != OFFICE).order_by(Office.code))]
        users = [User(username=f"follower-{i:05d}", office_code=offices[i % len(offices)],
                      email=f"follower-{i:05d}@bench.test", email_digest="immediate")
                 for i in range(subscribers)]
        session.add_all(users)
        session.flush()
        session.add_all([Subscription(user_id=u.id or 0, kind="office", target=OFFICE,
                                      label=OFFICE, channels="inapp email") for u in users])
        uploader = session.exec(select(User).where(User.username == UPLOADER)).one()
        _, token = accounts.create_token(session, user=uploader,
                                         scopes=["dossiers:read", "dossiers:write"])
        newest = session.exec(select(func.max(Event.id))).one() or 0
        cursor = session.get(ConsumerCursor, Notifier.name) or ConsumerCursor(
            name=Notifier.name)
        cursor.last_event_id = newest
        session.add(cursor)
        session.commit()
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE")
        conn.commit()
    engine.dispose()
    log(f"  demo data and {subscribers:,} followers of {OFFICE} "
        f"({', '.join(offices)}): {time.perf_counter() - started:.1f} s")
    return {"token": token, "offices": offices}


def documents(count: int) -> list[bytes]:
    """Distinct small PDFs with a text layer (as examiners' reports are)."""
    from fpdf import FPDF

    out = []
    for k in range(count):
        doc = FPDF()
        doc.add_page()
        doc.set_font("helvetica", size=11)
        doc.multi_cell(0, 6, f"Search report {k}\nCategory X: JP 2010-{123456 + k} A, "
                             "claims 1-3")
        out.append(bytes(doc.output()))
    return out


# The SMTP server --------------------------------------------------------------------------


class Inbox:
    """aiosmtpd handler: notes when each mail was accepted, its Message-ID, and which
    (recipient, document) pairs it named, and when the last new pair came."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.mails = 0
        self.ids: Counter[bytes] = Counter()
        self.pairs: Counter[tuple[str, int]] = Counter()
        self.last_new_pair = 0.0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802
        found = MESSAGE_ID_RE.search(envelope.content)
        named = documents_named(envelope.content)
        with self.lock:
            now = time.perf_counter()
            self.mails += 1
            self.ids[found.group(1) if found else b"?"] += 1
            for rcpt in envelope.rcpt_tos:
                for document_id in named:
                    pair = (rcpt, document_id)
                    if pair not in self.pairs:
                        self.last_new_pair = now
                    self.pairs[pair] += 1
        return "250 OK"

    def mailed(self) -> int:
        """Distinct (recipient, document) pairs mailed so far."""
        with self.lock:
            return len(self.pairs)


def documents_named(content: bytes) -> list[int]:
    """The documents a mail's text part links to (once each per line)."""
    message = email.message_from_bytes(content)
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            payload = part.get_payload(decode=True)
            text = payload.decode("utf-8") if isinstance(payload, bytes) else ""
            return [int(d) for d in DOCUMENT_LINK_RE.findall(text)]
    return []


# The server -------------------------------------------------------------------------------


class Server(ServerProcess):
    """``caseforum serve`` in its own process, stopped by :meth:`stop`."""

    def __init__(self, workdir: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
        full.update(env, PYTHONUNBUFFERED="1")
        self.spawn([sys.executable, "-m", "caseforum", "serve", "--host", "127.0.0.1",
                    "--port", str(self.port)], env=full, workdir=workdir,
                   log_name="server.log")




# Measuring --------------------------------------------------------------------------------


class Stored:
    """Counts the benchmark's notification rows as they are written, reading only
    the rows added since the last look (a count of all of them ten times a second
    took a core of this small machine away from the server at a million rows)."""

    def __init__(self, conn: sqlite3.Connection, first_id: int) -> None:
        self.conn, self.last_id, self.count = conn, first_id, 0

    def __call__(self) -> int:
        count, last = self.conn.execute(
            "SELECT count(*), max(id) FROM notification WHERE id > ? AND "
            "document_id IS NOT NULL", (self.last_id,)).fetchone()
        if last is not None:
            self.count, self.last_id = self.count + int(count), int(last)
        return self.count


def run(args: argparse.Namespace, workdir: Path, servers: list[Server]) -> int:
    from aiosmtpd.controller import Controller

    data_dir = workdir / "data"
    built = build(data_dir, args.subscribers)
    expected = args.subscribers * args.documents
    pdfs = documents(args.documents)
    inbox = Inbox()
    smtp_port = free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    try:
        server = Server(workdir, {
            "CASEFORUM_DATA_DIR": str(data_dir), "CASEFORUM_SECRET_KEY": SECRET,
            "CASEFORUM_MAIL__HOST": "127.0.0.1", "CASEFORUM_MAIL__PORT": str(smtp_port)})
        servers.append(server)
        server.wait_ready()
        db = data_dir / "caseforum.db"
        wait_for_consumers(db)
        conn = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
        stored_now = Stored(conn, conn.execute(
            "SELECT coalesce(max(id), 0) FROM notification").fetchone()[0])
        cpu_before = server.cpu_seconds()
        headers = {"Authorization": f"Bearer {built['token']}"}
        t0 = time.perf_counter()
        with httpx.Client(base_url=server.url, headers=headers, timeout=60) as client:
            for k, pdf in enumerate(pdfs):
                answer = client.post(
                    f"/api/v1/dossiers/{OFFICE}/{NUMBER}/documents",
                    data={"code": "SRPT", "date": "2021-02-03", "language": "en",
                          "visibility": "offices", "offices": ""},
                    files={"file": (f"report-{k}.pdf", pdf, "application/pdf")})
                if answer.status_code != 201:
                    raise RuntimeError(f"upload {k}: {answer.status_code} {answer.text[:300]}")
        uploaded = time.perf_counter() - t0
        log(f"  {args.documents} uploads answered in {uploaded:.1f} s")
        last_note = last_mail = None
        stored = 0
        deadline = t0 + args.max_seconds
        next_report = time.perf_counter() + 10
        while time.perf_counter() < deadline:
            if last_note is None:
                stored = stored_now()
                if stored >= expected:
                    last_note = time.perf_counter() - t0
            if inbox.mailed() >= expected and last_mail is None:
                last_mail = inbox.last_new_pair - t0
            if last_note is not None and last_mail is not None:
                break
            if time.perf_counter() >= next_report:
                log(f"  {time.perf_counter() - t0:6.1f} s: {stored:,} of {expected:,} "
                    f"notifications stored, {inbox.mailed():,} mailed "
                    f"({inbox.mails:,} mails)")
                next_report += 10
            time.sleep(0.1)
        elapsed = time.perf_counter() - t0  # how long it waited
        time.sleep(1.0)  # anything sent twice would arrive now
        cpu_after = server.cpu_seconds()
        stored = stored_now()
        conn.close()
    finally:
        controller.stop()
    mailed, mails = inbox.mailed(), inbox.mails
    twice = sum(n - 1 for n in inbox.pairs.values() if n > 1)
    repeated = sum(n - 1 for n in inbox.ids.values() if n > 1)
    cpu = (cpu_after - cpu_before) if cpu_before is not None and cpu_after is not None \
        else None
    log("")
    log(f"{args.subscribers:,} followers of {OFFICE} (offices {', '.join(built['offices'])}), "
        f"bell and immediate e-mail each; {args.documents} documents uploaded one after "
        f"the other; one uvicorn worker, SQLite (WAL), aiosmtpd on loopback; "
        f"times from the first upload")
    log("")
    log("| what | count | expected | last at, s | per second |")
    log("|---|---|---|---|---|")
    log(f"| uploads answered | {args.documents} | {args.documents} | {uploaded:.1f} | "
        f"{args.documents / uploaded:.1f} |")
    for name, got, at in (("notifications stored", stored, last_note),
                          ("notifications mailed (SMTP accepted)", mailed, last_mail)):
        when = f"{at:.1f}" if at is not None else f"not all after {elapsed:.1f}"
        rate = f"{got / at:,.0f}" if at else "–"
        log(f"| {name} | {got:,} | {expected:,} | {when} | {rate} |")
    log(f"\nmails accepted: {mails:,} ({mailed / max(mails, 1):.1f} notifications each); "
        f"a document mailed twice to a follower: {twice}; repeated Message-ID: {repeated}; "
        "server CPU " + (f"{cpu:.1f} s" if cpu is not None else "unknown"))
    size = f"{args.subscribers:,} x {args.documents}"
    # no bare anchor (see the module's docstring): ratio null, like startup_bench's init row
    log("no bare anchor for these rows: the ratio is null")
    for what, got, at in (("notifications", stored, last_note), ("e-mail", mailed, last_mail)):
        done = "last stored" if what == "notifications" else "last mailed (SMTP accepted)"
        if at is None:  # --max-seconds ran out: say how far it got
            done = f"stopped waiting: {got:,} of {expected:,}"
        summary(f"{what}, {size}: {done}", at or elapsed, None, "", "s",
                higher_is_better=False)
    # mails still coming when --max-seconds ran out are slow, not lost; a notification
    # missing once the mails are through, or one mailed twice, is an error
    wrong = (twice > 0 or repeated > 0 or mailed > expected
             or (last_mail is not None and stored != expected))
    if wrong:
        log(f"ERROR: {stored:,}/{expected:,} notifications, {mailed:,}/{expected:,} mailed, "
            f"{twice} mailed twice, {repeated} repeated Message-IDs")
    return 1 if wrong else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--quick", action="store_true", help="1,000 subscribers, 10 documents")
    parser.add_argument("--max-seconds", type=float, default=1500,
                        help="stop waiting for notifications and mails after this long")
    args = parser.parse_args()
    if args.quick:
        args.subscribers, args.documents = 1_000, 10
    if not 1 <= args.subscribers <= 100_000 or not 1 <= args.documents <= 1_000:
        parser.error("--subscribers 1..100000, --documents 1..1000")

    def terminated(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)  # runs the clean-up below

    signal.signal(signal.SIGTERM, terminated)
    workdir = Path(tempfile.mkdtemp(prefix="cf-notify-bench-"))
    servers: list[Server] = []
    try:
        log(f"Machine: {os.cpu_count()} CPUs, load average "
            f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; Python "
            f"{sys.version.split()[0]}")
        return run(args, workdir, servers)
    finally:
        for server in servers:
            server.stop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
