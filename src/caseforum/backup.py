"""``caseforum backup`` and ``caseforum restore``: one archive holding the database and
the data folder's files, restored whole or not at all.

The archive is a tar file (gzip-compressed when its name ends in ``.gz`` or ``.tgz``)::

    manifest.json                 version, schema revisions, counts, SHA-256 of every member
    database/caseforum.db         SQLite: a copy made with the online backup API
    database/caseforum.pgdump     PostgreSQL: ``pg_dump --format=custom``
    data/...                      the data folder: stored documents (``files/``), ICE
                                  parcels and audit anchors (``ice/``), the generated
                                  secret key, the dossier-source registry

With the files in object storage (``[storage] backend = "s3"``, or any backend whose
blobs are not under the data folder) the archive is the same: the bucket's documents
(``files/``) and ICE parcels (``ice/parcels/``) are read from it into ``data/`` one at a
time, and restore sends them back to the target's bucket before the database is put
in place.

Left out: the search index (each host rebuilds its own from the database when the
folder is missing, or with ``caseforum reindex``), the schema stamp, the workers'
figures for ``/metrics`` (``serve`` empties them anyway), temporary upload
and staging folders, and the SQLite file itself (it is in ``database/``).

Restore unpacks and checks everything in a staging folder next to the data folder
(every member against its SHA-256; stored documents also against the address they are
stored under), upgrades the staged SQLite copy to this version's schema, and only then
moves it and the files into place, putting back what it moved aside if a move fails.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import IO, Any

from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import Engine, make_url

from caseforum import __version__, errors, schema
from caseforum.storage_backends import StorageBackend

FORMAT = 1
MANIFEST = "manifest.json"
SQLITE_MEMBER = "database/caseforum.db"
PGDUMP_MEMBER = "database/caseforum.pgdump"
#: what the counts in the manifest count: table name per label
COUNTED = {"dossiers": "application", "documents": "document", "posts": "post",
           "parcels": "ice_parcel", "users": "user"}
#: top-level entries of the data folder that are not backed up (rebuilt or throw-away)
SKIPPED_TOP = frozenset({"search", "search.lock", "schema-stamp.json",
                         "metrics"})  # the workers' figures of the running server
#: nested folders that only hold files in the middle of being written
SKIPPED_NESTED = frozenset({("files", "tmp"), ("ice", "staging")})
CHUNK = 1024 * 1024


class BackupError(errors.CaseForumError):
    """A backup or restore that cannot go ahead; the message says why and what to do."""


# where things are -------------------------------------------------------------------


def sqlite_path(engine: Engine) -> Path | None:
    """The SQLite file behind ``engine``; ``None`` for another database."""
    url = engine.url
    if url.get_backend_name() != "sqlite":
        return None
    if not url.database or url.database == ":memory:":
        raise BackupError("an in-memory SQLite database cannot be backed up")
    return Path(url.database).resolve()


def _data_files(data_dir: Path, database: Path | None) -> Iterator[tuple[Path, str]]:
    """(path, name in the archive) of every file of the data folder worth keeping."""
    skipped = set()
    if database is not None:
        skipped = {database, *(database.with_name(database.name + s) for s in ("-wal", "-shm",
                                                                              "-journal"))}
    for root, dirs, files in os.walk(data_dir):
        rel = Path(root).relative_to(data_dir).parts
        dirs[:] = sorted(d for d in dirs if not (not rel and d in SKIPPED_TOP)
                         and (*rel, d) not in SKIPPED_NESTED)
        for name in sorted(files):
            path = Path(root) / name
            if (not rel and name in SKIPPED_TOP) or path.resolve() in skipped:
                continue
            if path.is_file() and not path.is_symlink():
                yield path, "data/" + "/".join((*rel, name))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _tables(engine: Engine) -> set[str]:
    return set(inspect(engine).get_table_names())


def counts(engine: Engine) -> dict[str, int]:
    """Rows of the tables users would miss (0 for a table that does not exist)."""
    present = _tables(engine)
    found = {}
    with engine.connect() as connection:
        for label, table in COUNTED.items():
            found[label] = (connection.execute(text(f'SELECT count(*) FROM "{table}"')).scalar_one()
                            if table in present else 0)
    return found


def revisions(engine: Engine) -> list[str]:
    """The Alembic revisions the database is at (one per branch: core and plugins)."""
    if "alembic_version" not in _tables(engine):
        return []
    with engine.connect() as connection:
        return sorted(connection.execute(text("SELECT version_num FROM alembic_version"))
                      .scalars())


def known_revisions(extra_locations: Iterable[Path | str]) -> set[str]:
    """Every revision this installation's migrations (core and plugins) know."""
    from alembic.script import ScriptDirectory

    scripts = ScriptDirectory.from_config(schema.alembic_config(extra_locations))
    return {script.revision for script in scripts.walk_revisions()}


