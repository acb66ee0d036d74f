"""SIP layer speed on loopback: calls set up and torn down per second, and concurrent faxes over
SIP + T.38 with every call succeeding.

Both endpoints run in this process (so they share sippy's one dispatcher thread: the figure is
for both ends of every call on one machine).  The baseline, measured in the same run, is a plain
asyncio UDP request/response exchange of as many datagrams as one call uses, so the ratio says
what the SIP stack costs over the bare socket path.

    .venv/bin/python bench/sip.py [--calls 200] [--concurrency 10] [--faxes 4,8] [--pacing]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402

from engine.clock import MonotonicClock  # noqa: E402
from engine.t30 import T30Config, T30Session  # noqa: E402
from imaging.page import FaxPage  # noqa: E402
from t38.sip import SipEndpoint, open_call_phy  # noqa: E402
from t38.trunk import SipConfig, Trunk  # noqa: E402


class _Echo(asyncio.DatagramProtocol):
    def connection_made(self, transport):  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data, addr):  # noqa: ANN001
        self.transport.sendto(data, addr)


class _Ping(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.waiter: asyncio.Future | None = None

    def connection_made(self, transport):  # noqa: ANN001
        self.transport = transport

    def datagram_received(self, data, addr):  # noqa: ANN001
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(data)


async def baseline_round_trips(seconds: float = 1.0) -> float:
    """UDP request/response round trips per second on loopback (500-byte datagrams)."""
    loop = asyncio.get_running_loop()
    echo_t, _ = await loop.create_datagram_endpoint(_Echo, local_addr=("127.0.0.1", 0))
    ping_t, ping = await loop.create_datagram_endpoint(_Ping, remote_addr=echo_t.get_extra_info("sockname"))
    payload = b"x" * 500
    n = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        ping.waiter = loop.create_future()
        ping_t.sendto(payload)
        await ping.waiter
        n += 1
    elapsed = time.perf_counter() - start
    echo_t.close()
    ping_t.close()
    return n / elapsed


async def make_pair(on_incoming=None, **b_trunk):
    b_trunk.setdefault("t38_request_as_callee", None)
    b = SipEndpoint(SipConfig(port=0, default_trunk=Trunk(name="direct", proxy="127.0.0.1", max_calls=10000,
                                                          **b_trunk)),
                    router=lambda did, caller, trunk: "bench", on_incoming=on_incoming)
    await b.start()
    a = SipEndpoint(SipConfig(port=0, trunks=(Trunk(name="peer", proxy=f"127.0.0.1:{b.address[1]}", max_calls=10000,
                                                    t38_request_as_caller=None),)))
    await a.start()
    return a, b


async def calls_per_second(total: int, concurrency: int, t38: bool) -> tuple[float, int]:
    a, b = await make_pair()
    failures = 0
    sem = asyncio.Semaphore(concurrency)

    async def one() -> None:
        nonlocal failures
        async with sem:
            try:
                call = await a.call("2002", "peer")
                if t38:
                    call.request_t38()
                    await asyncio.wait_for(call.t38_ready, 10)
                await call.hangup()
            except Exception:  # noqa: BLE001 - counted
                failures += 1

    start = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(total)))
    elapsed = time.perf_counter() - start
    await a.close()
    await b.close()
    return total / elapsed, failures


def bench_page(seed: int) -> FaxPage:
    rng = np.random.default_rng(seed)
    pixels = np.zeros((200, 1728), dtype=bool)
    for _ in range(40):
        r, c = rng.integers(0, 190), rng.integers(0, 1700)
        pixels[r:r + 6, c:c + 24] = True
    return FaxPage(pixels=pixels, y_dpi=98)


async def concurrent_faxes(n: int, pacing: bool) -> tuple[int, float]:
    clock = MonotonicClock()
    rx_done: list[bool] = []

    async def receive(call) -> None:  # noqa: ANN001
        phy = await open_call_phy(call, clock, calling=False, pacing=pacing)
        result = await T30Session(phy, clock, T30Config(ident="RX"), calling=False).run()
        rx_done.append(result.success)
        await call.hangup()

    a, b = await make_pair(on_incoming=receive, t38_request_as_callee=0.0)

    async def send(i: int) -> bool:
        call = await a.call("2002", "peer")
        phy = await open_call_phy(call, clock, calling=True, pacing=pacing)
        result = await T30Session(phy, clock, T30Config(ident="TX"), send_pages=[bench_page(i)], calling=True).run()
        await call.hangup()
        return result.success

    start = time.perf_counter()
    results = await asyncio.gather(*(send(i) for i in range(n)), return_exceptions=True)
    elapsed = time.perf_counter() - start
    await asyncio.sleep(0.5)
    await a.close()
    await b.close()
    ok = sum(1 for r in results if r is True) if len(rx_done) >= n else 0
    ok = min(ok, sum(rx_done))
    return ok, elapsed


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--faxes", default="4,8", help="comma-separated numbers of concurrent faxes ('' = skip)")
    parser.add_argument("--pacing", action="store_true", help="pace T.38 like a real line (slow, realistic)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)

    base = await baseline_round_trips()
    print(f"baseline: {base:,.0f} UDP round trips/s on loopback")
    for t38 in (False, True):
        rate, failures = await calls_per_second(args.calls, args.concurrency, t38)
        label = "set up + T.38 re-INVITE + torn down" if t38 else "set up + torn down"
        cost = base / rate if rate else float("inf")
        print(f"SIP calls {label}: {rate:,.1f} calls/s ({args.calls} calls, {args.concurrency} at a time, "
              f"{failures} failed); one call costs {cost:,.0f} baseline round trips")
    for text in filter(None, args.faxes.split(",")):
        n = int(text)
        ok, elapsed = await concurrent_faxes(n, args.pacing)
        print(f"concurrent faxes over SIP+T.38 ({'paced' if args.pacing else 'unpaced'}): {ok}/{n} succeeded "
              f"in {elapsed:.1f} s")


if __name__ == "__main__":
    asyncio.run(main())
