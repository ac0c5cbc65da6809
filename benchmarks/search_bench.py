"""Search: index rate and query latency of CaseForum's Whoosh index, side by side with
SQLite FTS5 over the same generated corpus in the same run.

    .venv/bin/python benchmarks/search_bench.py           # 100,000 dossiers, 200,000 posts
    .venv/bin/python benchmarks/search_bench.py --quick   # 5,000 and 10,000
    .venv/bin/python benchmarks/search_bench.py --dossiers 20000 --posts 40000 --queries 300
    .venv/bin/python benchmarks/search_bench.py --quick --keep /tmp/sb   # build once, reuse

CaseForum's side is its own code: items shaped as ``search/items.py`` makes them,
written as ``caseforum reindex`` writes them (``search/store.BulkWriter``: one
writer, one commit; the indexer consumer's small rounds are measured by
``index_lag_bench.py``), and queried with ``search/query.search`` for an examiner of one office (the
permission filter, six facets and highlighted snippets included).  The anchor is an
FTS5 table (``unicode61`` words for English with the porter stemmer, and a second
``trigram`` table for CJK) with the same access tokens in a column, asked for the
first page, the total and the office facet with the same filter.  Five query shapes:
one word, a two-word phrase, a class prefix, an applicant with a word, a CJK phrase.
The goal is p95 < 20 ms for a single client.

Each shape's query is repeated, so the p50 and p95 are those of a query whose words
were asked before; the ``first`` columns are each shape's first query (CaseForum then
reads the postings of its words: see ``search/segments.py``), beside FTS5's first.
Before the queries the index is warmed as the indexer warms it after each round
(facet values, common access tokens, date order; its time is printed); ``--cold``
skips that, so the first shape's first query pays for it.  ``--keep DIR`` builds the corpus in
``DIR`` once and reuses it on later runs (the index rate is then not measured).
"""

from __future__ import annotations

import argparse
import itertools
import os
import platform
import random
import re
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import summary  # noqa: E402

from caseforum.authz import CategoryTarget, Viewer  # noqa: E402
from caseforum.search import acl, store  # noqa: E402
from caseforum.search.grants import Grants  # noqa: E402
from caseforum.search.items import Batch  # noqa: E402
from caseforum.search.query import search, warm  # noqa: E402

OFFICES = ("JP", "CN", "KR", "US", "EP", "AU", "GB", "SG")
WORDS = [
    "fin", "stack", "heat", "exchanger", "louvre", "tube", "header", "brazing", "aluminium",
    "copper", "refrigerant", "battery", "electrolyte", "sulfide", "electrode", "cathode",
    "anode", "separator", "lithium", "polymer", "sensor", "optical", "lens", "wafer", "etching",
    "plasma", "substrate", "coating", "valve", "pump", "motor", "rotor", "stator", "winding",
    "inverter", "converter", "signal", "antenna", "beam", "frame", "codec",
]
CJK = ("熱交換器のフィン", "硫化物固体電解質", "换热器翅片间距", "固态电池电极", "열교환기 핀",
       "電極合材", "正极活性物质", "半導体基板", "光学レンズ", "回転子巻線")
CLASSES = ("H01M10/0562", "H01M4/36", "F28F1/32", "F28D1/047", "G02B6/12", "H01L21/3065",
           "H02K3/12", "C01B25/14", "B23K1/00", "H04N19/70")
APPLICANTS = ("Kaneshiro Materials", "Daikin Industries", "Huawei Technologies", "LG Energy",
              "Samsung SDI", "Toyota Motor", "Panasonic Holdings", "Contemporary Amperex")


#: filler vocabulary (3,000 made-up words, a few common and most rare, as in real text)
FILLER = [f"w{n:x}q" for n in range(3000)]
FILLER_CUMULATIVE = list(itertools.accumulate(1 / (n + 1) for n in range(3000)))


def text(rng: random.Random, words: int) -> str:
    """Mostly filler words (Zipf-like), one in seven a domain word of the queries."""
    parts = [rng.choice(WORDS) if rng.random() < 0.15 else
             rng.choices(FILLER, cum_weights=FILLER_CUMULATIVE)[0] for _ in range(words)]
    if rng.random() < 0.3:
        parts.insert(rng.randrange(len(parts)), rng.choice(CJK))
    return " ".join(parts)


