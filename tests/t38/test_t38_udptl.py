"""UDPTL state machines and real UDP sockets on 127.0.0.1 with induced loss."""

from __future__ import annotations

import asyncio
import random

import pytest

from t38.ifp import DataType, Field, FieldType, IfpPacket, decode, encode
from t38.udptl import UdptlConfig, UdptlError, UdptlReceiver, UdptlSender, decode_packet, open_udptl


def ifps(n: int, size: int = 20) -> list[bytes]:
    return [encode(IfpPacket.data(DataType.V17_14400, Field(FieldType.T4_NON_ECM_DATA, bytes([i & 0xFF]) * size)))
            for i in range(n)]


class Collect:
    def __init__(self) -> None:
        self.got: list[tuple[int, bytes | None]] = []

    def __call__(self, seq: int, ifp: bytes | None) -> None:
        self.got.append((seq, ifp))


def test_in_order_duplicates_dropped():
    out = Collect()
    rx = UdptlReceiver(out)
    tx = UdptlSender()
    data = [tx.build(i) for i in ifps(5)]
    for d in data + data[2:4]:
        rx.feed(d)
    assert [s for s, _ in out.got] == [0, 1, 2, 3, 4]
    assert rx.stats.duplicates == 2


def test_reordering_delivers_in_order_without_redundancy():
    out = Collect()
    rx = UdptlReceiver(out, UdptlConfig(redundancy=0))
    tx = UdptlSender(UdptlConfig(redundancy=0))
    data = [tx.build(i) for i in ifps(6)]
    for idx in (0, 2, 1, 4, 3, 5):
        rx.feed(data[idx])
    assert [s for s, _ in out.got] == list(range(6))
    assert all(i is not None for _, i in out.got)


def test_redundancy_fills_a_gap_immediately():
    out = Collect()
    rx = UdptlReceiver(out)
    tx = UdptlSender(UdptlConfig(redundancy=3))
    data = [tx.build(i) for i in ifps(8)]
    for idx in (0, 1, 5, 6, 7):  # 2, 3, 4 lost: packet 5 carries 4, 3, 2
        rx.feed(data[idx])
    assert [s for s, _ in out.got] == list(range(8))
    assert rx.stats.recovered_redundancy == 3


def test_gap_given_up_after_window_and_after_time():
    now = [0.0]
    out = Collect()
    cfg = UdptlConfig(redundancy=0, reorder_window=4, gap_timeout=0.5)
    rx = UdptlReceiver(out, cfg, now=lambda: now[0])
    tx = UdptlSender(cfg)
    data = [tx.build(i) for i in ifps(12)]
    rx.feed(data[0])
    rx.feed(data[2])                          # 1 missing: wait
    assert [s for s, _ in out.got] == [0]
    now[0] = 0.6
    rx.poll()                                 # too old: 1 declared lost
    assert out.got[1] == (1, None) and out.got[2][0] == 2
    for idx in range(4, 9):                   # 3 missing, window of 4 exceeded at 7
        rx.feed(data[idx])
    assert [s for s, _ in out.got] == list(range(9))
    assert out.got[3] == (3, None) and rx.stats.lost == 2


def test_sequence_wraps_at_65535():
    out = Collect()
    tx = UdptlSender(UdptlConfig(redundancy=1), first_seq=65533)
    rx = UdptlReceiver(out, UdptlConfig(redundancy=1))
    data = [tx.build(i) for i in ifps(6)]
    assert [decode_packet(d).seq for d in data] == [65533, 65534, 65535, 0, 1, 2]
    for idx in (0, 1, 3, 4, 5):               # 65535 lost, recovered from seq 0's redundancy
        rx.feed(data[idx])
    assert [s for s, _ in out.got] == [65533, 65534, 65535, 0, 1, 2]
    assert all(i is not None for _, i in out.got)


