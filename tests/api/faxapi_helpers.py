"""Helpers for the API tests (imported by conftest.py and the test modules).

Real parts: a `faxengine serve` process on 127.0.0.1 with a real SQLite file, a
local HTTP server with the documents, and an aiosmtpd server catching notification mail."""

from __future__ import annotations

import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

FAXENGINE = [sys.executable, "-m", "api.cli"]
CURL = shutil.which("curl")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_pdf(pages: int = 1, text: str = "faxengine test page") -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for n in range(pages):
        c.setFont("Helvetica", 28)
        c.drawString(72, 700, f"{text} {n + 1}/{pages}")
        c.rect(72, 300, 300, 200, fill=1)
        c.showPage()
    c.save()
    return buf.getvalue()


# ---------------------------------------------------------------- the mail sink

class MailSink:
    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[dict] = []
        self.port = free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: N802
                sink.messages.append({"from": envelope.mail_from, "to": list(envelope.rcpt_tos),
                                      "data": envelope.original_content or envelope.content})
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self.controller.start()

    def wait_for(self, predicate, timeout: float = 30.0) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for m in self.messages:
                if predicate(m):
                    return m
            time.sleep(0.05)
        raise AssertionError(f"no matching mail within {timeout}s; got {[m['to'] for m in self.messages]}")

    def stop(self) -> None:
        self.controller.stop()


# ---------------------------------------------------------------- the document server

class DocServer:
    """Serves files from a dict; /redirect/N chains N redirects; /goto/<host>/<path> redirects elsewhere."""

    def __init__(self) -> None:
        self.files: dict[str, tuple[str, bytes]] = {}
        self.requests: list[dict] = []
        files, requests = self.files, self.requests

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):  # noqa: ANN002
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                requests.append({"method": self.command, "path": self.path, "headers": dict(self.headers),
                                 "body": body})
                if self.path.startswith("/redirect/"):
                    n = int(self.path.split("/")[2])
                    target = "/doc.pdf" if n <= 1 else f"/redirect/{n - 1}"
                    self.send_response(302)
                    self.send_header("Location", target)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path.startswith("/goto/"):   # /goto/<host>/<path>: redirect to another host
                    _, _, host, rest = self.path.split("/", 3)
                    self.send_response(302)
                    self.send_header("Location", f"http://{host}:{self.server.server_address[1]}/{rest}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if self.path not in files:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                ctype, data = files[self.path]
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = _serve  # noqa: N815
            do_POST = _serve  # noqa: N815

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str, host: str = "localhost") -> str:
        return f"http://{host}:{self.port}{path}"

    def stop(self) -> None:
        self.httpd.shutdown()


# ---------------------------------------------------------------- the server process

def fresh_pg_database(url: str) -> str:
    """A new empty database next to the one ``url`` names (needs CREATEDB); returns its URL."""
    import uuid

    from sqlalchemy import create_engine, text

    name = "faxtest_" + uuid.uuid4().hex[:12]
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    engine.dispose()
    return url.rsplit("/", 1)[0] + "/" + name


class FaxServer:
    def __init__(self, root: Path, mail: MailSink, extra_config: str = "", pg_url: str | None = None) -> None:
        self.root = root
        self.data_dir = root / "data"
        self.port = free_port()
        self.smtp_port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.config_path = root / "faxengine.toml"
        storage = ""
        self.storage_url = f"sqlite:///{self.data_dir / 'faxengine.sqlite3'}"
        pg_url = pg_url or os.environ.get("FAXENGINE_TEST_PG_URL")
        if pg_url:   # run the server on a fresh PostgreSQL database
            self.storage_url = fresh_pg_database(pg_url)
            storage = f'[storage]\nurl = "{self.storage_url}"\n'
        self.config_path.write_text(storage + f"""
[fetch]
allowed_hosts = ["localhost"]
timeout = 5.0
max_bytes = 3000000

[scheduler]
poll_interval = 0.1
default_retry_delay = 1
retry_delay = {{ busy = 1, no_answer = 1, training_failed = 1, remote_hangup = 1 }}

[api]
max_body_bytes = 4000000

[notifications]
retries = 2
retry_delay = 0.2

[notifications.smtp]
host = "127.0.0.1"
port = {mail.port}
sender = "faxengine@test.localhost"
{extra_config}
""")
        self.proc: subprocess.Popen | None = None
        self.log_path = root / "server.log"

    def cli(self, *args: str) -> dict:
        out = subprocess.run(FAXENGINE + list(args) + ["--data-dir", str(self.data_dir), "--config",
                                                       str(self.config_path)],
                             cwd=REPO, capture_output=True, text=True, timeout=60, check=True)
        return json.loads(out.stdout.strip().splitlines()[-1])

    def start(self) -> None:
        log = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            FAXENGINE + ["serve", "--host", "127.0.0.1", "--port", str(self.port), "--smtp-port", str(self.smtp_port),
                         "--data-dir", str(self.data_dir), "--config", str(self.config_path)],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.log_path.read_text()[-3000:]}")
            try:
                httpx.get(self.base + "/v2/ping", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.1)
        raise RuntimeError("server did not start")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)

    def store(self):  # noqa: ANN201
        from engine.store import Store

        return Store(self.storage_url)


class Api:
    """One account's view of the server: token, client, and helpers."""

    def __init__(self, server: FaxServer, account: dict) -> None:
        self.server = server
        self.account = account
        self.account_id = account["account_id"]
        self.api_key = account["api_key"]
        r = httpx.put(server.base + "/v2/api_auth", json={"data": {"api_key": self.api_key}}, timeout=10)
        assert r.status_code == 201, r.text
        self.token = r.json()["auth_token"]
        self.client = httpx.Client(base_url=server.base, headers={"X-Auth-Token": self.token}, timeout=30)

    def url(self, path: str = "", account_id: str | None = None) -> str:
        return f"/v2/accounts/{account_id or self.account_id}/faxes{path}"

    def create(self, data: dict, **kw) -> dict:  # noqa: ANN003
        r = self.client.put(self.url(), json={"data": data}, **kw)
        assert r.status_code == 201, r.text
        return r.json()["data"]

    def job(self, fax_id: str) -> dict:
        r = self.client.get(self.url(f"/outgoing/{fax_id}"))
        assert r.status_code == 200, r.text
        return r.json()["data"]

    def wait_status(self, fax_id: str, statuses=("completed", "failed"), timeout: float = 60) -> dict:  # noqa: ANN001
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            job = self.job(fax_id)
            if job["status"] in statuses:
                return job
            time.sleep(0.1)
        raise AssertionError(f"job {fax_id} still {job['status']} after {timeout}s: {job}")


