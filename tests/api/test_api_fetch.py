"""engine.fetch against a real local HTTP server: headers, methods, limits, refused destinations."""

from __future__ import annotations

import pytest
from faxapi_helpers import DocServer, make_pdf

from engine.fetch import FetchError, FetchPolicy, fetch_sync


@pytest.fixture(scope="module")
def web():
    srv = DocServer()
    srv.files["/doc.pdf"] = ("application/pdf; charset=binary", make_pdf(1))
    srv.files["/big"] = ("application/octet-stream", b"x" * 50_000)
    yield srv
    srv.stop()


OPEN = FetchPolicy(allowed_hosts=("localhost",), timeout=5)


def test_get_with_headers(web):
    doc = fetch_sync({"url": web.url("/doc.pdf"), "host": "docs.example", "referer": "http://r.example/"}, OPEN)
    assert doc.data.startswith(b"%PDF") and doc.content_type == "application/pdf"
    req = web.requests[-1]
    assert req["method"] == "GET" and req["headers"]["Host"] == "docs.example"
    assert req["headers"]["Referer"] == "http://r.example/" and req["headers"]["Content-Type"] == "text/plain"


def test_post_with_content(web):
    fetch_sync({"url": web.url("/doc.pdf"), "method": "post", "content": "a=1", "content_type": "text/csv"}, OPEN)
    req = web.requests[-1]
    assert req["method"] == "POST" and req["body"] == b"a=1" and req["headers"]["Content-Type"] == "text/csv"


def test_redirects_are_bounded(web):
    assert fetch_sync({"url": web.url("/redirect/3")}, OPEN).data.startswith(b"%PDF")
    with pytest.raises(FetchError, match="more than 2 redirects"):
        fetch_sync({"url": web.url("/redirect/3")}, FetchPolicy(allowed_hosts=("localhost",), max_redirects=2))


def test_size_cap(web):
    with pytest.raises(FetchError, match="limit"):
        fetch_sync({"url": web.url("/big")}, FetchPolicy(allowed_hosts=("localhost",), max_bytes=10_000))


def test_http_errors(web):
    with pytest.raises(FetchError, match="http response 404"):
        fetch_sync({"url": web.url("/nothing")}, OPEN)
    with pytest.raises(FetchError, match="not an http"):
        fetch_sync({"url": "file:///etc/passwd"}, OPEN)


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost", "[::1]", "10.0.0.8", "192.168.1.1", "172.16.0.1",
                                  "169.254.169.254", "[fe80::1]", "0.0.0.0", "[::ffff:127.0.0.1]", "224.0.0.1"])
def test_private_destinations_refused_by_default(web, host):
    before = len(web.requests)
    with pytest.raises(FetchError, match="refused"):
        fetch_sync({"url": f"http://{host}:{web.port}/doc.pdf"}, FetchPolicy(timeout=2))
    assert len(web.requests) == before


def test_redirect_to_a_private_address_is_refused(web):
    policy = FetchPolicy(allowed_hosts=("localhost",), timeout=2)
    assert fetch_sync({"url": web.url("/goto/localhost/doc.pdf")}, policy).data.startswith(b"%PDF")
    before = len(web.requests)
    with pytest.raises(FetchError, match="127.0.0.1 resolves to 127.0.0.1, a loopback"):
        fetch_sync({"url": web.url("/goto/127.0.0.1/doc.pdf")}, policy)
    assert len(web.requests) == before + 1   # only the allowed first hop was requested


def test_allow_private_opens_everything(web):
    doc = fetch_sync({"url": web.url("/doc.pdf", host="127.0.0.1")}, FetchPolicy(allow_private=True))
    assert doc.data.startswith(b"%PDF")


@pytest.mark.timeout(30)
def test_timeout_bounds_the_whole_fetch():
    """A server trickling its body, each byte well inside the socket timeout, is still cut off at
    ``timeout`` (reading until 64 KiB had arrived took hours)."""
    import socket
    import threading
    import time

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(4)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                conn.recv(4096)
                try:
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/pdf\r\nContent-Length: 100000\r\n\r\n")
                    while not stop.is_set():
                        conn.sendall(b"%")
                        time.sleep(0.1)
                except OSError:
                    pass
    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        started = time.monotonic()
        with pytest.raises(FetchError, match="timed out"):
            fetch_sync({"url": f"http://localhost:{port}/trickle.pdf"},
                       FetchPolicy(allowed_hosts=("localhost",), timeout=1.0))
        assert time.monotonic() - started < 15   # a hang bound, not a speed claim
    finally:
        stop.set()
        listener.close()
        thread.join(5)