# PostgreSQL -----------------------------------------------------------------------


def _pg_command(tool: str, url: str) -> tuple[list[str], dict[str, str]]:
    """The tool's connection arguments; the password goes in the environment, not argv."""
    if shutil.which(tool) is None:
        raise BackupError(f"{tool} is not on PATH: install the PostgreSQL client tools "
                          f"(e.g. the postgresql-client package) of the server's version")
    parsed = make_url(url)
    args = [tool, "--no-password"]
    if parsed.host:
        args += ["--host", parsed.host]
    if parsed.port:
        args += ["--port", str(parsed.port)]
    if parsed.username:
        args += ["--username", parsed.username]
    env = dict(os.environ)
    if parsed.password:
        env["PGPASSWORD"] = str(parsed.password)
    return args, env


def _run(args: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(args, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines() or ["no message"]
        raise BackupError(f"{args[0]} failed: {lines[0]}")


# backup ------------------------------------------------------------------------------


def backup(engine: Engine, data_dir: Path, dest: Path,
           store: StorageBackend | None = None) -> dict[str, Any]:
    """Write the archive to ``dest`` (a new file); returns its manifest.

    The archive is written under a temporary name and renamed at the end, so ``dest``
    is either a whole archive or absent.  With a ``store`` that keeps its files away
    from the data folder, they are read from it into the archive too."""
    if dest.exists():
        raise BackupError(f"{dest} exists already: choose a new file name")
    if not dest.parent.is_dir():
        raise BackupError(f"no such folder: {dest.parent}")
    database = sqlite_path(engine)
    work = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
    work.mkdir(mode=0o700)
    try:
        if database is not None:
            if not database.exists():
                raise BackupError(f"no database at {database}: did 'caseforum init' run?")
            db_copy, member = work / "caseforum.db", SQLITE_MEMBER
            source, target = sqlite3.connect(database), sqlite3.connect(db_copy)
            try:
                source.backup(target)  # a consistent snapshot, while writers carry on
            finally:
                target.close()
                source.close()
            copy_engine = create_engine(f"sqlite:///{db_copy}")
            try:
                figures, at = counts(copy_engine), revisions(copy_engine)
            finally:
                copy_engine.dispose()
        else:
            db_copy, member = work / "caseforum.pgdump", PGDUMP_MEMBER
            args, env = _pg_command("pg_dump", str(engine.url))
            figures, at = counts(engine), revisions(engine)
            _run([*args, "--format=custom", "--file", str(db_copy),
                  "--dbname", str(make_url(str(engine.url)).database)], env)
        members = [(db_copy, member), *_data_files(data_dir, database)]
        manifest = {
            "format": FORMAT,
            "caseforum_version": __version__,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "database": "sqlite" if database is not None else "postgresql",
            "schema_revisions": at,
            "counts": figures,
            "files": {name: _sha256(path) for path, name in members},
        }
        part = work / "archive"
        compressed = dest.name.endswith((".gz", ".tgz"))
        with (tarfile.open(part, "w:gz") if compressed else tarfile.open(part, "w")) as archive:
            for path, name in members:
                archive.add(path, arcname=name, recursive=False)
            if store is not None and not store.local_paths:
                manifest["files"].update(_add_blobs(archive, store, work / "blob"))
            (work / MANIFEST).write_text(json.dumps(manifest, indent=2))
            archive.add(work / MANIFEST, arcname=MANIFEST)
        part.chmod(0o600)  # it holds every document, the keys and perhaps the secret key
        os.replace(part, dest)
        return manifest
    finally:
        shutil.rmtree(work, ignore_errors=True)


#: what of a store's blobs is kept: documents and OPD copies, and ICE parcels
BLOB_PREFIXES = ("files/", "ice/parcels/")


def _add_blobs(archive: tarfile.TarFile, store: StorageBackend, spool: Path
               ) -> dict[str, str]:
    """Copy the store's blobs into the archive one by one (each through ``spool``, a
    file, so that a large one is never held in memory); their SHA-256 by member name."""
    digests = {}
    for prefix in BLOB_PREFIXES:
        for key in store.blob_keys(prefix):
            with store.open_blob(key) as stream:
                digest = _copy_hashing(stream, spool)
            name = "data/" + key
            archive.add(spool, arcname=name, recursive=False)
            digests[name] = digest
            spool.unlink()
    return digests


# restore -----------------------------------------------------------------------------


def holds_content(engine: Engine, data_dir: Path,
                  store: StorageBackend | None = None) -> str | None:
    """What the target instance already holds (``None`` when it is empty).  A missing
    SQLite file is not created by asking."""
    database = sqlite_path(engine)
    figures = {} if database is not None and not database.exists() else counts(engine)
    held = [f"{n} {label}" for label, n in figures.items() if n]
    folder = data_dir / "files"
    if folder.is_dir() and any(p.is_file() for p in folder.rglob("*") if "tmp" not in p.parts):
        held.append("stored files")
    elif store is not None and not store.local_paths \
            and next(iter(store.blob_keys("files/")), None) is not None:
        held.append("stored files (in the bucket)")
    return ", ".join(held) or None


def _member_path(name: str) -> PurePosixPath:
    path = PurePosixPath(name)
    if (path.is_absolute() or ".." in path.parts or not path.parts
            or (path.parts[0] not in ("data", "database") and name != MANIFEST)):
        raise BackupError(f"the archive holds an unexpected entry {name!r}: "
                          "not a CaseForum backup; nothing was restored")
    return path


def _unpack(archive_path: Path, staging: Path) -> dict[str, str]:
    """Extract into ``staging``; returns the SHA-256 of every file extracted."""
    found: dict[str, str] = {}
    try:
        with tarfile.open(archive_path, "r:*") as archive:
            for member in archive:
                path = _member_path(member.name)
                if member.isdir():
                    continue
                if not member.isfile():
                    raise BackupError(f"the archive holds a link or device {member.name!r}: "
                                      "not a CaseForum backup; nothing was restored")
                target = staging.joinpath(*path.parts)
                target.parent.mkdir(parents=True, exist_ok=True)
                stream = archive.extractfile(member)
                assert stream is not None  # a regular file
                found[member.name] = _copy_hashing(stream, target)
                target.chmod(member.mode & 0o777)  # the secret key stays private
    except (tarfile.TarError, EOFError, OSError, ValueError) as exc:
        if isinstance(exc, BackupError):
            raise
        raise BackupError(f"{archive_path} is damaged or not a CaseForum backup "
                          f"({type(exc).__name__}: {exc}); nothing was restored") from None
    return found


def _copy_hashing(stream: IO[bytes], target: Path) -> str:
    digest = hashlib.sha256()
    with target.open("wb") as out:
        while chunk := stream.read(CHUNK):
            digest.update(chunk)
            out.write(chunk)
    return digest.hexdigest()


def _check(manifest: Any, found: dict[str, str], known: set[str]) -> None:
    """Every member listed and intact, stored documents at their own address, and a
    schema this installation can upgrade from."""
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise BackupError("the archive's manifest is missing or of an unknown format: "
                          "not a backup made by 'caseforum backup'; nothing was restored")
    listed = manifest.get("files") or {}
    unlisted = sorted(set(found) - set(listed) - {MANIFEST})
    missing = sorted(set(listed) - set(found))
    if missing or unlisted:
        raise BackupError(f"the archive is damaged: {(missing or unlisted)[0]} is "
                          f"{'missing' if missing else 'not in its manifest'}; "
                          "nothing was restored")
    for name, digest in listed.items():
        if found[name] != digest:
            raise BackupError(f"the archive is damaged: {name} does not match its SHA-256 "
                              "in the manifest; nothing was restored")
        parts = name.split("/")
        if parts[:2] == ["data", "files"] and len(parts) == 5 and parts[-1] != digest:
            raise BackupError(f"the archive is damaged: {name} is not stored under its "
                              "own SHA-256; nothing was restored")
    unknown = sorted(set(manifest.get("schema_revisions") or []) - known)
    if unknown:
        raise BackupError(f"schema revision {unknown[0]} of the archive is unknown here: it "
                          "was made by a newer CaseForum or with a plugin not installed "
                          "here; install that version first; nothing was restored")


def restore(engine: Engine, data_dir: Path, src: Path, *, force: bool,
            migrations: Iterable[Path | str] = (),
            store: StorageBackend | None = None) -> dict[str, Any]:
    """Replace the instance's database and files with the archive's; returns a summary.

    With a ``store`` that keeps its files away from the data folder, the archive's
    documents and parcels are sent to it (before the database is replaced: they are
    addressed by content or by a parcel's own id, so extra ones harm nothing)."""
    if not src.is_file():
        raise BackupError(f"no such file: {src}")
    held = holds_content(engine, data_dir, store)
    if held and not force:
        raise BackupError(f"the target instance is not empty ({held}): restore replaces "
                          "everything; add --force to do so")
    locations = [str(m) for m in migrations]
    data_dir.mkdir(parents=True, exist_ok=True)
    staging = data_dir.parent / f".{data_dir.name}.restore-{uuid.uuid4().hex[:8]}"
    staging.mkdir(mode=0o700)
    try:
        found = _unpack(src, staging)
        try:
            manifest = json.loads((staging / MANIFEST).read_text())
        except (OSError, ValueError):
            manifest = None
        _check(manifest, found, known_revisions(locations))
        before = list(manifest["schema_revisions"])
        if store is not None and not store.local_paths:
            _send_blobs(staging / "data", store)
        _refuse_mount_points(staging / "data", data_dir)
        database = sqlite_path(engine)
        if manifest["database"] == "sqlite" and database is not None:
            after = _prepare_sqlite(staging / "database" / "caseforum.db", manifest,
                                    locations)
            engine.dispose()
            _swap(staging, data_dir, database)
        elif manifest["database"] == "postgresql" and database is None:
            _restore_postgres(engine, staging / "database" / "caseforum.pgdump", force=force)
            schema.upgrade(engine, locations)
            after = revisions(engine)
            _swap(staging, data_dir, None)
        else:
            raise BackupError(f"the archive holds a {manifest['database']} database and the "
                              f"target is {'SQLite' if database else 'PostgreSQL'}: restore "
                              "into the same kind of database")
        return {"counts": manifest["counts"], "upgraded": before != after,
                "created_at": manifest["created_at"],
                "caseforum_version": manifest["caseforum_version"]}
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def _send_blobs(staged_data: Path, store: StorageBackend) -> None:
    """Put the staged documents and parcels in the store, and out of the staging folder
    (they are not to land in the data folder)."""
    for prefix in BLOB_PREFIXES:
        top = staged_data.joinpath(*prefix.strip("/").split("/"))
        if not top.is_dir():
            continue
        for path in sorted(top.rglob("*")):
            if path.is_file():
                store.put_blob(path.relative_to(staged_data).as_posix(), path)
        shutil.rmtree(top)


def _refuse_mount_points(staged_data: Path, data_dir: Path) -> None:
    """Folders are swapped by renaming, which a mount point does not allow: say so
    before anything is changed."""
    names = {p.name for p in staged_data.iterdir()} if staged_data.is_dir() else set()
    for name in sorted(names | SKIPPED_TOP):
        if os.path.ismount(data_dir / name):
            raise BackupError(f"{data_dir / name} is a mount point, which restore cannot "
                              "replace: restore into an empty local data folder and copy "
                              "its folders over (docs/deploy.md); nothing was restored")


def _prepare_sqlite(staged: Path, manifest: dict[str, Any], migrations: list[str]) -> list[str]:
    """Check the staged copy, upgrade it to this version's schema; its revisions after."""
    with contextlib.closing(sqlite3.connect(staged)) as connection:
        verdict = connection.execute("PRAGMA integrity_check").fetchone()
    if not verdict or verdict[0] != "ok":
        raise BackupError("the archive's database fails SQLite's integrity check; "
                          "nothing was restored")
    staged_engine = create_engine(f"sqlite:///{staged}")
    try:
        if (counts(staged_engine) != manifest["counts"]
                or revisions(staged_engine) != sorted(manifest["schema_revisions"])):
            raise BackupError("the archive's database does not hold what its manifest "
                              "says (counts, schema revisions); nothing was restored")
        schema.upgrade(staged_engine, migrations)
        return revisions(staged_engine)
    finally:
        staged_engine.dispose()


def _restore_postgres(engine: Engine, dump: Path, *, force: bool) -> None:
    """``pg_restore`` in one transaction: the database is replaced whole or not at all."""
    args, env = _pg_command("pg_restore", str(engine.url))
    engine.dispose()
    _run([*args, "--single-transaction", "--no-owner", "--exit-on-error",
          *(["--clean", "--if-exists"] if force else []),
          "--dbname", str(make_url(str(engine.url)).database), str(dump)], env)


def _swap(staging: Path, data_dir: Path, database: Path | None) -> None:
    """Move the staged database and data folder entries into place; on a failure put
    back what was moved aside.  The old search index and schema stamp go too: they
    describe the old database."""
    trash = staging / "old"
    trash.mkdir()
    moves: list[tuple[Path, Path]] = []  # (original place, where it went)

    def aside(path: Path) -> None:
        if path.exists() or path.is_symlink():
            kept = trash / f"{len(moves)}-{path.name}"
            os.replace(path, kept)
            moves.append((path, kept))

    placed: list[Path] = []
    try:
        if database is not None:
            ready = database.with_name(f".{database.name}.restoring")
            shutil.move(staging / "database" / "caseforum.db", ready)
            for suffix in ("", "-wal", "-shm", "-journal"):
                aside(database.with_name(database.name + suffix))
            os.replace(ready, database)
            placed.append(database)
        for name in sorted(SKIPPED_TOP):
            aside(data_dir / name)
        staged_data = staging / "data"
        for entry in sorted(staged_data.iterdir()) if staged_data.is_dir() else []:
            aside(data_dir / entry.name)
            os.replace(entry, data_dir / entry.name)
            placed.append(data_dir / entry.name)
    except BaseException:
        for path in placed:
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
        for original, kept in reversed(moves):
            os.replace(kept, original)
        raise