def test_max_datagram_sheds_redundancy_then_refuses():
    cfg = UdptlConfig(redundancy=3, max_datagram=100)
    tx = UdptlSender(cfg)
    for ifp in ifps(5, size=30):              # IFP ~36 octets: only 1 secondary fits in 100
        data = tx.build(ifp)
        assert len(data) <= 100
    assert len(decode_packet(data).secondaries) == 1
    assert tx.ifp_budget() == 24              # (100 - 8) // 4 = 23, floored at 24
    with pytest.raises(UdptlError):
        tx.build(ifps(1, size=120)[0])


def test_malformed_datagrams_counted_not_fatal():
    out = Collect()
    rx = UdptlReceiver(out)
    for junk in (b"", b"\x00", b"\x00\x01\x05\x02", b"\xff" * 40):
        rx.feed(junk)
    assert rx.stats.malformed == 4 and out.got == []


async def _exchange(loss_rate: float, redundancy: int, n: int, seed: int) -> tuple[Collect, object]:
    rng = random.Random(seed)
    out = Collect()
    cfg = UdptlConfig(redundancy=redundancy, gap_timeout=0.2)
    b = await open_udptl(out, config=cfg)
    a = await open_udptl(lambda s, i: None, remote=b.local_address, config=cfg, loss=lambda: rng.random() < loss_rate)
    try:
        for ifp in ifps(n):
            a.send(ifp)
            await asyncio.sleep(0.001)
        async with asyncio.timeout(5):
            while len(out.got) < n:
                await asyncio.sleep(0.02)
    finally:
        a.close()
        b.close()
    return out, a


@pytest.mark.timeout(30)
def test_real_udp_loss_recovered_by_redundancy():
    out, a = asyncio.run(_exchange(0.10, 3, 300, seed=7))
    assert a.datagrams_dropped > 15          # the loss really happened
    assert [s for s, _ in out.got] == list(range(300))
    assert all(i is not None for _, i in out.got)
    assert [decode(i, 0) for _, i in out.got] == [decode(i, 0) for i in ifps(300)]


@pytest.mark.timeout(30)
def test_real_udp_loss_without_redundancy_loses_packets():
    out, a = asyncio.run(_exchange(0.10, 0, 300, seed=7))
    lost = [s for s, i in out.got if i is None]
    assert a.datagrams_dropped > 15 and len(lost) == a.datagrams_dropped


@pytest.mark.timeout(30)
def test_real_udp_fec_recovers_isolated_losses():
    async def main():
        out = Collect()
        cfg = UdptlConfig(fec=True, fec_span=3, fec_entries=3, gap_timeout=0.2)
        b = await open_udptl(out, config=cfg)
        drop = iter([i % 10 == 4 for i in range(1000)])    # lose one datagram in ten, never two in a row
        a = await open_udptl(lambda s, i: None, remote=b.local_address, config=cfg, loss=lambda: next(drop))
        try:
            for ifp in ifps(200):
                a.send(ifp)
                await asyncio.sleep(0.001)
            async with asyncio.timeout(5):
                while len(out.got) < 199:
                    await asyncio.sleep(0.02)
        finally:
            a.close()
            b.close()
        return out, b.receiver.stats, a.datagrams_dropped

    out, stats, dropped = asyncio.run(main())
    assert dropped == 20 and stats.recovered_fec >= 19
    delivered = [i for _, i in out.got[:199]]
    assert all(i is not None for i in delivered)
    assert [decode(i, 0) for i in delivered] == [decode(i, 0) for i in ifps(199)]


def test_peer_restarting_its_numbering_is_followed():
    out = Collect()
    rx = UdptlReceiver(out)
    first = UdptlSender()
    for ifp in ifps(300):
        rx.feed(first.build(ifp))
    again = UdptlSender()                      # e.g. the far terminal restarted after a re-INVITE
    datagrams = [again.build(ifp) for ifp in ifps(6)]
    for d in datagrams:
        rx.feed(d)
    assert [s for s, _ in out.got[300:]] == [0, 1, 2, 3, 4, 5]
    rx.feed(datagrams[3])                      # a late copy close behind is still a duplicate
    assert len(out.got) == 306 and rx.stats.duplicates == 1
