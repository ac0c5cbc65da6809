"""The host's figures under ``caseforum serve --workers N``: one small file per worker.

Each worker of a multi-worker host is a process of its own, and a scrape reaches one of
them; reporting that one's counts would make a host's counters jump between scrapes and
go backwards whenever another worker answers.  So every worker also keeps its figures in
a memory-mapped file in the data folder's ``metrics`` folder (:class:`MappedValues`:
keys, each with a double), and the worker that answers ``/metrics`` adds up the files:

- counters (requests, their latency buckets and seconds, object-store requests) are
  written as they count, so a scrape sees every answer already sent; they are summed over
  every file of the run, dead workers' too, so a worker killed and replaced loses
  nothing and the host's counters never go backwards;
- what describes a process now (open websockets, fragments queued for them, dossier
  sources' health) is written every :data:`SNAPSHOT_SECONDS` and counted for live
  workers only (a dead worker's sockets are closed);
- the database figures are not in the files: the answering worker reads them once.

``caseforum serve`` empties the folder before the workers start (a new run starts at
zero) and names it in :data:`ENV` for them; a worker started otherwise (one worker,
the apps the tests build) finds no name, writes nothing and reports its own figures.
"""

from __future__ import annotations

import json
import mmap
import os
import shutil
import struct
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: the folder the supervisor of ``caseforum serve --workers N`` gives its workers
ENV = "CASEFORUM_WORKER_METRICS_DIR"
#: how often a worker writes what describes it now (the gauges); a scrape of another
#: worker sees them at most this old
SNAPSHOT_SECONDS = 1.0
#: a dossier source's states, best first: the host reports each source's worst
SOURCE_STATES = ("ok", "failing", "circuit open", "wrong contract")
#: a source written as gone (switched off since the last snapshot)
_GONE = -1.0
_PROC = Path("/proc/self/stat")

# the first item of a key says what it counts
REQUESTS, BUCKET, SECONDS, STORAGE = "requests", "bucket", "seconds", "storage"
GAUGE, SOURCE_STATE, SOURCE_FAILURES = "gauge", "source_state", "source_failures"


def prepare_run(folder: Path, workers: int) -> None:
    """In ``caseforum serve``, before any worker starts: forget an earlier run's files;
    with several workers, make the folder anew and name it for the workers (their
    environment is a copy of this process's); with one, name none."""
    shutil.rmtree(folder, ignore_errors=True)
    if workers > 1:
        # a file rmtree could not remove (another user's) would be counted as this run's
        folder.mkdir(parents=True, exist_ok=True)
        left = sorted(path.name for path in folder.iterdir())
        if left:
            raise OSError(f"cannot empty {folder} (left: {', '.join(left[:3])}): "
                          "remove it, then start again")
        os.environ[ENV] = str(folder)
    else:
        os.environ.pop(ENV, None)


def folder_from_environment() -> Path | None:
    value = os.environ.get(ENV)
    return Path(value) if value else None


@dataclass
class Figures:
    """What ``/metrics`` reports that is not read from the database: one process's, or
    the host's added up."""

    #: answers by (method, route, status)
    counts: dict[tuple[str, str, str], float] = field(default_factory=dict)
    #: by (method, route): answers per bucket (the last for slower ones), and seconds
    times: dict[tuple[str, str], tuple[list[float], list[float]]] = field(default_factory=dict)
    #: object-store requests by (backend, operation, outcome)
    storage: dict[tuple[str, str, str], float] = field(default_factory=dict)
    websockets: float = 0
    fanout: float = 0
    #: (name, plugin): (index in SOURCE_STATES, failures in a row)
    sources: dict[tuple[str, str], tuple[int, float]] = field(default_factory=dict)

    def add_counters(self, other: Figures) -> None:
        for labels, count in other.counts.items():
            self.counts[labels] = self.counts.get(labels, 0) + count
        for key, (buckets, total) in other.times.items():
            mine = self._timing(key, len(buckets))
            for i, in_bucket in enumerate(buckets):
                mine[0][i] += in_bucket
            mine[1][0] += total[0]
        for labels, count in other.storage.items():
            self.storage[labels] = self.storage.get(labels, 0) + count

    def add_state(self, other: Figures) -> None:
        self.websockets += other.websockets
        self.fanout += other.fanout
        for key, (state, failures) in other.sources.items():
            known = self.sources.get(key)
            if known is None:
                self.sources[key] = (state, failures)
            else:
                self.sources[key] = (max(known[0], state), max(known[1], failures))

    def _timing(self, key: tuple[str, str], size: int) -> tuple[list[float], list[float]]:
        timing = self.times.get(key)
        if timing is None:
            timing = self.times[key] = ([0.0] * size, [0.0])
        return timing


