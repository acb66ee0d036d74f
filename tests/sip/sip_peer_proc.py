"""A fax-receiving SIP endpoint in its own process, for the two-process tests.

    python sip_peer_proc.py --request-t38 {none,now} [--public HOST:PORT] [--calls N] [--seconds S]

Prints ``READY <port>``, then one JSON line per received fax (the T.30 result and the page
checksums), and exits after ``--calls`` faxes or ``--seconds``."""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from engine.clock import MonotonicClock  # noqa: E402
from engine.t30 import T30Config, T30Session  # noqa: E402
from t38.sip import SipCall, SipEndpoint, open_call_phy  # noqa: E402
from t38.trunk import SipConfig, Trunk  # noqa: E402


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--request-t38", choices=("none", "now"), default="none")
    parser.add_argument("--public", default="")
    parser.add_argument("--calls", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=60)
    args = parser.parse_args()
    done = asyncio.Event()
    count = 0
    clock = MonotonicClock()

    async def receive(call: SipCall) -> None:
        nonlocal count
        pages = []
        phy = await open_call_phy(call, clock, calling=False, pacing=False, watch_media=30)
        result = await T30Session(phy, clock, T30Config(ident="PEER-PROCESS"), calling=False,
                                  on_page=lambda p, _bad: pages.append(p)).run()
        await call.hangup()
        out = result.to_dict()
        out["page_md5"] = [hashlib.md5(p.pixels.tobytes()).hexdigest() for p in pages]
        out["glare_count"] = call.glare_count
        out["t38_requests"] = call.t38_requests
        print(json.dumps(out), flush=True)
        count += 1
        if count >= args.calls:
            done.set()

    trunk = Trunk(name="direct", proxy="127.0.0.1",
                  t38_request_as_callee=0.05 if args.request_t38 == "now" else None)
    ep = SipEndpoint(SipConfig(port=0, default_trunk=trunk, public_address=args.public),
                     router=lambda did, caller, t: "peer" if did == "2002" else None, on_incoming=receive)
    await ep.start()
    print(f"READY {ep.address[1]}", flush=True)
    try:
        await asyncio.wait_for(done.wait(), args.seconds)
    except TimeoutError:
        print(json.dumps({"timeout": True}), flush=True)
    await ep.close()


if __name__ == "__main__":
    asyncio.run(main())
