"""Helpers for the SIP tests: a scriptable UDP relay, a raw UAC, SDP snippets (imported by tests/sip)."""

from __future__ import annotations

import re
import secrets
import select
import socket
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from t38.trunk import Trunk  # noqa: E402

HERE = Path(__file__).resolve().parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def direct_trunk(port: int, **kw) -> Trunk:
    kw.setdefault("name", "peer")
    return Trunk(proxy=f"127.0.0.1:{port}", **kw)


class SipRelay:
    """Two UDP ports that stand in front of endpoints A and B and forward between them.

    A advertises ``front_a`` as its public address and dials ``front_b``; B advertises ``front_b``.
    ``rule(direction, text)`` may return "pass", "drop" or "hold" (kept until ``release_held``)."""

    def __init__(self) -> None:
        self.front_a = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front_a.bind(("127.0.0.1", 0))
        self.front_b = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.front_b.bind(("127.0.0.1", 0))
        self.real_a: tuple[str, int] | None = None
        self.real_b: tuple[str, int] | None = None
        self.rule: Callable[[str, str], str] = lambda d, t: "pass"
        self.log: list[tuple[float, str, str]] = []
        self.held: list[tuple[socket.socket, bytes, tuple[str, int]]] = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    @property
    def port_a(self) -> int:
        return self.front_a.getsockname()[1]

    @property
    def port_b(self) -> int:
        return self.front_b.getsockname()[1]

    def _run(self) -> None:
        while self.running:
            ready, _, _ = select.select([self.front_a, self.front_b], [], [], 0.2)
            for sock in ready:
                try:
                    data, _ = sock.recvfrom(65535)
                except OSError:
                    continue
                if sock is self.front_a:
                    direction, out, dest = "to_a", self.front_b, self.real_a
                else:
                    direction, out, dest = "to_b", self.front_a, self.real_b
                if dest is None:
                    continue
                text = data.decode(errors="replace")
                with self.lock:
                    self.log.append((time.monotonic(), direction, text))
                    verdict = self.rule(direction, text)
                    if verdict == "hold":
                        self.held.append((out, data, dest))
                        continue
                if verdict == "drop":
                    continue
                out.sendto(data, dest)

    def release_held(self) -> None:
        with self.lock:
            held, self.held = self.held, []
        for out, data, dest in held:
            out.sendto(data, dest)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.front_a.close()
        self.front_b.close()

    def seen(self, direction: str, pattern: str) -> list[str]:
        return [t for _, d, t in self.log if d == direction and re.search(pattern, t, re.M)]


def is_reinvite(text: str) -> bool:
    """An in-dialog INVITE (To has a tag)."""
    if not text.startswith("INVITE "):
        return False
    m = re.search(r"^(?:To|t):.*$", text, re.M | re.I)
    return bool(m and ";tag=" in m.group(0))


def hold_first_t38_reinvites(count: int = 2):  # noqa: ANN201
    """A SipRelay rule holding the first ``count`` T.38 re-INVITEs (until release_held): with 2, both
    sides' offers cross each other (glare)."""
    held = [0]

    def rule(direction: str, text: str) -> str:
        if is_reinvite(text) and "m=image" in text and held[0] < count:
            held[0] += 1
            return "hold"
        return "pass"

    return rule


