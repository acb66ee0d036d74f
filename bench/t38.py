"""T.30 over T.38: protocol efficiency against spandsp, and concurrent-call capacity.

Run: .venv/bin/python bench/t38.py [--quick] [--calls 25,50,100,200] [--capacity-pages 1]

1. Efficiency (issue 3 goal: ratio <= 1.05).  A 3-page fine ECM call at V.17 14400 (A4-length
   pages) into a spandsp T.38 receiver, sent (a) by spandsp's own T.38 terminal and (b) by our
   T.30 + T38Phy, both over the same UDPTL sockets on 127.0.0.1, both paced at line speed, in a
   virtual clock stepped every 20 ms (so the figures are the call's line time, what a real-time
   call takes on the wall clock, independent of machine load).  Prints both times, the ratio
   ours/spandsp, and the transcript of each.
2. Capacity (goal: >= 100 calls per core, every call succeeding).  N concurrent calls, our sender
   to our receiver over loopback UDPTL, paced in REAL time in this one process (one core at most),
   for each N given.  Prints wall time, successes, process CPU seconds, CPU per call and the CPU
   share of one core per concurrent call (=> calls per core), stopping at the first N with a
   failure.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests" / "t38"))

import numpy as np  # noqa: E402
from t38_harness import Lockstep, SpandspPeer, VirtualClock  # noqa: E402

from engine.clock import MonotonicClock  # noqa: E402
from engine.t30 import T30Config, T30Session  # noqa: E402
from imaging.page import FaxPage  # noqa: E402
from modem.spandsp.testing import make_fax_tiff, read_fax_pages  # noqa: E402
from t38.phy import T38PhyOptions, open_t38_udptl  # noqa: E402
from t38.udptl import UdptlConfig  # noqa: E402

# ---------------------------------------------------------------- 1. efficiency

async def spandsp_to_spandsp(src: Path, rx: Path) -> tuple[float, dict, dict]:
    clock = VirtualClock()
    net = Lockstep(clock)
    common = dict(ecm=True, modems=("v17",), t38_version=0)
    receiver = SpandspPeer(net, False, rx_tiff=str(rx), ident="RX", **common)
    sender = SpandspPeer(net, True, tx_tiff=str(src), ident="TX", **common)
    a = await receiver.start()
    b = await sender.start(remote=a)
    receiver.endpoint.remote = b
    done_at: list[float] = []

    def done() -> bool:
        if receiver.terminal.done and not done_at:
            done_at.append(clock.now())
        return receiver.terminal.done and sender.terminal.done

    await net.run(done, 900)
    stats = receiver.terminal.stats(), sender.terminal.stats()
    sender.close()
    receiver.close()
    return done_at[0], *stats


async def ours_to_spandsp(pages: list[np.ndarray], rx: Path) -> tuple[float, dict, object, list[str]]:
    clock = VirtualClock()
    net = Lockstep(clock)
    receiver = SpandspPeer(net, False, rx_tiff=str(rx), ident="RX", ecm=True, modems=("v17",), t38_version=0)
    addr = await receiver.start()
    phy = await open_t38_udptl(clock, T38PhyOptions(calling=True, version=0), remote=addr,
                               udptl_config=UdptlConfig())
    receiver.endpoint.remote = phy.transport.local_address
    net.endpoints.append(phy.transport)
    session = T30Session(phy, clock, T30Config(ident="TX", ecm=True), calling=True,
                         send_pages=[FaxPage(p, y_dpi=196) for p in pages])
    task = asyncio.ensure_future(session.run())
    done_at: list[float] = []

    def done() -> bool:
        if receiver.terminal.done and not done_at:
            done_at.append(clock.now())
        return receiver.terminal.done and task.done()

    await net.run(done, 900)
    stats = receiver.terminal.stats()
    receiver.close()
    await phy.hangup()
    return done_at[0], stats, task.result(), session.log


def efficiency(tmp: Path, height: int) -> float:
    src = tmp / "three.tif"
    pages = make_fax_tiff(src, pages=3, height=height, dpi=(204, 196), seed=7)
    t_base, rx_stats, _ = asyncio.run(spandsp_to_spandsp(src, tmp / "base_rx.tif"))
    base_ok = rx_stats["ok"] and _same(pages, read_fax_pages(tmp / "base_rx.tif"))
    t_ours, rx2, result, log = asyncio.run(ours_to_spandsp(pages, tmp / "ours_rx.tif"))
    ours_ok = rx2["ok"] and result.success and _same(pages, read_fax_pages(tmp / "ours_rx.tif"))
    ratio = t_ours / t_base
    print(f"== efficiency: 3 pages 1728x{height} fine, ECM, V.17 14400, into a spandsp T.38 receiver")
    print(f"  spandsp -> spandsp : {t_base:7.2f} s line time   ok={base_ok}  "
          f"({rx_stats['encoding']}, {' '.join(rx_stats['frames'])})")
    print(f"  ours    -> spandsp : {t_ours:7.2f} s line time   ok={ours_ok}  "
          f"({rx2['encoding']}, {' '.join(rx2['frames'])})")
    print(f"  ratio ours/spandsp : {ratio:.3f}   (goal <= 1.05)")
    return ratio


def _same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return len(a) == len(b) and all(x.shape == y.shape and np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ---------------------------------------------------------------- 2. capacity

async def one_call(pages: list[FaxPage], clock: MonotonicClock, delay: float = 0.0) -> tuple[bool, bool, float]:
    await asyncio.sleep(delay)
    rx_phy = await open_t38_udptl(clock, T38PhyOptions(calling=False), local=("127.0.0.1", 0))
    tx_phy = await open_t38_udptl(clock, T38PhyOptions(calling=True), local=("127.0.0.1", 0),
                                  remote=rx_phy.transport.local_address)
    got: list = []
    tx = T30Session(tx_phy, clock, T30Config(ident="TX"), send_pages=pages, calling=True)
    rx = T30Session(rx_phy, clock, T30Config(ident="RX"), on_page=lambda p, _b: got.append(p), calling=False)
    t0 = clock.now()
    r_tx, r_rx = await asyncio.gather(tx.run(), rx.run())
    ok_pixels = len(got) == len(pages) and all(np.array_equal(np.asarray(a.pixels, dtype=bool),
                                                              np.asarray(b.pixels, dtype=bool))
                                               for a, b in zip(pages, got, strict=True))
    return r_tx.success and r_rx.success, ok_pixels, clock.now() - t0


async def capacity_run(n: int, pages: list[FaxPage], stagger: float) -> tuple[int, int, float, float, float]:
    clock = MonotonicClock()
    cpu0, wall0 = time.process_time(), time.monotonic()
    results = await asyncio.gather(*(one_call(pages, clock, i * stagger / n) for i in range(n)),
                                   return_exceptions=True)
    cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    ok = sum(1 for r in results if not isinstance(r, BaseException) and r[0])
    pixels = sum(1 for r in results if not isinstance(r, BaseException) and r[1])
    call_time = float(np.mean([r[2] for r in results if not isinstance(r, BaseException)] or [0.0]))
    return ok, pixels, cpu, wall, call_time


def capacity(ns: list[int], page_count: int, tmp: Path, stagger: float) -> None:
    src = make_fax_tiff(tmp / "cap.tif", pages=page_count, height=1100, dpi=(204, 196), seed=9)
    pages = [FaxPage(p, y_dpi=196) for p in src]
    print(f"== capacity: N concurrent calls ours -> ours, {page_count} page(s) 1728x1100 fine, ECM V.17, "
          f"real-time pacing, loopback UDPTL, one process (so at most one core), starts spread over {stagger:g} s")
    print("   load = process CPU s / wall s; calls/core = call s / (CPU s per call), the number of such calls "
          "one core sustains; stretch = mean call time / the N=1 call time (> 1: pacing fell behind line time)")
    print(f"  {'N':>5} {'ok':>5} {'pixels':>6} {'wall s':>7} {'call s':>7} {'stretch':>7} {'CPU s':>7} "
          f"{'CPU/call s':>10} {'load':>6} {'calls/core':>10}")
    best = best_paced = 0
    base_call = None
    for n in ns:
        ok, pixels, cpu, wall, call_time = asyncio.run(capacity_run(n, pages, stagger))
        base_call = base_call or call_time
        load = cpu / wall
        stretch = call_time / base_call
        print(f"  {n:>5} {ok:>5} {pixels:>6} {wall:>7.1f} {call_time:>7.1f} {stretch:>7.2f} {cpu:>7.2f} "
              f"{cpu / n:>10.3f} {load:>6.2f} {call_time / (cpu / n):>10.0f}", flush=True)
        if ok < n or pixels < n:
            print(f"  stopping: {n - ok} call(s) failed at N={n}")
            break
        best = n
        if stretch <= 1.05:
            best_paced = n
        if stretch > 1.25:
            print("  stopping: calls ran 25% longer than line time (the loop cannot keep pace)")
            break
    print(f"  largest N with every call succeeding: {best}; and still at line speed (stretch <= 1.05): "
          f"{best_paced}  (goal: >= 100 per core)")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short pages, N=10 only")
    ap.add_argument("--calls", default="1,50,100,200,300", help="comma-separated N for the capacity runs")
    ap.add_argument("--capacity-pages", type=int, default=1)
    ap.add_argument("--skip-capacity", action="store_true")
    ap.add_argument("--stagger", type=float, default=10.0, metavar="S",
                    help="spread the call starts over S seconds, as real traffic is (default 10)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        efficiency(tmp, 600 if args.quick else 2200)
        if not args.skip_capacity:
            ns = [1, 10] if args.quick else [int(x) for x in args.calls.split(",") if x]
            capacity(ns, args.capacity_pages, tmp, args.stagger)
    return 0


if __name__ == "__main__":
    sys.exit(main())
