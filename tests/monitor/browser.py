"""Load one HTML file in Debian's headless Chromium and report what it did on the network and
in the console.

The file is served from a loopback HTTP server that records every request it receives, and
Chromium writes a net-log of every URL request it makes. Chromium also talks to its own
services on start (network time, account checks) whatever the page holds; those requests
carry no page in their network isolation key, so the page's requests are the ones whose key
names the loopback site. Console messages come from `--enable-logging=stderr --v=0`, which logs
each one as `INFO:CONSOLE...`.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--enable-logging=stderr",
    "--v=0",
)
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def available() -> bool:
    return Path(CHROMIUM).is_file()


@dataclass
class PageLoad:
    served: list[str]  # paths the loopback server was asked for
    page_requests: list[str]  # URLs the page caused Chromium to request (net-log)
    console: list[str]  # console messages (errors, warnings, logs)
    dom: str  # the DOM after load (--dump-dom)


class _Recorder(SimpleHTTPRequestHandler):
    requests: list[str]

    def send_head(self):  # type: ignore[no-untyped-def]  # every GET and HEAD passes here
        self.requests.append(self.path)
        return super().send_head()

    def log_message(self, format: str, *args: object) -> None:  # the stdlib's signature
        pass  # recorded above; keep pytest's output clean


def load(page: Path, workdir: Path, timeout: float = 60) -> PageLoad:
    """Open `page` (served from its directory on 127.0.0.1) in headless Chromium."""
    served: list[str] = []
    handler = type("Handler", (_Recorder,), {"requests": served})
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(handler, directory=str(page.parent)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    netlog = workdir / "netlog.json"
    try:
        port = server.server_address[1]
        proc = subprocess.run(
            [
                CHROMIUM,
                *FLAGS,
                f"--user-data-dir={workdir / 'profile'}",
                f"--log-net-log={netlog}",
                "--dump-dom",
                f"http://127.0.0.1:{port}/{page.name}",
            ],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    finally:
        server.shutdown()
        server.server_close()
    if proc.returncode != 0:
        raise AssertionError(f"chromium exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    return PageLoad(
        served=served,
        page_requests=page_requests(netlog, "http://127.0.0.1"),
        console=[m.group(1) for m in CONSOLE.finditer(proc.stderr)],
        dom=proc.stdout,
    )


def page_requests(netlog: Path, site: str) -> list[str]:
    """URLs whose network isolation key has the page's site as its top frame."""
    text = netlog.read_text(encoding="utf-8", errors="replace").rstrip().rstrip(",")
    if not text.endswith("}"):
        text += "]}"  # a log cut short at exit: close the events array
    log = json.loads(text)
    start_job = log["constants"]["logEventTypes"]["URL_REQUEST_START_JOB"]
    urls = []
    for event in log["events"]:
        params = event.get("params") or {}
        if event["type"] != start_job or "url" not in params:
            continue
        if str(params.get("network_isolation_key", "")).split(" ")[0] == site:
            urls.append(params["url"])
    return sorted(set(urls))