class RawUac:
    """A hand-driven SIP UAC on a UDP socket, for bad input and exact wire checks."""

    def __init__(self, target: tuple[str, int]):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(5)
        self.target = target
        self.call_id = secrets.token_hex(8) + "@raw"
        self.from_tag = secrets.token_hex(4)
        self.to_tag = ""
        self.cseq = 1
        self.port = self.sock.getsockname()[1]
        self.remote_contact = target

    def close(self) -> None:
        self.sock.close()

    def send_raw(self, data: bytes | str, dest: tuple[str, int] | None = None) -> None:
        self.sock.sendto(data.encode() if isinstance(data, str) else data, dest or self.target)

    def build(self, method: str, ruri: str, body: str = "", *, cseq: int | None = None, extra: str = "",
              branch: str | None = None, content_type: bool = True) -> str:
        cseq = self.cseq if cseq is None else cseq
        to = f"<sip:{ruri.split(':', 1)[1].split('@')[0]}@127.0.0.1>" if "@" in ruri else f"<{ruri}>"
        if self.to_tag:
            to += f";tag={self.to_tag}"
        lines = [
            f"{method} {ruri} SIP/2.0",
            f"Via: SIP/2.0/UDP 127.0.0.1:{self.port};branch=z9hG4bK{branch or secrets.token_hex(6)};rport",
            "Max-Forwards: 70",
            f"From: <sip:raw@127.0.0.1>;tag={self.from_tag}",
            f"To: {to}",
            f"Call-ID: {self.call_id}",
            f"CSeq: {cseq} {method}",
            f"Contact: <sip:raw@127.0.0.1:{self.port}>",
        ]
        if extra:
            lines += extra.strip().splitlines()
        if body and content_type:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def recv(self, timeout: float = 5.0, want_final: bool = True) -> str:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no SIP response")
            self.sock.settimeout(left)
            data, _ = self.sock.recvfrom(65535)
            text = data.decode(errors="replace")
            if text.startswith("SIP/2.0 "):
                code = int(text.split()[1])
                if want_final and code < 200:
                    continue
                return text
            # a request from the far end (BYE, re-INVITE...): keep it for the test
            self.requests.append(text)

    requests: list[str] = []

    def request(self, method: str, ruri: str, body: str = "", **kw) -> str:
        msg = self.build(method, ruri, body, **kw)
        self.send_raw(msg, self.remote_contact)
        resp = self.recv()
        if method == "INVITE":
            code = int(resp.split()[1])
            if not self.to_tag:
                m = re.search(r"^(?:To|t):.*;tag=([^;\s]+)", resp, re.M | re.I)
                if m and code < 300:
                    self.to_tag = m.group(1)
            ack_branch = secrets.token_hex(6)
            ack = self.build("ACK", ruri, cseq=self.cseq, branch=ack_branch)
            if code >= 300:   # ACK for a failure reuses the INVITE's branch; good enough for a UAS here
                via_branch = re.search(r"branch=(z9hG4bK[^;\s]+)", msg).group(1)[7:]
                ack = self.build("ACK", ruri, cseq=self.cseq, branch=via_branch)
            self.send_raw(ack, self.remote_contact)
        self.cseq += 1
        return resp


def body_of(message: str) -> str:
    return message.split("\r\n\r\n", 1)[1] if "\r\n\r\n" in message else ""


def status_of(message: str) -> int:
    return int(message.split()[1])


AUDIO_SDP = (
    "v=0\r\no=raw 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio {port} RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\n"
    "a=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\n"
)

IMAGE_SDP = (
    "v=0\r\no=raw 1 {version} IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=image {port} udptl t38\r\na=T38FaxVersion:0\r\na=T38MaxBitRate:14400\r\n"
    "a=T38FaxRateManagement:transferredTCF\r\na=T38FaxMaxBuffer:262\r\na=T38FaxMaxDatagram:176\r\n"
    "a=T38FaxUdpEC:t38UDPRedundancy\r\n"
)


class ScriptedUas:
    """A hand-driven SIP UAS on a UDP socket (thread): answers the INVITE with audio, then answers
    each re-INVITE with ``reinvite_answer(text) -> (code, reason, body)``; 200s BYE; ignores ACK."""

    def __init__(self, reinvite_answer):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.reinvite_answer = reinvite_answer
        self.to_tag = secrets.token_hex(4)
        self.received: list[str] = []
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _respond(self, req: str, code: int, reason: str, body: str, addr) -> None:
        heads = []
        for line in req.split("\r\n\r\n", 1)[0].split("\r\n")[1:]:
            name = line.split(":", 1)[0].strip().lower()
            if name in ("via", "v", "from", "f", "call-id", "i", "cseq"):
                heads.append(line)
            elif name in ("to", "t"):
                heads.append(line if ";tag=" in line else f"{line};tag={self.to_tag}")
        heads.append(f"Contact: <sip:uas@127.0.0.1:{self.port}>")
        if body:
            heads.append("Content-Type: application/sdp")
        heads.append(f"Content-Length: {len(body.encode())}")
        self.sock.sendto((f"SIP/2.0 {code} {reason}\r\n" + "\r\n".join(heads) + "\r\n\r\n" + body).encode(), addr)

    def _run(self) -> None:
        while self.running:
            try:
                data, addr = self.sock.recvfrom(65535)
            except OSError:
                continue
            text = data.decode(errors="replace")
            self.received.append(text)
            method = text.split(" ", 1)[0]
            if method == "INVITE" and not is_reinvite(text):
                self._respond(text, 200, "OK", AUDIO_SDP.format(port=40000), addr)
            elif method == "INVITE":
                code, reason, body = self.reinvite_answer(text)
                self._respond(text, code, reason, body, addr)
            elif method in ("BYE", "OPTIONS"):
                self._respond(text, 200, "OK", "", addr)

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        self.sock.close()
