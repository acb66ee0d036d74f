"""The FastAPI application: faxes routes, api_auth, Kazoo error rendering, token middleware."""

from __future__ import annotations

import logging
import time
import uuid

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from api import faxes, health
from api.auth import AuthMiddleware, TokenCache
from api.body import parse_body, read_body
from api.envelope import KazooError, envelope, error_response
from api.jobs import prepare_doc
from engine.config import Config
from engine.store import Account, Fax, Store, new_id
from engine.store.documents import DocumentService

log = logging.getLogger(__name__)

INBOUND_ONLY = ("rx_result", "name", "description", "source_type", "media_type", "call_id", "channel", "pages",
                "remote_station_id")


class AppContext:
    """What the routes need: config, store, documents, and the scheduler when one runs in-process."""

    def __init__(self, config: Config, store: Store, documents: DocumentService, scheduler=None):  # noqa: ANN001
        self.config = config
        self.store = store
        self.documents = documents
        self.scheduler = scheduler
        self.tokens = TokenCache(store)
        self._accounts: dict[str, tuple[float, Account | None]] = {}

    def account(self, account_id: str) -> Account | None:
        hit = self._accounts.get(account_id)
        if hit is None or hit[0] < time.monotonic():
            hit = self._accounts[account_id] = (time.monotonic() + 30, self.store.get_account(account_id))
        return hit[1]

    def channel_names(self) -> set[str]:
        """The channels a job may name: the running scheduler's, else those the configuration enables."""
        if self.scheduler is not None:
            return set(self.scheduler.channels)
        from engine.channels import channel_names

        return channel_names(self.config)

    def wake(self) -> None:
        if self.scheduler is not None:
            self.scheduler.wake()

    def cancel(self, fax_id: str, reason: str) -> None:
        if self.scheduler is not None:
            self.scheduler.call_on_loop(self.scheduler.cancel, fax_id, reason)

    def copy_job(self, src: Fax, data: dict, folder: str) -> Fax:
        """resubmit (outbox) / forward (inbox): a new pending job with the source's pages.

        The pages are copied first and the job row written last, so a crash in between leaves no job
        stuck half-made (at worst unreferenced attachments)."""
        if folder == "inbox":
            data = {k: v for k, v in data.items() if k not in INBOUND_ONLY}
        doc = prepare_doc(self, src.account_id, data, has_files=True)
        fax_id = new_id()
        if folder == "inbox":
            self.store.copy_attachments(src.id, fax_id, {"received_file.tiff": "fax_file.tiff"})
        else:
            names = {n: n for n in self.store.attachment_names(src.id) if n.startswith(("original_file", "fax_file"))}
            if "document" in data and data.get("document") != src.doc.get("document"):
                names = {}   # a new document: fetch it
            self.store.copy_attachments(src.id, fax_id, names)
        if not self.store.attachment_names(fax_id) and not (doc.get("document") or {}).get("url"):
            raise KazooError(500, "error when forwarding fax" if folder == "inbox" else "error when resubmitting fax",
                             {"message": "the source fax has no document left to send"})
        new = self.store.insert_fax(src.account_id, "out", "pending", doc, next_attempt=time.time(), fax_id=fax_id)
        self.wake()
        return new


def create_app(ctx: AppContext) -> FastAPI:
    app = FastAPI(title="faxengine", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.ctx = ctx
    app.include_router(faxes.router)
    app.include_router(health.router)

    @app.put("/v2/api_auth")
    async def api_auth(request: Request) -> Response:
        rid = request.headers.get("x-request-id") or uuid.uuid4().hex
        raw = await read_body(request, 65536)
        body = parse_body(request.headers.get("content-type"), raw, allow_files=False)
        data = body.envelope.get("data")
        api_key = data.get("api_key") if isinstance(data, dict) else None
        if not isinstance(api_key, str) or not api_key:
            raise KazooError.validation({"api_key": {"required": {"message": "Field is required but missing",
                                                                  "value": "api_key"}}})
        account = await run_in_threadpool(ctx.store.account_by_api_key, api_key)
        if account is None:
            raise KazooError(404, "bad identifier", [api_key])
        token, expires = await run_in_threadpool(ctx.store.create_token, account.id, ctx.config["auth"]["token_ttl"])
        ctx.tokens.remember(token, account.id, expires)
        data = {"account_id": account.id, "account_name": account.name, "owner_id": None,
                "reseller_id": account.tree[0] if account.tree else account.id, "is_reseller": False,
                "language": "en-us", "apps": [], "expires": int(expires)}
        return envelope(data, request_id=rid, auth_token=token, status_code=201)

    @app.exception_handler(KazooError)
    async def kazoo_error(request: Request, exc: KazooError) -> Response:
        auth = getattr(request.state, "auth", None)
        return error_response(exc, request_id=getattr(request.state, "request_id", None),
                              auth_token=auth[0] if auth else None)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 405:
            err = KazooError.system("invalid_method")
        elif exc.status_code == 404:
            err = KazooError.system("not_found")
        else:
            err = KazooError(exc.status_code, str(exc.detail))
        auth = getattr(request.state, "auth", None)
        return error_response(err, auth_token=auth[0] if auth else None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        return error_response(KazooError.system("faulty_request", str(exc.errors()[:1])))

    @app.exception_handler(Exception)
    async def crash(request: Request, exc: Exception) -> Response:
        log.exception("request %s %s failed", request.method, request.url.path)
        return error_response(KazooError(500, "internal_error", {"message": f"{type(exc).__name__}: {exc}"}))

    return AuthMiddleware(app, ctx.tokens)  # type: ignore[return-value]
