"""An audio-only SIP endpoint built on pjsua2-pybind11, run as a subprocess by the SIP tests.

It answers every INVITE with 200 (audio, null sound device).  pjsua 2.14 answers an ``m=image``
re-INVITE with 488 by itself (reference t38.md §1), which is exactly the far end that refuses
T.38.  Usage: ``python pjsua_peer.py PORT``; prints READY, then one line per call event.
"""

from __future__ import annotations

import sys
import threading
import time

import pjsua2 as pj


class PeerCall(pj.Call):
    def onCallState(self, prm):  # noqa: N802 - pjsua2's name
        try:
            info = self.info
            info = info() if callable(info) else info
            print(f"STATE {info.stateText} {info.lastStatusCode}", flush=True)
        except Exception as exc:  # noqa: BLE001 - never let an exception escape into pjsip's thread
            print(f"STATE ? ({exc})", flush=True)


class PeerAccount(pj.Account):
    def __init__(self):
        super().__init__()
        self.pending: list[PeerCall] = []
        self.calls: list[PeerCall] = []
        self.lock = threading.Lock()

    def onIncomingCall(self, prm):  # noqa: N802
        call = PeerCall(self, prm.callId)
        with self.lock:
            self.pending.append(call)
            self.calls.append(call)
        print("INCOMING", flush=True)


def main() -> None:
    port = int(sys.argv[1])
    ep = pj.Endpoint()
    ep.libCreate()
    cfg = pj.EpConfig()
    cfg.logConfig.level = 1
    cfg.logConfig.consoleLevel = 1
    ep.libInit(cfg)
    tcfg = pj.TransportConfig()
    tcfg.port = port
    tcfg.boundAddress = "127.0.0.1"
    ep.transportCreate(pj.TransportType.UDP, tcfg)
    ep.audDevManager.setNullDev()
    ep.libStart()
    acfg = pj.AccountConfig()
    acfg.idUri = f"sip:pj@127.0.0.1:{port}"
    acc = PeerAccount()
    acc.create(acfg)
    print("READY", flush=True)
    deadline = time.monotonic() + float(sys.argv[2] if len(sys.argv) > 2 else 60)
    while time.monotonic() < deadline:
        with acc.lock:
            pending, acc.pending = acc.pending, []
        for call in pending:     # answer from this thread, not inside the callback (reference §1.2 row 11)
            prm = pj.CallOpParam()
            prm.statusCode = pj.StatusCode.OK
            call.answer(prm)
            print("ANSWERED", flush=True)
        time.sleep(0.02)
    ep.hangupAllCalls()
    ep.libDestroy()


if __name__ == "__main__":
    main()
