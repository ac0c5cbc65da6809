"""The bit-set engine finds exactly what Whoosh's own matchers find.

A small index written in several commits (so several segments), with items
replaced and deleted in between (so deletions the engine reads from the table of
contents), then every query shape the search box can produce, answered both ways.
"""

from __future__ import annotations

import random
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from whoosh.qparser import MultifieldParser
from whoosh.query import And, Not, NumericRange, Or, Prefix, Term, Wildcard

from caseforum.search import engine, segments, store
from caseforum.search.items import Batch
from caseforum.search.query import build_query

WORDS = ["fin", "stack", "heat", "exchanger", "louvre", "tube", "battery", "sulfide",
         "固体電解質", "熱交換器", "전극"]


def _item(n: int, rng: random.Random) -> dict:
    office = rng.choice(["JP", "CN", "KR"])
    return {"id": f"post:{n}", "kind": rng.choice(["post", "dossier"]),
            "title": " ".join(rng.choices(WORDS, k=3)),
            "body": " ".join(rng.choices(WORDS, k=12)),
            "applicant": rng.choice(["Daikin Industries", "Kaneshiro Materials"]),
            "ipc": rng.choice(["H01M10/0562", "F28F1/32", "H01M4/36"]), "office": office,
            "category": str(n % 3), "year": 2015 + n % 5,
            "date": datetime(2020, 1, 1) + timedelta(days=n),
            "acl": rng.choice(["own:JP", "accessing", "category:1"])}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("engine") / "search"
    ix = store.create(folder)
    rng = random.Random(3)
    for start in (0, 120, 240):  # three commits: three segments
        store.write(ix, [Batch(items=[_item(n, rng) for n in range(start, start + 120)])])
    # replace some items of the first segments and delete others: deletions there
    store.write(ix, [Batch(items=[_item(n, rng) for n in range(0, 300, 7)],
                           gone={f"post:{n}" for n in range(3, 300, 11)})])
    return folder


def _whoosh(folder: Path, q: object, tokens: list[str]) -> set[str]:
    allowed = Or([Term("acl", t) for t in tokens])
    with store.open_index(folder).searcher() as searcher:
        return {hit["id"] for hit in searcher.search(And([q, allowed]), limit=None)}


def _ours(folder: Path, q: object, tokens: list[str], *, by_date: bool = False,
          count: int = 1000) -> tuple[engine.Answer, list[str]]:
    found = segments.handle(folder)
    assert found is not None
    with found.lock:
        answer = engine.answer(found.current(), q, tokens, engine.Overlay(),
                               by_date=by_date, first=0, count=count)
        ids = [h.part.segment.stored(h.docnum)["id"] for h in answer.hits]
    return answer, ids


PARSER = MultifieldParser(["title", "body", "applicant"], store.make_schema())
QUERIES = [
    Term("body", "heat"),
    PARSER.parse("heat exchangers"),  # stemmed, two words: And of Ors
    PARSER.parse('"heat exchanger"'),  # a phrase in three fields
    PARSER.parse("固体電解質"),  # CJK: a phrase of bigrams
    PARSER.parse("fin OR louvre"),
    PARSER.parse("battery NOT sulfide"),
    PARSER.parse("tub*"),
    Prefix("ipc", "H01M"),
    NumericRange("year", 2016, 2017),
    And([Term("office", "JP"), Not(Term("kind", "dossier"))]),
    Wildcard("applicant", "daik?n"),
    build_query('applicant:"Daikin Industries" stack', {}),
    build_query("ipc:H01M10/* year:2018", {}),
]


@pytest.mark.parametrize("q", QUERIES, ids=repr)
@pytest.mark.parametrize("tokens", [["own:JP", "accessing", "category:1"], ["category:1"]])
def test_the_same_items_as_whoosh(folder: Path, q: object, tokens: list[str]) -> None:
    expected = _whoosh(folder, q, tokens)
    answer, ids = _ours(folder, q, tokens)
    assert answer.total == len(expected)
    assert set(ids) == expected and len(ids) == len(set(ids))
    assert sum(answer.facets["kind"].values()) == answer.total


def test_pages_and_orders(folder: Path) -> None:
    q, tokens = PARSER.parse("heat"), ["own:JP", "accessing", "category:1"]
    whole, ids = _ours(folder, q, tokens)
    scores = [h.score for h in whole.hits]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0
    first, top = _ours(folder, q, tokens, count=5)
    assert top == ids[:5]  # the walk best first gives the same page as scoring all
    newest, dated = _ours(folder, q, tokens, by_date=True)
    found = segments.handle(folder)
    assert found is not None
    with found.lock:
        dates = [h.part.segment.dates()[h.docnum] for h in newest.hits]
    assert dates == sorted(dates, reverse=True) and set(dated) == set(ids)
    assert _ours(folder, q, tokens, by_date=True, count=5)[1] == dated[:5]  # walked


def test_a_commit_is_seen_by_the_next_query(folder: Path, tmp_path: Path) -> None:
    copy = tmp_path / "search"
    shutil.copytree(folder, copy)
    before, _ = _ours(copy, Term("body", "zebrafin"), ["accessing"])
    assert before.total == 0
    store.write(store.open_index(copy), [Batch(items=[{
        "id": "post:9999", "kind": "post", "title": "t", "body": "zebrafin",
        "office": "JP", "date": datetime(2021, 1, 1), "acl": "accessing"}])])
    after, ids = _ours(copy, Term("body", "zebrafin"), ["accessing"])
    assert after.total == 1 and ids == ["post:9999"]
    store.write(store.open_index(copy), [Batch(gone={"post:9999"})])
    assert _ours(copy, Term("body", "zebrafin"), ["accessing"])[0].total == 0
