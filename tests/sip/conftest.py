"""Fixtures for the SIP tests: endpoints on loopback, a scriptable UDP relay, raw UACs."""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
for p in (str(HERE), str(HERE.parents[1])):
    if p not in sys.path:
        sys.path.insert(0, p)

from sip_helpers import RawUac, SipRelay  # noqa: E402

from t38.sip import SipEndpoint  # noqa: E402
from t38.trunk import SipConfig  # noqa: E402


@pytest.fixture
async def endpoints():
    """Factory: ``await make(config, **kw)`` gives a started SipEndpoint, closed at the end."""
    made: list[SipEndpoint] = []

    async def make(config: SipConfig | None = None, **kw) -> SipEndpoint:
        ep = SipEndpoint(config or SipConfig(port=0), **kw)
        await ep.start()
        made.append(ep)
        return ep

    yield make
    for ep in made:
        with contextlib.suppress(Exception):
            await asyncio.wait_for(ep.close(), 10)


@pytest.fixture
def relay():
    r = SipRelay()
    yield r
    r.close()


@pytest.fixture
def raw_uac_factory():
    made: list[RawUac] = []

    def make(target: tuple[str, int]) -> RawUac:
        uac = RawUac(target)
        uac.requests = []
        made.append(uac)
        return uac

    yield make
    for uac in made:
        uac.close()
