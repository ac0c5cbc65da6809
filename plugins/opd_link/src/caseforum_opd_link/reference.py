"""``caseforum-opd-reference``: a One Portal Dossier stand-in serving recorded responses.

It answers the three Global Dossier paths the client speaks from a folder of
recorded responses (the files in ``fixtures/`` by default, named after the request
they answered: ``family_application_US_16123456.json``,
``doclist_JP_2017187096_A.json``, ``doccontent_US_201816123456.A_KJM2MWIEDFLYX10_1.pdf``),
on the loopback interface only, for demos and tests.

Fault switches make it misbehave the way a remote service does: ``delay`` (seconds
before each answer), ``error_rate`` (the share of requests answered 503),
``malformed`` (answers cut short or of the wrong type) and ``down`` (connections
closed without an answer).  Set them on the command line or, while it runs, with
``POST /_faults`` and a JSON object of the switches to change; ``GET /_faults``
shows them with the number of data requests answered so far.
"""

from __future__ import annotations

import json
import random
import re
import sys
import threading
import time
from dataclasses import asdict, dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import click

FIXTURES = Path(__file__).resolve().parent / "fixtures"
_PART = re.compile(r"[A-Za-z0-9.\-]{1,60}")
ROUTES: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"/patent-family/svc/family/(application|publication)/([^/]+)/([^/]+)"),
     "family_{0}_{1}_{2}.json"),
    (re.compile(r"/doc-list/svc/doclist/([^/]+)/([^/]+)/([^/]+)"), "doclist_{0}_{1}_{2}.json"),
    (re.compile(r"/doc-content/svc/doccontent/([^/]+)/([^/]+)/([^/]+)/([^/]+)/([^/]+)"),
     "doccontent_{0}_{1}_{2}_{3}.{4}"),
)


@dataclass
class Faults:
    delay: float = 0.0
    error_rate: float = 0.0
    malformed: bool = False
    down: bool = False

    def update(self, changes: dict[str, Any]) -> None:
        for key, value in changes.items():
            if key not in asdict(self):
                raise ValueError(f"unknown switch {key!r}: use delay, error_rate, "
                                 "malformed or down")
            current = getattr(self, key)
            setattr(self, key, type(current)(value))
        if not 0 <= self.error_rate <= 1:
            raise ValueError("error_rate is a share between 0 and 1")
        if not 0 <= self.delay <= 120:
            raise ValueError("delay is between 0 and 120 seconds")


class ReferenceServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int, data: Path, faults: Faults) -> None:
        self.data = data
        self.faults = faults
        self.requests = 0
        self.lock = threading.Lock()
        super().__init__(("127.0.0.1", port), Handler)


class Handler(BaseHTTPRequestHandler):
    server: ReferenceServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet: tests start many
        pass

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _json(self, status: int, value: Any) -> None:
        self._send(status, json.dumps(value).encode(), "application/json")

    def do_POST(self) -> None:
        if self.path != "/_faults":
            return self._json(404, {"message": "only /_faults takes a POST"})
        length = int(self.headers.get("Content-Length") or 0)
        try:
            self.server.faults.update(json.loads(self.rfile.read(length) or b"{}"))
        except (ValueError, TypeError) as exc:
            return self._json(400, {"message": str(exc)})
        self._faults()

    def _faults(self) -> None:
        self._json(200, {**asdict(self.server.faults), "requests": self.server.requests})

    def do_GET(self) -> None:
        if self.path == "/_faults":
            return self._faults()
        faults = self.server.faults
        if faults.down:
            self.close_connection = True  # like a service that is not there: no answer
            self.connection.close()
            return
        with self.server.lock:
            self.server.requests += 1
        if faults.delay:
            time.sleep(faults.delay)
        if faults.error_rate and random.random() < faults.error_rate:
            return self._json(503, {"message": "Service Unavailable (fault switch)"})
        path = self.path.split("?", 1)[0]
        for pattern, template in ROUTES:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            parts = match.groups()
            if not all(_PART.fullmatch(p) for p in parts):
                return self._json(400, {"message": "malformed request path"})
            if template.startswith("doccontent"):
                parts = (*parts[:-1], parts[-1].lower())
            return self._file(self.server.data / template.format(*parts))
        self._json(404, {"message": f"no such service path: {path}"})

    def _file(self, path: Path) -> None:
        if not path.is_file():
            return self._json(404, {"message": "no record found", "docList": None})
        body = path.read_bytes()
        kind = "application/pdf" if path.suffix == ".pdf" else "application/json"
        if self.server.faults.malformed:
            # JSON cut off half-way; a PDF that is really an HTML error page
            body = body[: len(body) // 2] if kind == "application/json" else \
                b"<html><body>Service temporarily unavailable</body></html>"
        self._send(200, body, kind)


def serve(port: int, data: Path, faults: Faults | None = None) -> ReferenceServer:
    """A running server (in a background thread); ``shutdown()`` stops it."""
    server = ReferenceServer(port, data, faults or Faults())
    threading.Thread(target=server.serve_forever, name="opd-reference", daemon=True).start()
    return server


@click.command()
@click.option("--port", type=click.IntRange(0, 65535), default=8765, show_default=True,
              help="port on 127.0.0.1 (0: any free port, printed at start)")
@click.option("--data", type=click.Path(exists=True, file_okay=False, path_type=Path),
              default=FIXTURES, show_default=True, help="folder of recorded responses")
@click.option("--delay", type=click.FloatRange(0, 120), default=0.0,
              help="seconds to wait before each answer")
@click.option("--error-rate", type=click.FloatRange(0, 1), default=0.0,
              help="share of requests answered 503")
@click.option("--malformed", is_flag=True, help="answer cut-off JSON and non-PDF documents")
@click.option("--down", is_flag=True, help="close every connection without an answer")
def main(port: int, data: Path, delay: float, error_rate: float, malformed: bool,
         down: bool) -> None:
    """Serve recorded One Portal Dossier (Global Dossier) responses on 127.0.0.1."""
    server = ReferenceServer(port, data, Faults(delay, error_rate, malformed, down))
    click.echo(f"One Portal Dossier reference server on http://127.0.0.1:"
               f"{server.server_address[1]} (data: {data})")
    sys.stdout.flush()
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
