"""Token authentication as pure ASGI middleware, so no route (known or not) answers without a valid token."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs

from starlette.concurrency import run_in_threadpool

from api.envelope import KazooError, error_response

OPEN_ROUTES = {("PUT", "/v2/api_auth"), ("GET", "/v2/health")}


class TokenCache:
    """Verified tokens kept in memory until they expire (the store stays the authority)."""

    def __init__(self, store, max_entries: int = 100_000):  # noqa: ANN001
        self.store = store
        self.max_entries = max_entries
        self._tokens: dict[str, tuple[str, float]] = {}

    def cached(self, token: str) -> str | None:
        """The account of a token already verified and not expired, without touching the store."""
        hit = self._tokens.get(token)
        return hit[0] if hit is not None and hit[1] >= time.time() else None

    def lookup(self, token: str) -> str | None:
        hit = self._tokens.get(token)
        now = time.time()
        if hit is None:
            found = self.store.check_token(token)
            if found is None:
                return None
            if len(self._tokens) >= self.max_entries:
                self._tokens.clear()
            hit = self._tokens[token] = found
        if hit[1] < now:
            self._tokens.pop(token, None)
            return None
        return hit[0]

    def remember(self, token: str, account_id: str, expires: float) -> None:
        self._tokens[token] = (account_id, expires)


ENVELOPE_SCAN_BYTES = 1 << 20     # a JSON envelope larger than this is not searched for auth_token/verb
ENVELOPE_TYPES = ("", "application/json", "application/x-json", "application/x-www-form-urlencoded")
TUNNELLED_VERBS = ("GET", "PUT", "POST", "PATCH", "DELETE")


def _headers(scope: dict) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}


def _query_value(scope: dict, name: str) -> str | None:
    query = scope.get("query_string", b"").decode("latin-1")
    if f"{name}=" not in query:
        return None
    values = parse_qs(query).get(name)
    return values[-1] if values else None


def _token_before_envelope(scope: dict) -> str | None:
    headers = _headers(scope)
    if headers.get("x-auth-token"):
        return headers["x-auth-token"].strip()
    return _query_value(scope, "auth_token")


def _bearer(scope: dict) -> str | None:
    authz = _headers(scope).get("authorization", "")
    return authz[7:].strip() if authz.lower().startswith("bearer ") else None


async def _buffer_body(receive) -> tuple[list[dict], bytes | None]:  # noqa: ANN001
    """Read the request body for a look at its envelope: the messages read (to replay) and the body,
    or None if it is larger than ENVELOPE_SCAN_BYTES (then the rest is left unread)."""
    messages: list[dict] = []
    size = 0
    while True:
        message = await receive()
        messages.append(message)
        if message["type"] != "http.request":
            return messages, None
        size += len(message.get("body", b""))
        if size > ENVELOPE_SCAN_BYTES:
            return messages, None
        if not message.get("more_body", False):
            return messages, b"".join(m.get("body", b"") for m in messages)


def _replay(messages: list[dict], receive):  # noqa: ANN001, ANN202
    async def replayed() -> dict:
        return messages.pop(0) if messages else await receive()
    return replayed


def _envelope_of(body: bytes) -> dict:
    """The top-level keys of a JSON envelope (curl -d sends it form-encoded but it is JSON); {} if not."""
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return {}
    return value if isinstance(value, dict) else {}


class AuthMiddleware:
    """Token check for every route but api_auth, plus crossbar's request values: ``auth_token`` may come
    in the JSON envelope, and a POST may tunnel another verb (``?verb=PUT`` or ``{"verb": "PUT"}``)."""

    def __init__(self, app, tokens: TokenCache):  # noqa: ANN001
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        token = _token_before_envelope(scope)
        method = scope["method"]
        envelope: dict = {}
        ctype = _headers(scope).get("content-type", "").split(";", 1)[0].strip().lower()
        if (method == "POST" or not token) and method not in ("GET", "HEAD") and ctype in ENVELOPE_TYPES:
            messages, body = await _buffer_body(receive)
            receive = _replay(messages, receive)
            if body:
                envelope = _envelope_of(body)
        if method == "POST":
            verb = _query_value(scope, "verb") or envelope.get("verb")
            if isinstance(verb, str) and verb.upper() in TUNNELLED_VERBS:
                scope = {**scope, "method": verb.upper()}
        if (scope["method"], scope["path"].rstrip("/")) in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        if not token and isinstance(envelope.get("auth_token"), str):
            token = envelope["auth_token"].strip() or None
        token = token or _bearer(scope)
        account_id = None
        if token:   # a token not seen yet is checked in the store, off the event loop
            account_id = self.tokens.cached(token) or await run_in_threadpool(self.tokens.lookup, token)
        if account_id is None:
            resp = error_response(KazooError.system("invalid_credentials"), auth_token=token)
            return await resp(scope, receive, send)
        scope.setdefault("state", {})["auth"] = (token, account_id)
        return await self.app(scope, receive, send)
