"""Token authentication as pure ASGI middleware, so no route (known or not) answers without a valid token."""

from __future__ import annotations

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


def token_from_scope(scope: dict) -> str | None:
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    if headers.get("x-auth-token"):
        return headers["x-auth-token"].strip()
    query = scope.get("query_string", b"").decode("latin-1")
    if "auth_token=" in query:
        values = parse_qs(query).get("auth_token")
        if values:
            return values[-1]
    authz = headers.get("authorization", "")
    if authz.lower().startswith("bearer "):
        return authz[7:].strip()
    return None


class AuthMiddleware:
    def __init__(self, app, tokens: TokenCache):  # noqa: ANN001
        self.app = app
        self.tokens = tokens

    async def __call__(self, scope, receive, send):  # noqa: ANN001
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if (scope["method"], scope["path"].rstrip("/")) in OPEN_ROUTES:
            return await self.app(scope, receive, send)
        token = token_from_scope(scope)
        account_id = None
        if token:   # a token not seen yet is checked in the store, off the event loop
            account_id = self.tokens.cached(token) or await run_in_threadpool(self.tokens.lookup, token)
        if account_id is None:
            resp = error_response(KazooError.system("invalid_credentials"), auth_token=token)
            return await resp(scope, receive, send)
        scope.setdefault("state", {})["auth"] = (token, account_id)
        return await self.app(scope, receive, send)