def source_state_index(state: str) -> int:
    try:
        return SOURCE_STATES.index(state)
    except ValueError:
        return len(SOURCE_STATES) - 1  # a state this code does not know: as bad as any


_USED = struct.Struct("i")
_VALUE = struct.Struct("dd")  # the value, and a time stamp (always 0 here)
_FIRST_SIZE = 1 << 16


class MappedValues:
    """Doubles by key in a memory-mapped file that other processes read while this one
    writes: an int (bytes used), 4 bytes of padding, then entries of an int (the key's
    length), the UTF-8 key padded to 8 bytes, and two doubles (prometheus_client's
    multiprocess layout, written here so that a worker does not import the library
    when it starts).  An entry is complete before the count of bytes used takes it in,
    and a value is replaced in one assignment, so a reader sees whole entries."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "w+b")  # noqa: SIM115  (open for the process's life)
        self._size = _FIRST_SIZE
        self._file.truncate(self._size)
        self._map = mmap.mmap(self._file.fileno(), self._size)
        self._used = 8
        self._map[0:4] = _USED.pack(self._used)
        self._positions: dict[str, int] = {}

    def write(self, key: str, value: float) -> None:
        position = self._positions.get(key)
        if position is None:
            position = self._add(key)
        self._map[position:position + 16] = _VALUE.pack(value, 0.0)

    def _add(self, key: str) -> int:
        encoded = key.encode()
        padded = encoded + b" " * (8 - (len(encoded) + 4) % 8)
        entry = struct.pack(f"i{len(padded)}sdd", len(encoded), padded, 0.0, 0.0)
        while self._used + len(entry) > self._size:
            self._size *= 2
            self._file.truncate(self._size)
            self._map = mmap.mmap(self._file.fileno(), self._size)
        self._map[self._used:self._used + len(entry)] = entry
        self._used += len(entry)
        self._map[0:4] = _USED.pack(self._used)
        position = self._positions[key] = self._used - 16
        return position


def read_values(path: Path) -> Iterator[tuple[str, float]]:
    """The (key, value) pairs of a :class:`MappedValues` file; ValueError for a file
    that is not one."""
    data = path.read_bytes()
    used = _USED.unpack_from(data, 0)[0] if len(data) >= 8 else 0
    if not 8 <= used <= len(data):
        raise ValueError(f"not a file of figures: {path}")
    position = 8
    while position < used:
        length = _USED.unpack_from(data, position)[0]
        start = position + 4
        position = start + length + (8 - (length + 4) % 8)
        if length < 0 or position + 16 > used:
            raise ValueError(f"a broken entry in {path}")
        yield data[start:start + length].decode(), _VALUE.unpack_from(data, position)[0]
        position += 16


class WorkerFile:
    """This worker's file: ``<pid>-<start in ns>.db`` (a pid the system gives again to
    a later worker makes a later name, and only the latest of a pid can be alive).
    Written under a lock: the event loop counts requests, the object store's threads
    their own requests."""

    def __init__(self, folder: Path, buckets: int) -> None:
        self.folder = folder
        self.buckets = buckets
        self.path = folder / f"{os.getpid()}-{time.time_ns()}.db"
        self._file = MappedValues(self.path)
        self._keys: dict[tuple[str, ...], str] = {}
        self._requests: dict[tuple[str, str, str, int], tuple[str, str, str]] = {}
        self._lock = threading.Lock()
        self._sources: set[tuple[str, str]] = set()

    def _key(self, key: tuple[str, ...]) -> str:
        name = self._keys.get(key)
        if name is None:
            name = self._keys[key] = json.dumps(key)
        return name

    def request(self, method: str, route: str, status: str, count: int,
                bucket: int, in_bucket: int, seconds: float) -> None:
        """One answer counted: its counter's, its bucket's and the seconds' new values
        (the three keys found in one look-up: this is on every request's way)."""
        keys = self._requests.get((method, route, status, bucket))
        if keys is None:
            keys = self._requests[(method, route, status, bucket)] = (
                self._key((REQUESTS, method, route, status)),
                self._key((BUCKET, method, route, str(bucket))),
                self._key((SECONDS, method, route)))
        with self._lock:
            write = self._file.write
            write(keys[0], count)
            write(keys[1], in_bucket)
            write(keys[2], seconds)

    def storage(self, backend: str, operation: str, outcome: str, count: int) -> None:
        key = self._key((STORAGE, backend, operation, outcome))
        with self._lock:
            self._file.write(key, count)

    def snapshot(self, figures: Figures) -> None:
        """What describes this worker now: written by it every SNAPSHOT_SECONDS."""
        values: list[tuple[tuple[str, ...], float]] = [
            ((GAUGE, "websockets"), figures.websockets), ((GAUGE, "fanout"), figures.fanout)]
        for (name, plugin), (state, failures) in figures.sources.items():
            values += [((SOURCE_STATE, name, plugin), state),
                       ((SOURCE_FAILURES, name, plugin), failures)]
        gone = self._sources - figures.sources.keys()
        values += [((SOURCE_STATE, name, plugin), _GONE) for name, plugin in gone]
        self._sources = set(figures.sources)
        keyed = [(self._key(key), value) for key, value in values]
        with self._lock:
            for key, value in keyed:
                self._file.write(key, value)

    def others(self) -> Iterator[tuple[Figures, bool]]:
        """The other workers' figures of this run, each with whether it is alive."""
        latest: dict[int, tuple[int, Path]] = {}  # by pid: the latest start and its file
        files: list[tuple[int, Path]] = []
        for path in self.folder.glob("*.db"):
            number, _, start = path.stem.partition("-")
            if not (number.isdigit() and start.isdigit()):
                continue
            pid, started = int(number), int(start)
            # this worker's own file takes part in the choice of each pid's latest: a
            # dead worker whose pid it reuses is then counted as dead, not alive
            if started > latest.get(pid, (-1, path))[0]:
                latest[pid] = (started, path)
            if path != self.path:
                files.append((pid, path))
        parent = os.getppid()
        for pid, path in files:
            try:
                figures = _figures(read_values(path), self.buckets)
            except (OSError, ValueError):  # gone, or not one of ours
                continue
            yield figures, latest[pid][1] == path and _alive(pid, parent)


def _figures(values: Iterator[tuple[str, float]], buckets: int) -> Figures:
    figures = Figures()
    states: dict[tuple[str, str], float] = {}
    failures: dict[tuple[str, str], float] = {}
    for name, value in values:
        kind, *rest = json.loads(name)
        if kind == REQUESTS:
            figures.counts[(rest[0], rest[1], rest[2])] = value
        elif kind == BUCKET:
            figures._timing((rest[0], rest[1]), buckets)[0][int(rest[2])] = value
        elif kind == SECONDS:
            figures._timing((rest[0], rest[1]), buckets)[1][0] = value
        elif kind == STORAGE:
            figures.storage[(rest[0], rest[1], rest[2])] = value
        elif kind == GAUGE and rest[0] == "websockets":
            figures.websockets = value
        elif kind == GAUGE and rest[0] == "fanout":
            figures.fanout = value
        elif kind == SOURCE_STATE:
            states[(rest[0], rest[1])] = value
        elif kind == SOURCE_FAILURES:
            failures[(rest[0], rest[1])] = value
    figures.sources = {key: (int(state), failures.get(key, 0.0))
                       for key, state in states.items() if state != _GONE}
    return figures


def _alive(pid: int, parent: int) -> bool:
    """Whether ``pid`` is a running worker of this host (a child of this worker's
    supervisor, not yet dead): a killed worker stays a zombie until the supervisor
    notices, and its pid may be given to another process later."""
    if not _PROC.exists():  # no /proc here: whether the pid exists at all
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    fields = stat.rpartition(b")")[2].split()
    return fields[0] != b"Z" and int(fields[1]) == parent


def host_figures(own: Figures, file: WorkerFile) -> Figures:
    """The host's figures: this worker's own (read now), with every earlier and other
    worker's counters and the live ones' state."""
    host = Figures()
    host.add_counters(own)
    host.add_state(own)
    for figures, alive in file.others():
        host.add_counters(figures)
        if alive:
            host.add_state(figures)
    return host
