"""Cold start: ``caseforum serve`` to its first answer, against a bare FastAPI app.

Spawns ``python -m caseforum serve`` on a free loopback port (data folder already
initialised, as on every restart after the first) and polls ``GET /healthz`` every
10 ms until it answers 200; does the same for a bare FastAPI app with one
``/healthz`` route started by ``python -m uvicorn`` the same way.  The two are run
alternately, ``--runs`` times each, so that a busy machine slows both alike; the
medians and their ratio are printed.  It also times ``caseforum init`` on an empty
folder (creating the database and loading the reference offices).

    .venv/bin/python benchmarks/startup_bench.py            # 5 runs each
    .venv/bin/python benchmarks/startup_bench.py --quick    # 2 runs each
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
from benchlib import summary

BARE_APP = '''
from fastapi import FastAPI

app = FastAPI()


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def clean_env(data_dir: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CASEFORUM_")}
    env["CASEFORUM_DATA_DIR"] = str(data_dir)
    return env


def time_to_first_200(command: list[str], port: int, env: dict[str, str], log: Path) -> float:
    """Seconds from spawning ``command`` to the first 200 on /healthz."""
    url = f"http://127.0.0.1:{port}/healthz"
    with log.open("wb") as out:
        started = time.perf_counter()
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=out)
        try:
            with httpx.Client(timeout=2) as client:
                while True:
                    if proc.poll() is not None:
                        raise RuntimeError(f"{command[2]} exited: "
                                           + log.read_text(errors="replace")[-1500:])
                    try:
                        if client.get(url).status_code == 200:
                            return time.perf_counter() - started
                    except httpx.TransportError:
                        pass
                    if time.perf_counter() - started > 60:
                        raise RuntimeError("no answer within 60 s")
                    time.sleep(0.01)
        finally:
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="start-ups of each")
    parser.add_argument("--quick", action="store_true", help="2 runs each")
    args = parser.parse_args()
    runs = 2 if args.quick else args.runs
    load_before = os.getloadavg()
    folder = Path(tempfile.mkdtemp(prefix="cf-startup-"))
    try:
        bare_dir = folder / "bare"
        bare_dir.mkdir()
        (bare_dir / "bare_app.py").write_text(BARE_APP)
        data = folder / "data"
        init_times = []
        for n in range(runs):  # `caseforum init` on an empty folder each time
            empty = folder / f"empty{n}"
            started = time.perf_counter()
            subprocess.run([sys.executable, "-m", "caseforum", "init"], env=clean_env(empty),
                           check=True, capture_output=True)
            init_times.append(time.perf_counter() - started)
        subprocess.run([sys.executable, "-m", "caseforum", "init"], env=clean_env(data),
                       check=True, capture_output=True)
        ours, bare = [], []
        for _ in range(runs):
            port = free_port()
            bare.append(time_to_first_200(
                [sys.executable, "-m", "uvicorn", "--app-dir", str(bare_dir), "bare_app:app",
                 "--port", str(port), "--log-level", "warning"],
                port, clean_env(data), folder / "bare.log"))
            port = free_port()
            ours.append(time_to_first_200(
                [sys.executable, "-m", "caseforum", "serve", "--port", str(port)],
                port, clean_env(data), folder / "serve.log"))
        loads = " -> ".join(" ".join(f"{x:.1f}" for x in load)
                            for load in (load_before, os.getloadavg()))
        print(f"Python {platform.python_version()}; {os.cpu_count()} CPUs, load average "
              f"{loads} (before -> after); {runs} runs each, alternating; seconds from "
              "spawn to the first 200 on /healthz\n")
        print("| what | median s | min s | max s |")
        print("|---|---|---|---|")
        for name, values in (("caseforum serve", ours), ("bare FastAPI app (uvicorn)", bare),
                             ("caseforum init, empty folder", init_times)):
            print(f"| {name} | {statistics.median(values):.2f} | {min(values):.2f} | "
                  f"{max(values):.2f} |")
        ratio = statistics.median(ours) / statistics.median(bare)
        print(f"\ncold start: caseforum serve {statistics.median(ours):.2f} s, bare anchor "
              f"{statistics.median(bare):.2f} s: ratio {ratio:.2f}x")
        # bare / CaseForum: 0.50 is "twice the bare app's time", the goal's limit
        summary("serve to first /healthz", statistics.median(ours), statistics.median(bare),
                ">= 0.50 (<= 2x)", "s", higher_is_better=False)
        summary("caseforum init, empty folder", statistics.median(init_times), None, "< 1 s",
                "s", higher_is_better=False)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
