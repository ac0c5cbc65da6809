"""The index stays equal to the database: incremental indexing, rebuilds, crashes."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from sqlmodel import select

from caseforum.app import create_app
from caseforum.cli import cli
from caseforum.dossiers.service import set_document_visibility
from caseforum.forum import service as forum
from caseforum.models import Category, Document, Post, User
from caseforum.search import store
from caseforum.search.indexer import SearchIndexer, rebuild
from tests.dossier_helpers import token_for, upload
from tests.forum_helpers import make_category, reply, start_thread
from tests.search_helpers import found, index_now


@pytest.fixture
def app(settings: Any) -> Any:
    """No background consumers: the index moves only when a test says so (the
    notifier's events after a change would otherwise race the rebuild's cursor)."""
    return create_app(settings.model_copy(update={"run_consumers": False}))


#: fields that are indexed and not stored: read back from their terms
UNSTORED = ("acl", "source", "group", "category", "thread")


def _contents(folder: Path) -> dict[str, dict[str, Any]]:
    """Every item's stored fields and its terms of the unstored fields, by id (the
    cursor marker left out)."""
    ix = store.open_index(folder)
    out = {}
    with ix.searcher() as searcher:
        terms: dict[int, dict[str, set[str]]] = {}
        for name in UNSTORED:
            for term in searcher.lexicon(name):
                for docnum in searcher.postings(name, term).all_ids():
                    terms.setdefault(docnum, {n: set() for n in UNSTORED})[name].add(
                        term.decode())
        for docnum, fields in searcher.iter_docs():
            if fields["id"] != store.CURSOR_ID:
                out[fields["id"]] = {**fields, **terms.get(docnum, {})}
    return out


def _duplicates(folder: Path) -> list[str]:
    """Ids stored more than once (an item indexed twice)."""
    with store.open_index(folder).searcher() as searcher:
        ids = [fields["id"] for _, fields in searcher.iter_docs()]
    return sorted({i for i in ids if ids.count(i) > 1})


def _changes(client: Any, as_user: Any, db: Any) -> int:
    """A bit of everything the indexer listens to; returns the category's id."""
    jp = token_for(db, "jp.examiner")
    upload(client, jp, "JP", "2019041872", b"a note on fin pitch", filename="n.txt",
           code="EXRP", visibility="restricted", offices="KR")
    note = db.exec(select(Document).where(Document.text_content.contains("fin pitch"))).one()
    set_document_visibility(db, document=note, visibility="restricted", offices=["CN", "SG"],
                            actor_id=None)
    db.commit()
    author, csrf = as_user("jp.examiner")
    category = make_category(db, "Moving offices")
    thread = start_thread(author, csrf, category, "Fins", "first post on fins")
    post = reply(author, csrf, thread, "second post on fins")
    reply(author, csrf, thread, "third post, hidden later")
    admin = db.exec(select(User).where(User.username == "admin")).one()
    hidden = db.exec(select(Post).where(Post.body == "third post, hidden later")).one()
    forum.set_hidden(db, moderator=admin, post=hidden, hidden=True, reason="test")
    forum.set_category_offices(db, category=db.get(Category, category), offices=["JP"])
    users = {u.username: u for u in db.exec(select(User))}
    talk, _ = forum.create_thread(db, author=users["jp.examiner"], category=None,
                                  title="Talk", body="private fins",
                                  participants=[users["kr.examiner"]])
    forum.set_members(db, thread=talk, members=[users["jp.examiner"], users["cn.examiner"]])
    db.commit()
    assert post
    return category


def test_reindex_equals_incremental_indexing(client, as_user, db, app, tmp_path) -> None:
    category = _changes(client, as_user, db)
    index_now(app)
    incremental = _contents(app.state.search_dir)
    rebuilt = tmp_path / "rebuilt" / "search"
    rebuild(app.state.engine, rebuilt)
    assert _contents(rebuilt) == incremental
    assert _duplicates(app.state.search_dir) == _duplicates(rebuilt) == []
    assert store.cursor(store.open_index(rebuilt)) == store.cursor(
        store.open_index(app.state.search_dir))
    fins = [i for i in incremental.values() if i.get("title") == "Fins"]
    assert fins and all(i["acl"] == {f"category:{category}"} for i in fins)
    assert all(i["category"] == {str(category)} for i in fins)
    note = next(i for i in incremental.values() if "fin pitch" in (i.get("body") or ""))
    assert note["acl"] == {"own:JP", "named:CN", "named:SG"} and note["group"] == {
        "examination"}
    talk = [i for i in incremental.values() if i.get("title") == "Talk"]
    users = {u.username: u.id for u in db.exec(select(User))}
    assert talk and all(i["acl"] == {f"user:{users['jp.examiner']}",
                                     f"user:{users['cn.examiner']}"} for i in talk)
    assert not any("hidden later" in (i.get("body") or "") for i in incremental.values())


