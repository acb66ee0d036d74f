"""Fetching a job's document from ``document.url`` (Kazoo's document.* fields), safely.

Every hop (the first request and each redirect) resolves the host once, refuses loopback, private,
link-local, multicast, reserved and cloud-metadata addresses unless the configuration allows them, and
then connects to exactly the address it checked, so DNS cannot be used to slip past the check."""

from __future__ import annotations

import asyncio
import http.client
import ipaddress
import socket
import ssl
import time
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

METADATA_ADDRESSES = {ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254"),
                      ipaddress.ip_address("100.100.100.200")}


class FetchError(Exception):
    """The document could not be fetched; the message goes into tx_result.error_message."""


@dataclass
class FetchedDocument:
    data: bytes
    content_type: str
    url: str


@dataclass
class FetchPolicy:
    timeout: float = 30.0
    max_bytes: int = 20 * 1024 * 1024
    max_redirects: int = 5
    allow_private: bool = False
    allowed_hosts: tuple[str, ...] = ()
    user_agent: str = "faxengine"

    @classmethod
    def from_config(cls, section: dict) -> FetchPolicy:
        return cls(timeout=float(section["timeout"]), max_bytes=int(section["max_bytes"]),
                   max_redirects=int(section["max_redirects"]), allow_private=bool(section["allow_private"]),
                   allowed_hosts=tuple(h.lower() for h in section["allowed_hosts"]),
                   user_agent=section["user_agent"])


def _forbidden(addr: ipaddress._BaseAddress) -> str | None:
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        addr = addr.ipv4_mapped
    if addr in METADATA_ADDRESSES:
        return "a cloud metadata address"
    for attr, what in (("is_loopback", "a loopback address"), ("is_link_local", "a link-local address"),
                       ("is_private", "a private address"), ("is_multicast", "a multicast address"),
                       ("is_unspecified", "an unspecified address"), ("is_reserved", "a reserved address")):
        if getattr(addr, attr):
            return what
    return None


def resolve(host: str, port: int, policy: FetchPolicy) -> list[str]:
    """The checked addresses of ``host``; raises FetchError for a refused destination."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise FetchError(f"could not connect to document URL: cannot resolve {host} ({exc.strerror})") from None
    allowed = policy.allow_private or host.lower() in policy.allowed_hosts
    for info in infos:
        address = info[4][0]
        addr = ipaddress.ip_address(address.split("%", 1)[0])
        if not allowed and (reason := _forbidden(addr)) is not None:
            raise FetchError(f"document URL refused: {host} resolves to {address}, {reason}")
    return list(dict.fromkeys(info[4][0] for info in infos))


def _connect(addresses: list[str], port: int, timeout: float) -> socket.socket:
    error: OSError | None = None
    for address in addresses:
        try:
            return socket.create_connection((address, port), timeout)
        except OSError as exc:
            error = exc
    raise error or OSError("no address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout)
        self._addresses = addresses

    def connect(self) -> None:
        self.sock = _connect(self._addresses, self.port, self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, host: str, port: int, addresses: list[str], timeout: float):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context())
        self._addresses = addresses

    def connect(self) -> None:
        sock = _connect(self._addresses, self.port, self.timeout)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def _time_left(deadline: float, policy: FetchPolicy) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise FetchError(f"could not retrieve file: timed out after {policy.timeout:g} s")
    return left


def fetch_sync(document: dict, policy: FetchPolicy) -> FetchedDocument:
    url = document.get("url") or ""
    method = (document.get("method") or "get").upper()
    body = (document.get("content") or "").encode() if method == "POST" else None
    deadline = time.monotonic() + policy.timeout
    for _hop in range(policy.max_redirects + 1):
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise FetchError(f"document URL refused: {url!r} is not an http(s) URL")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        address = resolve(parts.hostname, port, policy)
        conn_cls = _PinnedHTTPS if parts.scheme == "https" else _PinnedHTTP
        conn = conn_cls(parts.hostname, port, address, _time_left(deadline, policy))
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        headers = {"User-Agent": policy.user_agent, "Accept": "*/*",
                   "Host": document.get("host") or parts.netloc,
                   "Content-Type": document.get("content_type") or "text/plain"}
        if document.get("referer"):
            headers["Referer"] = document["referer"]
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            if resp.status in (301, 302, 303, 307, 308):
                location = resp.getheader("Location")
                resp.read(65536)
                if not location:
                    raise FetchError(f"could not retrieve file, http response {resp.status} without Location")
                url = urljoin(url, location)
                if resp.status == 303 or (resp.status in (301, 302) and method == "POST"):
                    method, body = "GET", None
                continue
            if resp.status != 200:
                raise FetchError(f"could not retrieve file, http response {resp.status} {resp.reason}".rstrip())
            declared = resp.getheader("Content-Length")
            if declared and declared.isdigit() and int(declared) > policy.max_bytes:
                raise FetchError(f"document is {declared} bytes, over the {policy.max_bytes} byte limit")
            chunks, size = [], 0
            while True:
                # read1 and a socket timeout of what is left: a body trickled in byte by byte is still
                # cut off at the deadline (read(n) would wait for n bytes, each inside the timeout).
                if conn.sock is not None:
                    conn.sock.settimeout(_time_left(deadline, policy))
                chunk = resp.read1(65536)
                if not chunk:
                    break
                size += len(chunk)
                if size > policy.max_bytes:
                    raise FetchError(f"document is over the {policy.max_bytes} byte limit")
                chunks.append(chunk)
            ctype = (resp.getheader("Content-Type") or "").split(";", 1)[0].strip().lower()
            return FetchedDocument(b"".join(chunks), ctype, url)
        except FetchError:
            raise
        except TimeoutError:
            raise FetchError(f"could not retrieve file: timed out after {policy.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise FetchError(f"could not connect to document URL: {exc}") from None
        finally:
            conn.close()
    raise FetchError(f"could not retrieve file: more than {policy.max_redirects} redirects")


async def fetch_document(document: dict, policy: FetchPolicy) -> FetchedDocument:
    return await asyncio.to_thread(fetch_sync, document, policy)
