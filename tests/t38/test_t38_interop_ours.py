"""Our sender to our receiver over real UDP on 127.0.0.1: the CLI as two processes, and in-process
sessions in virtual time (ECM on/off, loss), pages compared pixel by pixel."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import numpy as np
import pytest
from t38_cli import cli, finish
from t38_harness import Lockstep, VirtualClock, seeded_loss

from engine.t30 import T30Config, T30Session
from imaging.page import FaxPage
from modem.spandsp.testing import make_fax_tiff, read_fax_pages
from t38.phy import T38PhyOptions, open_t38_udptl
from t38.udptl import UdptlConfig


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(150)
@pytest.mark.parametrize("who_knows_whom,pacing", [("receiver-learns", True), ("receiver-learns", False),
                                                    ("receiver-knows-sender", False)],
                         ids=["paced-receiver-learns", "unpaced-receiver-learns", "unpaced-receiver-knows-sender"])
def test_cli_send_to_cli_receive(tmp_path, who_knows_whom, pacing):
    src = tmp_path / "doc.tif"
    dpi = (204, 98) if who_knows_whom == "receiver-knows-sender" else (204, 196)   # standard and fine TIFF-F
    pages = make_fax_tiff(src, pages=2, height=500, dpi=dpi)
    rx_port, tx_port = free_port(), free_port()
    extra = [] if pacing else ["--no-pacing"]
    via_rx = f"udptl:{rx_port}" if who_knows_whom == "receiver-learns" else f"udptl:{rx_port}@127.0.0.1:{tx_port}"
    receiver = cli("receive", "--via", via_rx, "--out", str(tmp_path / "in"), "--timeout", "30",
                   "--bind", "127.0.0.1", "--ident", "RECEIVER", *extra)
    sender = cli("send", str(src), "--to", "5550100", "--via", f"udptl:127.0.0.1:{rx_port}",
                 "--local-port", str(tx_port), "--bind", "127.0.0.1", "--ident", "+1 555 0100", *extra)
    rc_tx, tx, err_tx = finish(sender)
    rc_rx, rx, err_rx = finish(receiver)
    assert rc_tx == 0 and tx["success"], err_tx
    assert rc_rx == 0 and rx["success"], err_rx
    assert "phase C" in err_tx and "page 2" in err_tx                 # live progress on stderr
    assert tx["pages_sent"] == 2 and rx["pages_received"] == 2
    assert rx["remote_ident"] == "+1 555 0100" and tx["remote_ident"] == "RECEIVER"
    assert rx["resolution"] == ("standard" if dpi[1] == 98 else "fine")
    tif, pdf = rx["pages"]
    assert Path(pdf).read_bytes().startswith(b"%PDF")
    got = read_fax_pages(tif)
    assert len(got) == 2 and all(np.array_equal(a, b) for a, b in zip(pages, got, strict=True))


def test_cli_bad_input_is_a_clear_error(tmp_path):
    for args, text in [
        (["send", str(tmp_path / "missing.pdf"), "--to", "1", "--via", "udptl:127.0.0.1:9"], "no such file"),
        (["send", __file__, "--to", "1", "--via", "carrier-pigeon:x"], "unknown --via"),
        (["send", __file__, "--to", "1", "--via", "udptl:127.0.0.1"], "HOST:PORT"),
        (["receive", "--via", "udptl:99999", "--out", str(tmp_path)], "out of range"),
    ]:
        rc, _, err = _run_quick(args)
        assert rc == 2 and text in err, (args, err)


def _run_quick(args):
    proc = cli(*args)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out, err


# ---------------------------------------------------------------- in-process, virtual time

async def ours_to_ours(tmp_path, *, ecm: bool, loss: float, pages: int = 2, reverse: bool = False,
                       fec: bool = False):
    clock = VirtualClock()
    net = Lockstep(clock)
    sent = make_fax_tiff(tmp_path / "src.tif", pages=pages, height=400, seed=5)
    udptl = UdptlConfig(redundancy=3, fec=fec)
    rx_phy = await open_t38_udptl(clock, T38PhyOptions(calling=False, version=3), udptl_config=udptl,
                                  loss=seeded_loss(loss, 21))
    tx_phy = await open_t38_udptl(clock, T38PhyOptions(calling=True, version=3), udptl_config=udptl,
                                  remote=rx_phy.transport.local_address, loss=seeded_loss(loss, 22))
    if reverse:   # the answering side is told where the caller is; the caller learns it
        rx_phy.transport.remote = tx_phy.transport.local_address
    net.endpoints += [rx_phy.transport, tx_phy.transport]
    received = []
    tx = T30Session(tx_phy, clock, T30Config(ident="A", ecm=ecm),
                    send_pages=[FaxPage(p, y_dpi=196) for p in sent], calling=True)
    rx = T30Session(rx_phy, clock, T30Config(ident="B", ecm=ecm), on_page=lambda p, _b: received.append(p.pixels),
                    calling=False)
    t_tx, t_rx = asyncio.ensure_future(tx.run()), asyncio.ensure_future(rx.run())
    finished = await net.run(lambda: t_tx.done() and t_rx.done(), 300)
    dropped = rx_phy.transport.datagrams_dropped + tx_phy.transport.datagrams_dropped
    return finished, t_tx.result(), t_rx.result(), sent, received, dropped


@pytest.mark.timeout(60)
@pytest.mark.parametrize("ecm", [True, False], ids=["ecm", "noecm"])
@pytest.mark.parametrize("loss", [0.0, 0.05], ids=["clean", "loss5"])
def test_ours_to_ours_udp(tmp_path, ecm, loss):
    finished, tx, rx, sent, received, dropped = asyncio.run(ours_to_ours(tmp_path, ecm=ecm, loss=loss,
                                                                         reverse=loss > 0))
    assert finished and tx.success and rx.success, (tx, rx)
    assert (dropped > 10) == (loss > 0)
    assert tx.pages_sent == rx.pages_received == 2 and rx.ecm == ecm and rx.fax_speed == 14400
    assert all(np.array_equal(a, np.asarray(b, dtype=bool)) for a, b in zip(sent, received, strict=True))


@pytest.mark.timeout(60)
def test_ours_to_ours_udp_fec_with_loss(tmp_path):
    finished, tx, rx, sent, received, dropped = asyncio.run(ours_to_ours(tmp_path, ecm=True, loss=0.03, fec=True))
    assert finished and tx.success and rx.success, (tx, rx)
    assert dropped > 5 and tx.pages_sent == rx.pages_received == 2
    assert all(np.array_equal(a, np.asarray(b, dtype=bool)) for a, b in zip(sent, received, strict=True))


@pytest.mark.slow
@pytest.mark.timeout(150)
def test_cli_options_no_ecm_max_speed_and_t38_version(tmp_path):
    """--no-ecm, --max-speed 9600 and --t38-version 3 on both CLI ends reach the negotiated call."""
    src = tmp_path / "doc.tif"
    pages = make_fax_tiff(src, pages=1, height=300, dpi=(204, 196))
    rx_port, tx_port = free_port(), free_port()
    opts = ["--no-ecm", "--max-speed", "9600", "--t38-version", "3", "--no-pacing", "--bind", "127.0.0.1"]
    receiver = cli("receive", "--via", f"udptl:{rx_port}", "--out", str(tmp_path / "in"), "--timeout", "30", *opts)
    sender = cli("send", str(src), "--to", "5550100", "--via", f"udptl:127.0.0.1:{rx_port}",
                 "--local-port", str(tx_port), *opts)
    rc_tx, tx, err_tx = finish(sender)
    rc_rx, rx, err_rx = finish(receiver)
    assert rc_tx == 0 and rc_rx == 0, (err_tx, err_rx)
    for record in (tx, rx):
        assert record["success"] and record["ecm"] is False and record["fax_speed"] == 9600
    got = read_fax_pages(rx["pages"][0])
    assert len(got) == 1 and np.array_equal(got[0], pages[0])


def test_cli_receive_times_out_without_a_caller(tmp_path):
    proc = cli("receive", "--via", f"udptl:{free_port()}", "--out", str(tmp_path / "in"), "--timeout", "0.5",
               "--bind", "127.0.0.1", "--quiet")
    rc, record, err = finish(proc, timeout=60)
    assert rc == 1 and not record["success"] and record["error_code"] == "no_call", err
