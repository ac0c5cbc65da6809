"""HTTP client for the One Portal Dossier (Global Dossier) web service.

Three paths, under the configured ``base_url``:

- ``/patent-family/svc/family/{application|publication}/{cc}/{number}``: the family;
- ``/doc-list/svc/doclist/{cc}/{number}/{kind}``: one application's document list;
- ``/doc-content/svc/doccontent/{cc}/{docNumber}/{docId}/{pages}/{format}``: a document.

Every request has connect and read time-outs.  A failure that may pass (no
connection, a time-out, a cut connection, 429 or 5xx) is retried a bounded number
of times with exponential backoff and jitter; a 404 means "not known there"; an
answer that is not what the path promises (JSON that does not parse, a "PDF" that
is not one) is not retried and raises :class:`OpdMalformed`.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import httpx

from caseforum.sources import SourceUnavailable

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
FAMILY_MEMO_SECONDS = 30.0  # a look-up and the fetch right after it share one answer


class OpdUnavailable(SourceUnavailable):
    """The service did not answer usably after the retries."""


class OpdMalformed(OpdUnavailable):
    """The service answered something that is not what the path promises."""


class OpdClient:
    def __init__(self, base_url: str, *, timeout: float = 10.0, retries: int = 2,
                 backoff: float = 0.2) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self.backoff = backoff
        self._http = httpx.Client(
            base_url=self.base_url, follow_redirects=False,
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            headers={"Accept": "application/json", "User-Agent": "CaseForum opd_link"})
        self._memo: dict[str, tuple[float, Any]] = {}
        self._memo_lock = threading.Lock()

    def close(self) -> None:
        self._http.close()

    # The three paths ----------------------------------------------------------------

    def family(self, kind: str, office: str, number: str, *,
               reuse: bool = False) -> dict[str, Any] | None:
        """The family answer, or ``None`` when the service does not know the number.

        Each answer is remembered for a few seconds; a call with ``reuse`` takes the
        remembered one if there is one (the fetch right after a look-up), any other
        call asks the service (a refresh must see the service as it is now)."""
        path = f"/patent-family/svc/family/{kind}/{_seg(office)}/{_seg(number)}"
        with self._memo_lock:
            now = time.monotonic()
            self._memo = {k: v for k, v in self._memo.items()
                          if now - v[0] < FAMILY_MEMO_SECONDS}
            kept = self._memo.pop(path, None) if reuse else None
        if kept is not None:
            return kept[1]  # type: ignore[no-any-return]
        value = self._json(path)
        with self._memo_lock:
            self._memo[path] = (time.monotonic(), value)
        return value

    def doclist(self, office: str, number: str, kind: str = "A") -> dict[str, Any] | None:
        return self._json(f"/doc-list/svc/doclist/{_seg(office)}/{_seg(number)}/"
                          f"{_seg(kind or 'A')}")

    def document(self, ref: str) -> Iterator[bytes]:
        """The bytes of ``ref`` (``{cc}/{docNumber}/{docId}/{pages}/{format}``), streamed;
        a PDF is checked to be one before the first chunk is handed on."""
        path = "/doc-content/svc/doccontent/" + "/".join(_seg(p) for p in ref.split("/"))
        want_pdf = ref.upper().endswith("/PDF")
        for attempt in range(self.retries + 1):
            try:
                with self._http.stream("GET", path, headers={"Accept": "*/*"}) as response:
                    if response.status_code == 404:
                        raise OpdUnavailable(f"the service has no document {ref}")
                    if response.status_code in RETRY_STATUSES and attempt < self.retries:
                        self._pause(attempt)
                        continue
                    if response.status_code != 200:
                        raise OpdUnavailable(f"document {ref}: HTTP {response.status_code}")
                    started = False
                    for chunk in response.iter_bytes():
                        if not started and want_pdf and not chunk.startswith(b"%PDF-"):
                            raise OpdMalformed(f"document {ref} is not a PDF")
                        started = True
                        yield chunk
                    return
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise OpdUnavailable(f"document {ref}: {_describe(exc)}") from None
                self._pause(attempt)

    # Plumbing ------------------------------------------------------------------------

    def _pause(self, attempt: int) -> None:
        """Exponential backoff with full jitter, so retrying clients spread out."""
        time.sleep(random.uniform(0, self.backoff * (2 ** attempt)))

    def _json(self, path: str) -> dict[str, Any] | None:
        for attempt in range(self.retries + 1):
            try:
                response = self._http.get(path)
            except httpx.TransportError as exc:
                if attempt >= self.retries:
                    raise OpdUnavailable(f"{path}: {_describe(exc)}") from None
                self._pause(attempt)
                continue
            if response.status_code == 404:
                return None
            if response.status_code in RETRY_STATUSES and attempt < self.retries:
                self._pause(attempt)
                continue
            if response.status_code != 200:
                raise OpdUnavailable(f"{path}: HTTP {response.status_code}")
            try:
                value = response.json()
            except ValueError:
                raise OpdMalformed(f"{path}: the answer is not valid JSON") from None
            if not isinstance(value, dict):
                raise OpdMalformed(f"{path}: expected a JSON object, got "
                                   f"{type(value).__name__}")
            return value
        raise OpdUnavailable(f"{path}: no answer")  # not reached: the loop returns or raises


def _seg(part: str) -> str:
    return quote(str(part).strip(), safe=".-_")


def _describe(exc: httpx.TransportError) -> str:
    if isinstance(exc, httpx.TimeoutException):
        return "no answer in time"
    if isinstance(exc, httpx.ConnectError):
        return "cannot connect"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "the connection was closed without an answer"
    return type(exc).__name__