def test_crash_before_commit_loses_nothing_and_repeats_nothing(as_user, db, app,
                                                               monkeypatch) -> None:
    author, csrf = as_user("cn.examiner")
    thread = start_thread(author, csrf, make_category(db), "Crash", "before the crash")
    indexer = next(c for c in app.state.consumers.consumers if isinstance(c, SearchIndexer))
    original = store.write

    def crash(*args: Any, **kwargs: Any) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(store, "write", crash)
    with pytest.raises(OSError, match="disk full"):
        indexer.process(app.state.engine)
    monkeypatch.setattr(store, "write", original)
    reply(author, csrf, thread, "after the crash")
    index_now(app)
    index_now(app)  # nothing new: nothing changes
    assert found(author, "crash", kind="post")["total"] == 2
    assert _duplicates(app.state.search_dir) == []


def test_reindex_command_and_a_deleted_index_rebuilt(app, data_dir, monkeypatch,
                                                     as_user) -> None:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(data_dir))
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "c" * 32)
    before = _contents(data_dir / "search")
    result = CliRunner().invoke(cli, ["reindex"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"indexed {len(before)} items" in result.output
    assert _contents(data_dir / "search") == before
    shutil.rmtree(data_dir / "search")  # deleted by hand
    index_now(app)  # the consumer rebuilds it before going on
    cn, _ = as_user("cn.examiner")
    assert found(cn, "sulfide")["total"] >= 1



def test_an_index_put_back_from_a_copy_catches_up_with_the_log(as_user, db, app,
                                                              tmp_path) -> None:
    """The indexer remembers the index it last wrote, to answer a round with nothing
    new in one query; an index folder replaced meanwhile (a backup put back, a copy
    from another host) is read afresh, so what happened after the copy is indexed."""
    author, csrf = as_user("cn.examiner")
    thread = start_thread(author, csrf, make_category(db), "Copies", "a tungsten anvil")
    index_now(app)
    folder = app.state.search_dir
    shutil.copytree(folder, tmp_path / "copy")
    reply(author, csrf, thread, "a cobalt hammer")
    index_now(app)
    index_now(app)  # nothing new: answered from what the indexer remembers
    shutil.rmtree(folder)
    shutil.copytree(tmp_path / "copy", folder)
    index_now(app)
    assert found(author, "cobalt", kind="post")["total"] == 1
    assert found(author, "tungsten", kind="post")["total"] == 1
    assert _duplicates(folder) == []


def test_hook_collect_search_items_feeds_plugin_items(app, as_user, db) -> None:
    from caseforum import hookimpl

    class Ledger:
        @hookimpl
        def collect_search_items(self, session, events):
            if events is not None and not any(e.kind == "thread.created" for e in events):
                return []
            return [{"id": "ledger:1", "kind": "exchange", "title": "Ledger entry vexillum",
                     "body": "", "office": "JP", "date": None, "url": "/ledger/1",
                     "parties": ["JP", "KR"], "scope": "ice"}]

    app.state.plugins.add(Ledger(), name="ledger")
    try:
        author, csrf = as_user("cn.examiner")
        start_thread(author, csrf, make_category(db), "Any", "an event")
        index_now(app)
        kr, _ = as_user("kr.examiner")
        assert found(kr, "vexillum")["total"] == 1
        assert found(author, "vexillum")["total"] == 0
    finally:
        app.state.plugins.remove("ledger")




def test_one_writer_per_host_the_other_workers_pass(as_user, db, app) -> None:
    """``serve --workers N``: every worker runs an indexer on the host's one index and
    Whoosh allows one writer; a worker that finds another writing passes its round
    instead of failing on Whoosh's lock, and the next round takes what it left."""
    import fcntl

    author, csrf = as_user("cn.examiner")
    start_thread(author, csrf, make_category(db), "Workers", "a rhodium catalyst")
    indexer = next(c for c in app.state.consumers.consumers if isinstance(c, SearchIndexer))
    folder = app.state.search_dir
    before = store.cursor(store.open_index(folder))
    with open(folder.parent / "search.lock", "a+b") as other_worker:
        fcntl.flock(other_worker, fcntl.LOCK_EX)
        assert indexer.process(app.state.engine) == 0
        assert store.cursor(store.open_index(folder)) == before
    assert indexer.process(app.state.engine) > 0
    assert found(author, "rhodium", kind="post")["total"] == 1


def test_reindex_beside_a_writing_worker_swaps_in_only_once_it_is_done(app, db) -> None:
    """``caseforum reindex`` next to a running host: the rebuilt index replaces the
    old one only while no worker holds the index's lock, so a worker's commit never
    lands in a folder that is being removed."""
    import fcntl
    import threading

    index_now(app)
    folder = app.state.search_dir
    marker = folder / "old-index"  # only the old folder has it
    marker.touch()
    with open(folder.parent / "search.lock", "a+b") as writing_worker:
        fcntl.flock(writing_worker, fcntl.LOCK_EX)
        done = threading.Event()
        worker = threading.Thread(target=lambda: (rebuild(app.state.engine, folder),
                                                  done.set()))
        worker.start()
        assert not done.wait(2.0)  # built, and waiting for the lock to swap it in
        assert marker.exists()
    worker.join(30)
    assert done.is_set() and not marker.exists()
    assert store.item_count(store.open_index(folder)) > 0
