"""Closing an endpoint leaves none of its sippy timers behind.

sippy's dispatcher is one thread per process, shared by every endpoint: a closed endpoint's
retransmission timers kept firing into its shut-down transaction manager and logged
"sippy: EventDispatcher2: unhandled exception ... 'NoneType' object is not subscriptable"."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket

import pytest
from sip_helpers import direct_trunk

from t38.sip import CallFailure, SipEndpoint
from t38.trunk import SipConfig

pytestmark = pytest.mark.timeout(60)


def _sippy_errors(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.getMessage().startswith("sippy:")
            or "unhandled exception" in r.getMessage()]


async def _recv(sock: socket.socket, timeout: float) -> bytes:
    loop = asyncio.get_running_loop()
    return await asyncio.wait_for(loop.sock_recv(sock, 65536), timeout)


async def test_closed_endpoint_stops_retransmitting_and_logs_no_sippy_error(caplog):
    """An INVITE into a silent peer is being retransmitted (timer A) when the endpoint closes; a second
    endpoint keeps the process's SIP stack running. No retransmission and no sippy error may follow."""
    caplog.set_level(logging.DEBUG, logger="t38.sip")
    hole = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)     # a peer that never answers
    hole.bind(("127.0.0.1", 0))
    hole.setblocking(False)
    other = SipEndpoint(SipConfig(bind_address="127.0.0.1", port=0))
    ep = SipEndpoint(SipConfig(bind_address="127.0.0.1", port=0,
                               trunks=(direct_trunk(hole.getsockname()[1], name="hole"),)))
    await other.start()
    try:
        await ep.start()
        dial = asyncio.ensure_future(ep.call("2002", "hole"))
        assert b"INVITE " in await _recv(hole, 5)
        assert b"INVITE " in await _recv(hole, 5)     # timer A: a retransmission, so the timer runs
        await ep.close()
        with contextlib.suppress(CallFailure, asyncio.CancelledError):
            await asyncio.wait_for(dial, 5)
        while True:                                    # what was in flight when it closed
            try:
                hole.recv(65536)
            except BlockingIOError:
                break
        # timer A doubles from 0.5 s: the next ones were due within 4 s of the close
        with pytest.raises(TimeoutError):
            data = await _recv(hole, 4.5)
            pytest.fail(f"the closed endpoint still sends: {data[:60]!r}")
        assert _sippy_errors(caplog) == []
    finally:
        hole.close()
        with contextlib.suppress(Exception):
            await ep.close()
        await other.close()
