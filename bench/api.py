"""Faxes API speed against a running `faxengine serve` (SQLite, scheduler off so only the API is measured).

Prints: JSON creations/s, multipart creations/s with a 10-page PDF, and p50/p99 latency of
GET outgoing (first page, a deep page via start_key, one job) with 100,000 jobs in the store.
Each figure is also given as a ratio to a baseline measured in the same run: the round trip of a
request the server refuses at once (401), i.e. HTTP + client cost with no work behind it.

    .venv/bin/python bench/api.py [--jobs 100000] [--seconds 5] [--concurrency 8] [--postgres URL | --no-postgres]

PostgreSQL is measured on ``--postgres URL``, else on a throwaway cluster when the Debian server binaries
and psycopg are installed (the one the API tests use, tests/api/faxapi_pg.py).
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from engine.store import GREGORIAN_OFFSET, Store  # noqa: E402
from engine.store.schema import faxes  # noqa: E402
from engine.store.store import dumps, next_rev  # noqa: E402

JOB = {"document": {"url": "http://docs.example/fax.pdf", "method": "get"}, "retries": 3, "from_name": "Bench",
       "from_number": "18884732963", "to_name": "To", "to_number": "18884732963"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def ten_page_pdf() -> bytes:
    from reportlab.lib.pagesizes import A4
    from reportlab.pdfgen import canvas

    buf = io.BytesIO()
    c = canvas.Canvas(buf, pagesize=A4)
    for n in range(10):
        c.setFont("Helvetica", 14)
        for line in range(40):
            c.drawString(60, 780 - line * 18, f"page {n + 1} line {line + 1}: the quick brown fox jumps over")
        c.showPage()
    c.save()
    return buf.getvalue()


def bulk_load(url: str, account_id: str, count: int) -> float:
    """``count`` jobs straight into the store (statuses and times spread like a busy month)."""
    store = Store(url)
    t0 = time.perf_counter()
    now = int(time.time()) + GREGORIAN_OFFSET
    rng = random.Random(1)
    statuses = ["completed"] * 8 + ["failed", "pending"]
    batch = []
    with store.engine.connect().execution_options(write=True) as conn:
        for i in range(count):
            created = now - rng.randrange(30 * 86400)
            doc = dict(JOB, to_number=f"1555{i:07d}", attempts=1, tx_result={"success": True})
            status = rng.choice(statuses)
            batch.append(dict(id=os.urandom(16).hex(), account_id=account_id, direction="out", status=status,
                              created=created, modified=created, to_number=doc["to_number"],
                              from_number=doc["from_number"], attempts=1,
                              next_attempt=time.time() + 10**7 if status == "pending" else None, node=None,
                              claimed_at=None, cancel_reason=None, progress=None, deleted=False,
                              rev=next_rev(None, doc, status), doc=dumps(doc)))
            if len(batch) == 5000:
                with conn.begin():
                    conn.execute(faxes.insert(), batch)
                batch = []
        if batch:
            with conn.begin():
                conn.execute(faxes.insert(), batch)
    store.close()
    return time.perf_counter() - t0


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(round(p / 100 * (len(values) - 1))))]


async def rate(make_request, seconds: float, concurrency: int) -> tuple[float, int]:  # noqa: ANN001
    done = 0
    errors = 0
    stop = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal done, errors
        while time.perf_counter() < stop:
            r = await make_request()
            if r.status_code in (200, 201, 401):
                done += 1
            else:
                errors += 1
    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.perf_counter() - t0), errors


async def latencies(client: httpx.AsyncClient, path: str, n: int, params: dict | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        r = await client.get(path, params=params)
        out.append((time.perf_counter() - t0) * 1000)
        assert r.status_code == 200, r.text
    return out


async def measure(base: str, token: str, account_id: str, args: argparse.Namespace) -> dict:
    pdf = ten_page_pdf()
    limits = httpx.Limits(max_connections=args.concurrency * 2)
    results: dict = {}
    async with httpx.AsyncClient(base_url=base, headers={"X-Auth-Token": token}, limits=limits,
                                 timeout=60) as client, \
            httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as anon:
        prefix = f"/v2/accounts/{account_id}/faxes"
        body = json.dumps({"data": JOB}).encode()
        baseline, _ = await rate(lambda: anon.get(prefix + "/outgoing"), args.seconds, args.concurrency)
        results["baseline_401_per_s"] = baseline
        json_rate, json_err = await rate(lambda: client.put(prefix, content=body,
                                                            headers={"Content-Type": "application/json"}),
                                         args.seconds, args.concurrency)
        results["json_creations_per_s"] = json_rate
        results["json_errors"] = json_err
        files = [("content", ("fax.json", json.dumps({"data": {k: v for k, v in JOB.items() if k != "document"}}),
                              "application/json")), ("content", ("fax.pdf", pdf, "application/pdf"))]
        mp_rate, mp_err = await rate(lambda: client.put(prefix, files=files), args.seconds, args.concurrency)
        results["multipart_10page_creations_per_s"] = mp_rate
        results["multipart_errors"] = mp_err
        results["pdf_bytes"] = len(pdf)

        base_lat = []
        for _ in range(200):
            t0 = time.perf_counter()
            await anon.get(prefix + "/outgoing")
            base_lat.append((time.perf_counter() - t0) * 1000)
        first = await latencies(client, prefix + "/outgoing", args.samples)
        page = (await client.get(prefix + "/outgoing", params={"page_size": 50})).json()
        key = page.get("next_start_key")
        for _ in range(200):   # walk 200 pages deep (10,000 rows in)
            page = (await client.get(prefix + "/outgoing", params={"start_key": key})).json()
            key = page.get("next_start_key") or key
        deep = await latencies(client, prefix + "/outgoing", args.samples, {"start_key": key})
        one_id = page["data"][0]["id"]
        single = await latencies(client, prefix + f"/outgoing/{one_id}", args.samples)
        outbox = await latencies(client, prefix + "/outbox", max(args.samples // 4, 20))
        for name, lat in (("baseline_401", base_lat), ("list_first_page", first), ("list_deep_page", deep),
                          ("get_one_job", single), ("outbox_first_page", outbox)):
            results[f"{name}_ms_p50"] = pct(lat, 50)
            results[f"{name}_ms_p99"] = pct(lat, 99)
    return results


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--concurrency", type=int, default=8)
    ap.add_argument("--samples", type=int, default=500)
    ap.add_argument("--postgres", default="", help="PostgreSQL URL to measure as well")
    ap.add_argument("--no-postgres", action="store_true", help="SQLite only")
    args = ap.parse_args()
    cluster = None
    if not args.postgres and not args.no_postgres:
        sys.path.insert(0, str(REPO / "tests" / "api"))
        from faxapi_pg import PgCluster, server_bin_dir

        try:
            import psycopg  # noqa: F401
            have_psycopg = True
        except ImportError:
            have_psycopg = False
        if server_bin_dir() and have_psycopg:
            cluster = PgCluster()
            args.postgres = cluster.url
        else:
            print("PostgreSQL not measured: install the Debian package postgresql and psycopg[binary]")
    try:
        run_all(args)
    finally:
        if cluster is not None:
            cluster.stop()
    return 0


def run_all(args: argparse.Namespace) -> None:
    stores = [("sqlite", None)] + ([("postgresql", args.postgres)] if args.postgres else [])
    for kind, url in stores:
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            cfg = Path(tmp) / "bench.toml"
            storage = f'[storage]\nurl = "{url}"\n' if url else ""
            cfg.write_text(f"{storage}[scheduler]\nenabled = false\n[email_gateway]\nenabled = false\n")
            common = ["--data-dir", str(Path(tmp) / "data"), "--config", str(cfg)]
            out = subprocess.run([sys.executable, "-m", "api.cli", "accounts", "create", "bench"] + common,
                                 cwd=REPO, capture_output=True, text=True, check=True)
            account = json.loads(out.stdout)
            load_s = bulk_load(url or f"sqlite:///{Path(tmp) / 'data' / 'faxengine.sqlite3'}", account["account_id"],
                               args.jobs)
            proc = subprocess.Popen([sys.executable, "-m", "api.cli", "serve", "--port", str(port)] + common,
                                    cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            try:
                base = f"http://127.0.0.1:{port}"
                for _ in range(300):
                    try:
                        httpx.get(base + "/", timeout=1)
                        break
                    except httpx.HTTPError:
                        time.sleep(0.1)
                token = httpx.put(base + "/v2/api_auth", json={"data": {"api_key": account["api_key"]}}).json()[
                    "auth_token"]
                res = asyncio.run(measure(base, token, account["account_id"], args))
            finally:
                proc.terminate()
                proc.wait(20)
        b = res["baseline_401_per_s"]
        print(f"== {kind}: {args.jobs} jobs preloaded in {load_s:.1f} s; concurrency {args.concurrency}; "
              f"{os.cpu_count()} CPUs")
        print(f"baseline (401, no work)       {b:8.0f} req/s")
        jr, mr = res["json_creations_per_s"], res["multipart_10page_creations_per_s"]
        print(f"JSON creations                {jr:8.0f} /s   ratio {jr / b:.2f}"
              f"   (goal 500/s; errors {res['json_errors']})")
        print(f"multipart 10-page PDF ({res['pdf_bytes'] // 1024} kB) {mr:8.0f} /s   ratio {mr / b:.2f}"
              f"   (errors {res['multipart_errors']})")
        bl = res["baseline_401_ms_p50"]
        for name in ("baseline_401", "list_first_page", "list_deep_page", "get_one_job", "outbox_first_page"):
            p50, p99 = res[f"{name}_ms_p50"], res[f"{name}_ms_p99"]
            print(f"{name:<28}  p50 {p50:6.2f} ms  p99 {p99:6.2f} ms   p50 ratio {p50 / bl:5.2f}"
                  + ("   (goal p99 < 50 ms)" if name == "list_first_page" else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