def corpus(dossiers: int, posts: int, seed: int = 7) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    start = datetime(2015, 1, 1)
    items = []
    for i in range(dossiers):
        office = rng.choice(OFFICES)
        when = start + timedelta(days=rng.randrange(3600))
        items.append({
            "id": f"dossier:{i}", "kind": "dossier", "title": text(rng, 8),
            "body": f"{office} {2015 + i % 10}-{i:06d} " + text(rng, 20),
            "applicant": rng.choice(APPLICANTS), "numbers": f"{office}{2015 + i % 10}{i:06d}",
            "ipc": " ".join(rng.sample(CLASSES, 2)), "cited": "", "code": "",
            "office": office, "source": "opd_link" if i % 10 == 0 else "hosted",
            "year": when.year, "date": when, "url": f"/dossiers/{i}",
            "acl": " ".join(sorted(acl.dossier_tokens(office)))})
    for i in range(posts):
        office = rng.choice(OFFICES)
        when = start + timedelta(days=rng.randrange(3600), seconds=i)
        limited = rng.random() < 0.2
        category = LIMITED[office] if limited else i // 20 % len(OPEN)  # a thread: 20 posts
        items.append({
            "id": f"post:{i}", "kind": "post", "title": text(rng, 5), "body": text(rng, 40),
            "office": office, "year": when.year, "date": when, "url": f"/threads/{i // 20}",
            "category": str(category), "thread": str(i // 20),
            "acl": " ".join(sorted(acl.thread_tokens(is_private=False, participants=(),
                                                     category_id=category)))})
    return items


#: forum categories: eight open to every office, and one limited to each office
OPEN = {n: CategoryTarget() for n in range(8)}
LIMITED = {office: 100 + n for n, office in enumerate(OFFICES)}
CATEGORIES = {**OPEN, **{cid: CategoryTarget(frozenset({office}))
                         for office, cid in LIMITED.items()}}


QUERIES = {  # shape: (CaseForum query, FTS5 query on the words table, on the CJK table)
    "one word": ("electrolyte", "electrolyte", None),
    "phrase": ('"heat exchanger"', '"heat exchanger"', None),
    "class prefix": ("ipc:H01M10/*", 'ipc:"H01M10"*', None),
    "applicant + word": ('applicant:"Daikin Industries" brazing',
                         'applicant:"Daikin Industries" AND brazing', None),
    "CJK phrase": ("固体電解質", None, '"固体電解質"'),
}


def build_whoosh(folder: Path, items: list[dict[str, Any]]) -> float:
    """As ``caseforum reindex`` builds an index: one bulk writer, one commit."""
    ix = store.create(folder)
    began = time.perf_counter()
    bulk = store.BulkWriter(ix)
    for i in range(0, len(items), 500):
        bulk.add(Batch(items=items[i:i + 500]))
    bulk.commit()
    return time.perf_counter() - began


def _token(token: str) -> str:
    """An access token as one FTS5 word, fenced so that the trigram table never finds
    one inside another (``category:1`` in ``category:100``)."""
    return "x" + re.sub(r"\W", "_", token) + "x"


def build_fts(path: Path, items: list[dict[str, Any]]) -> tuple[sqlite3.Connection, float]:
    """Two FTS5 tables (words, CJK trigrams), each with the access tokens as a column
    that the query matches too (the anchor's permission filter)."""
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("CREATE VIRTUAL TABLE words USING fts5(title, body, applicant, ipc, acl,"
               " office UNINDEXED, kind UNINDEXED, date UNINDEXED, tokenize='porter unicode61')")
    db.execute("CREATE VIRTUAL TABLE cjk USING fts5(title, body, acl, tokenize='trigram')")
    began = time.perf_counter()
    for i in range(0, len(items), 500):
        chunk = list(enumerate(items[i:i + 500], start=i + 1))
        rows = [(n, it, " ".join(_token(t) for t in it["acl"].split())) for n, it in chunk]
        db.executemany("INSERT INTO words(rowid, title, body, applicant, ipc, acl, office, kind,"
                       " date) VALUES (?,?,?,?,?,?,?,?,?)",
                       [(n, it["title"], it["body"], it.get("applicant", ""),
                         it.get("ipc", "").replace("/", " "), tokens, it["office"],
                         it["kind"], it["date"].isoformat()) for n, it, tokens in rows])
        db.executemany("INSERT INTO cjk(rowid, title, body, acl) VALUES (?,?,?,?)",
                       [(n, it["title"], it["body"], tokens) for n, it, tokens in rows])
        db.commit()
    return db, time.perf_counter() - began


def fts_query(db: sqlite3.Connection, table: str, match: str, tokens: list[str]) -> int:
    """The first page with snippets, the total and (words) the office facet."""
    allowed = " OR ".join(f'"{_token(t)}"' for t in tokens)
    query = f"({match}) AND acl:({allowed})"
    base = f"FROM {table} WHERE {table} MATCH ?"
    db.execute(f"SELECT rowid, snippet({table}, 1, '<mark>', '</mark>', '…', 12) {base}"
               " ORDER BY rank LIMIT 20", [query]).fetchall()
    total = db.execute(f"SELECT count(*) {base}", [query]).fetchone()[0]
    if table == "words":
        db.execute(f"SELECT office, count(*) {base} GROUP BY office", [query]).fetchall()
    return int(total)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dossiers", type=int, default=100_000)
    parser.add_argument("--posts", type=int, default=200_000)
    parser.add_argument("--queries", type=int, default=200, help="per shape and engine")
    parser.add_argument("--quick", action="store_true", help="5,000 dossiers, 10,000 posts")
    parser.add_argument("--keep", type=Path, help="build in this folder once, then reuse it")
    parser.add_argument("--cold", action="store_true", help="no warm-up before the queries")
    args = parser.parse_args()
    if args.quick:
        args.dossiers, args.posts, args.queries = 5_000, 10_000, 100
    print(f"# search_bench: {args.dossiers:,} dossiers, {args.posts:,} posts, "
          f"{args.queries} queries per shape; Python {platform.python_version()}, "
          f"{os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
    work = args.keep or Path(tempfile.mkdtemp(prefix="cf-search-bench-"))
    try:
        if args.keep and (work / "fts.db").exists():
            db = sqlite3.connect(work / "fts.db")
            print(f"reusing the corpus in {work}")
        else:
            work.mkdir(parents=True, exist_ok=True)
            items = corpus(args.dossiers, args.posts)
            seconds = build_whoosh(work / "search", items)
            whoosh_rate = len(items) / seconds
            db, fts_seconds = build_fts(work / "fts.db", items)
            fts_rate = len(items) / fts_seconds
            del items
            print(f"index: whoosh {whoosh_rate:,.0f} items/s ({seconds:.1f} s), "
                  f"fts5 {fts_rate:,.0f} items/s ({fts_seconds:.1f} s)")
            summary("search index rate", whoosh_rate, fts_rate, "(no goal)", "items/s")
        viewer = Viewer(user_id=1, office_code="CN", role="examiner", accessing=True)
        tokens = sorted(acl.viewer_tokens(viewer, set(), CATEGORIES))
        grants = Grants(frozenset(tokens), {cid: f"category {cid}" for cid in CATEGORIES})
        if not args.cold:
            began = time.perf_counter()
            warm(work / "search")
            print(f"warm-up (what the indexer does after a round): "
                  f"{(time.perf_counter() - began) * 1000:.0f} ms")
        print("| query shape | hits (CF) | CF first ms | CF p50 ms | CF p95 ms | hits (FTS5) | "
              "FTS5 first ms | FTS5 p50 ms | FTS5 p95 ms |")
        print("|---|---|---|---|---|---|---|---|---|")
        worst = 0.0
        for shape, (ours, words, cjk) in QUERIES.items():
            cf_times, fts_times = [], []
            cf_hits = fts_hits = 0
            for _ in range(args.queries):  # alternate, so both see the same machine
                began = time.perf_counter()
                cf_hits = search(work / "search", grants, ours).total
                cf_times.append((time.perf_counter() - began) * 1000)
                began = time.perf_counter()
                fts_hits = fts_query(db, "cjk" if cjk else "words", cjk or words or "", tokens)
                fts_times.append((time.perf_counter() - began) * 1000)
            p95 = percentile(cf_times, 95)
            worst = max(worst, p95)
            print(f"| {shape} | {cf_hits:,} | {cf_times[0]:.1f} | "
                  f"{statistics.median(cf_times):.1f} | {p95:.1f} | {fts_hits:,} | "
                  f"{fts_times[0]:.1f} | {statistics.median(fts_times):.1f} | "
                  f"{percentile(fts_times, 95):.1f} |")
            summary(f"search p95, {shape}", p95, percentile(fts_times, 95), "< 20 ms", "ms",
                    higher_is_better=False)
        print(f"worst CaseForum p95: {worst:.1f} ms (goal < 20 ms)")
        db.close()
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
