"""The faxes routes under /v2/accounts/{ACCOUNT_ID}/faxes (Kazoo 4.3 set plus 3.x POST/PATCH/DELETE).

Store work never runs on the event loop (it also carries the T.38 calls): routes without a body are
plain ``def`` (FastAPI runs them in its thread pool); routes with one read its bytes on the loop, then
hand everything else (access check, parsing, store) to the thread pool in one hop."""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from api.body import RequestBody, parse_body, read_body
from api.envelope import KazooError, envelope
from api.jobs import channel_errors, create_job, default_tx_result, original_names
from api.validation import deep_merge, validate_fax
from engine.store import GREGORIAN_OFFSET, Conflict, Fax

router = APIRouter(prefix="/v2/accounts/{account_id}/faxes")

MODB_PREFIX = re.compile(r"^(\d{4})(\d{2})-([0-9a-f]{32})$")
FINISHED = ("completed", "failed")
EDITABLE = ("pending", "completed", "failed")
FOLDER_TIFF = {"out": "fax_file.tiff", "in": "received_file.tiff"}


# ------------------------------------------------------------------ request plumbing

def ctx(request: Request):  # noqa: ANN201
    return request.app.state.ctx


def request_id(request: Request) -> str:
    rid = request.headers.get("x-request-id")
    if not rid:
        rid = uuid.uuid4().hex
    request.state.request_id = rid
    return rid


def authorize(request: Request, account_id: str) -> str:
    """The token's account may reach itself and its descendants; anything else is 403."""
    token, token_account = request.state.auth
    request_id(request)
    if token_account == account_id:
        return token
    account = ctx(request).account(account_id)
    if account is None or token_account not in account.tree:
        raise KazooError.system("forbidden")
    return token


def reply(request: Request, data: Any, *, revision: str | None = None, status_code: int = 200,
          extra: dict | None = None, headers: dict | None = None) -> Response:
    token, _ = request.state.auth
    return envelope(data, request_id=request.state.request_id, auth_token=token, revision=revision,
                    status_code=status_code, extra=extra, headers=headers)


async def raw_body(request: Request) -> bytes:
    return await read_body(request, ctx(request).config["api"]["max_body_bytes"])


def body_of(request: Request, raw: bytes, *, allow_files: bool = True) -> RequestBody:
    return parse_body(request.headers.get("content-type"), raw, allow_files=allow_files)


def bad_identifier(fax_id: str) -> KazooError:
    return KazooError.system("bad_identifier", cause=fax_id)


# ------------------------------------------------------------------ rendering

def render_job(f: Fax) -> dict:
    d = dict(f.doc)
    d["id"] = f.id
    d["created"] = f.created
    d["status"] = f.status
    if f.status == "completed":
        d["delivered"] = f.modified
    if f.status == "processing" and f.progress:
        d["progress"] = f.progress
    return d


def render_folder_doc(f: Fax, folder: str) -> dict:
    d = render_job(f)
    d["folder"] = folder
    d["to"] = f.to_number
    d["from"] = f.from_number
    return d


def outgoing_row(m: Any) -> dict:
    return {"id": m["id"], "status": m["status"], "to": m["to_number"], "from": m["from_number"],
            "attempts": m["attempts"], "created": m["created"]}


def load(request: Request, account_id: str, fax_id: str, folder: str) -> Fax:
    """A fax of this account in the given folder, or 404 bad_identifier."""
    bare = fax_id
    m = MODB_PREFIX.match(fax_id)
    if m and folder in ("outbox", "inbox", "incoming"):
        bare = m.group(3)
    f = ctx(request).store.get_fax(bare) if re.fullmatch(r"[0-9a-f]{32}", bare) else None
    if f is None or f.account_id != account_id:
        raise bad_identifier(fax_id)
    if m:
        created = time.gmtime(f.created - GREGORIAN_OFFSET)
        if (created.tm_year, created.tm_mon) != (int(m.group(1)), int(m.group(2))):
            raise bad_identifier(fax_id)
    ok = {
        "outgoing": f.direction == "out",
        "outbox": f.direction == "out" and f.status in FINISHED,
        "incoming": f.direction == "in",
        "inbox": f.direction == "in" and f.status == "completed",
    }[folder]
    if not ok:
        raise bad_identifier(fax_id)
    return f


# ------------------------------------------------------------------ listings

def _encode_key(created: int, fid: str) -> str:
    return base64.urlsafe_b64encode(json.dumps([created, fid]).encode()).decode().rstrip("=")


def _decode_key(key: str) -> tuple[int, str]:
    try:
        value = json.loads(base64.urlsafe_b64decode(key + "=" * (-len(key) % 4)))
        created, fid = value
        return int(created), str(fid)
    except (ValueError, TypeError) as exc:
        raise KazooError.system("faulty_request", "invalid start key") from exc


def _gregorian_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    try:
        return int(value)
    except ValueError as exc:
        raise KazooError.validation({name: {"type": {"message": "Value did not match type(s): integer",
                                                     "value": value}}}) from exc


def _flat(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value)
    return str(value)


def _lookup(doc: dict, path: str) -> tuple[bool, Any]:
    cur: Any = doc
    for part in path.split("."):
        if not isinstance(cur, dict) or part not in cur:
            return False, None
        cur = cur[part]
    return True, cur


def _filters(request: Request):  # noqa: ANN202
    tests = []
    for key, value in request.query_params.multi_items():
        if key.startswith("filter_not_"):
            path = key[len("filter_not_"):]
            tests.append(lambda d, p=path, v=value: (lambda f: not f[0] or _flat(f[1]) != v)(_lookup(d, p)))
        elif key.startswith("filter_"):
            path = key[len("filter_"):]
            tests.append(lambda d, p=path, v=value: (lambda f: f[0] and _flat(f[1]) == v)(_lookup(d, p)))
        elif key == "has_key":
            tests.append(lambda d, p=value: _lookup(d, p)[0])
        elif key == "key_missing":
            tests.append(lambda d, p=value: not _lookup(d, p)[0])
        elif key == "has_value":
            tests.append(lambda d, p=value: (lambda f: f[0] and f[1] not in (None, "", [], {}))(_lookup(d, p)))
        elif key == "missing_value":
            tests.append(lambda d, p=value: (lambda f: not f[0] or f[1] in (None, "", [], {}))(_lookup(d, p)))
    return tests


def listing(request: Request, fetch, render, key_of) -> Response:  # noqa: ANN001
    """Kazoo pagination over a keyset query: ``fetch(start_key, limit)`` returns rows newest first."""
    q = request.query_params
    cfg = ctx(request).config["api"]
    paginate = q.get("paginate", "true").lower() != "false"
    page_size = cfg["page_size"]
    if "page_size" in q:
        try:
            page_size = int(q["page_size"])
        except ValueError as exc:
            raise KazooError.system("faulty_request", "invalid page size") from exc
        if page_size < 1:
            raise KazooError.system("faulty_request", "page size must be at least 1")
        page_size = min(page_size, cfg["max_paginate_false"])
    start = _decode_key(q["start_key"]) if "start_key" in q and paginate else None
    tests = _filters(request)
    want = page_size + 1 if paginate else cfg["max_paginate_false"] + 1
    rows: list[tuple[tuple[int, str], dict]] = []
    cursor = start
    batch = max(want, 100) if tests else want
    while len(rows) < want:
        chunk = fetch(cursor, batch)
        for raw in chunk:
            doc = render(raw)
            if all(t(doc) for t in tests):
                rows.append((key_of(raw), doc))
                if len(rows) >= want:
                    break
        if len(chunk) < batch:
            break
        last = key_of(chunk[-1])
        cursor = _after(last)
    if not paginate:
        if len(rows) > cfg["max_paginate_false"]:
            raise KazooError.system("range_not_satisfiable")
        return reply(request, [d for _, d in rows])
    page = rows[:page_size]
    extra: dict[str, Any] = {"page_size": len(page)}
    first_key = start if start is not None else (page[0][0] if page else None)
    extra["start_key"] = _encode_key(*first_key) if first_key else ""
    if len(rows) > page_size:
        extra["next_start_key"] = _encode_key(*rows[page_size][0])
    return reply(request, [d for _, d in page], extra=extra)


class _after(tuple):
    """A keyset position strictly after ``key`` in descending order (created desc, id desc)."""

    def __new__(cls, key: tuple[int, str]):  # noqa: ANN204
        return tuple.__new__(cls, key)


def _ranges(request: Request, ranged: bool = True) -> tuple[int | None, int | None]:
    """created_from/created_to. On ranged listings (the folders, smtplog) the span is capped like
    crossbar's maximum_range (31 days + 1 hour by default; created_to defaults to now); on outgoing they
    are plain filters."""
    created_from = _gregorian_param(request, "created_from")
    created_to = _gregorian_param(request, "created_to")
    if created_from is not None and created_to is not None and created_to < created_from:
        raise KazooError.validation({"created_from": {"date_range": {
            "message": f"created_to {created_to} is prior to created_from {created_from}", "cause": created_from}}})
    max_range = int(ctx(request).config["api"]["maximum_range"])
    if ranged and created_from is not None and max_range > 0:
        end = created_to if created_to is not None else int(time.time()) + GREGORIAN_OFFSET
        if end - created_from > max_range:
            raise KazooError.validation({"created_from": {"date_range": {
                "message": f"created_to {end} is more than {max_range} seconds from created_from {created_from}",
                "cause": created_from}}})
    return created_from, created_to


def _fax_fetcher(request: Request, account_id: str, direction: str, statuses, columns_only: bool,  # noqa: ANN001
                 ranged: bool = True):
    store = ctx(request).store
    created_from, created_to = _ranges(request, ranged)
    modified_from = _gregorian_param(request, "modified_from")   # crossbar filters on the last change
    modified_to = _gregorian_param(request, "modified_to")
    ascending = request.query_params.get("ascending", "false").lower() == "true"

    def fetch(start, limit):  # noqa: ANN001, ANN202
        rows = store.list_faxes(account_id, direction, statuses=statuses, start_key=None if start is None
                                else tuple(start), limit=limit + (1 if isinstance(start, _after) else 0),
                                created_from=created_from, created_to=created_to, modified_from=modified_from,
                                modified_to=modified_to, ascending=ascending, columns_only=columns_only)
        if isinstance(start, _after):
            rows = [r for r in rows if (r["created"], r["id"]) != tuple(start)] if columns_only else \
                [r for r in rows if (r.created, r.id) != tuple(start)]
            rows = rows[:limit]
        return rows
    return fetch


# ------------------------------------------------------------------ outgoing

@router.put("")
@router.put("/outgoing")
async def create_outgoing(request: Request, account_id: str) -> Response:
    raw = await raw_body(request)
    return await run_in_threadpool(_create, request, account_id, raw)


def _create(request: Request, account_id: str, raw: bytes) -> Response:
    authorize(request, account_id)
    body = body_of(request, raw)
    envelope_ = dict(body.envelope)
    if body.files and "data" not in envelope_:
        # A bare document: the job's fields may come from the query string.
        envelope_["data"] = {k: v for k, v in request.query_params.items() if k not in ("auth_token",)}
    f = create_job(ctx(request), account_id, envelope_.get("data", {}), body.files)
    return reply(request, render_job(f), revision=f.rev, status_code=201,
                 headers={"Location": f"/v2/accounts/{account_id}/faxes/outgoing/{f.id}"})


@router.get("/outgoing")
def list_outgoing(request: Request, account_id: str) -> Response:
    authorize(request, account_id)
    columns_only = not any(k.startswith(("filter_", "has_", "key_missing", "missing_value"))
                           for k in request.query_params)
    fetch = _fax_fetcher(request, account_id, "out", None, columns_only, ranged=False)
    if columns_only:
        return listing(request, fetch, outgoing_row, lambda m: (m["created"], m["id"]))
    return listing(request, fetch, lambda f: {**outgoing_row(f.__dict__ | {"to_number": f.to_number}),
                                              **render_job(f)}, lambda f: (f.created, f.id))


@router.get("/outgoing/{fax_id}")
def get_outgoing(request: Request, account_id: str, fax_id: str) -> Response:
    authorize(request, account_id)
    f = load(request, account_id, fax_id, "outgoing")
    return reply(request, render_job(f), revision=f.rev)


def _authorized_load(request: Request, account_id: str, fax_id: str, folder: str) -> Fax:
    authorize(request, account_id)
    return load(request, account_id, fax_id, folder)


async def _edit(request: Request, account_id: str, fax_id: str, merge: bool) -> Response:
    raw = await raw_body(request)
    return await run_in_threadpool(_edit_sync, request, account_id, fax_id, raw, merge)


def _edit_sync(request: Request, account_id: str, fax_id: str, raw: bytes, merge: bool) -> Response:
    c = ctx(request)
    f = _authorized_load(request, account_id, fax_id, "outgoing")
    body = body_of(request, raw)
    if f.status == "processing":
        raise KazooError(409, "job_in_progress", {"message": "the fax is being transmitted; try again when it ends"})
    data = body.envelope.get("data", {} if body.files else None)
    if data is None or not isinstance(data, dict):
        if body.files and data is None:
            data = {}
        else:
            raise KazooError.validation({"data": {"required": {"message": "Field is required but missing",
                                                               "value": "data"}}})
    current = {k: v for k, v in f.doc.items() if k not in ("attempts", "tx_result")}
    if merge or (body.files and not body.envelope):
        data = deep_merge(current, data)
    doc, errors = validate_fax(data)
    errors = {**errors, **channel_errors(c, doc)}
    if errors:
        raise KazooError.validation(errors)
    doc["attempts"] = 0
    doc["tx_result"] = default_tx_result()
    names = c.store.attachment_names(f.id)
    if body.files:
        c.store.delete_attachments(f.id)
        for name, up in zip(original_names(body.files), body.files, strict=True):
            c.store.put_attachment(f.id, name, up.content_type, up.data)
    elif doc.get("document") != f.doc.get("document") and "document" in doc:
        c.store.delete_attachments(f.id)   # a new document: fetch and convert again
    elif not original_names_present(names) and "document" not in doc:
        raise KazooError.validation({"document.url": {"required": {
            "message": "add document url or upload a document"}}})
    try:
        f = c.store.update_fax(f.id, expect_status=EDITABLE, expect_rev=f.rev, doc=doc, status="pending",
                               next_attempt=time.time(), cancel_reason=None, progress=None)
    except Conflict as exc:
        raise KazooError(409, "datastore_conflict", {"message": f"conflicting documents: {exc}"}) from exc
    c.wake()
    return reply(request, render_job(f), revision=f.rev)


def original_names_present(names: dict) -> bool:
    return any(n.startswith(("original_file", "fax_file")) for n in names)


@router.post("/outgoing/{fax_id}")
async def post_outgoing(request: Request, account_id: str, fax_id: str) -> Response:
    return await _edit(request, account_id, fax_id, merge=False)


@router.patch("/outgoing/{fax_id}")
async def patch_outgoing(request: Request, account_id: str, fax_id: str) -> Response:
    return await _edit(request, account_id, fax_id, merge=True)


@router.delete("/outgoing/{fax_id}")
def delete_outgoing(request: Request, account_id: str, fax_id: str) -> Response:
    authorize(request, account_id)
    c = ctx(request)
    for _ in range(5):
        f = load(request, account_id, fax_id, "outgoing")
        try:
            if f.status == "processing":
                reason = "cancelled: deleted through the API during transmission"
                f = c.store.update_fax(f.id, expect_status=["processing"], cancel_reason=reason)
                c.cancel(f.id, reason)
                return reply(request, {**render_job(f), "_read_only": {"cancelled": True, "reason": reason}},
                             revision=f.rev)
            f = c.store.update_fax(f.id, expect_status=[f.status], expect_rev=f.rev, deleted=True)
            return reply(request, {**render_job(f), "_read_only": {"deleted": True}}, revision=f.rev)
        except Conflict:
            continue
    raise KazooError(409, "datastore_conflict", {"message": "conflicting documents"})


# ------------------------------------------------------------------ folders: outbox, inbox, incoming

FOLDERS = {"outbox": ("out", FINISHED), "inbox": ("in", ("completed",)), "incoming": ("in", None)}


def _folder_list(folder: str):  # noqa: ANN202
    direction, statuses = FOLDERS[folder]

    def handler(request: Request, account_id: str) -> Response:
        authorize(request, account_id)
        fetch = _fax_fetcher(request, account_id, direction, statuses, False)
        return listing(request, fetch, lambda f: render_folder_doc(f, folder), lambda f: (f.created, f.id))
    return handler


def _folder_get(folder: str):  # noqa: ANN202
    def handler(request: Request, account_id: str, fax_id: str) -> Response:
        authorize(request, account_id)
        f = load(request, account_id, fax_id, folder)
        return reply(request, render_folder_doc(f, folder), revision=f.rev)
    return handler


def _load_idle(request: Request, account_id: str, fax_id: str, folder: str) -> Fax:
    """The fax for a deletion: refused (409) while it is on the line, so its record and pages stay whole."""
    f = _authorized_load(request, account_id, fax_id, folder)
    if f.status in ("processing", "receiving"):
        raise KazooError(409, "job_in_progress", {"message": "the fax is being transmitted"})
    return f


def _folder_delete(folder: str):  # noqa: ANN202
    def handler(request: Request, account_id: str, fax_id: str) -> Response:
        f = _load_idle(request, account_id, fax_id, folder)
        hard = request.query_params.get("should_soft_delete", "true").lower() == "false"
        f = ctx(request).store.update_fax(f.id, deleted=True)
        if hard:
            ctx(request).store.delete_attachments(f.id)
        return reply(request, {**render_folder_doc(f, folder), "_read_only": {"deleted": True}}, revision=f.rev)
    return handler


def _attachment_get(folder: str):  # noqa: ANN202
    def handler(request: Request, account_id: str, fax_id: str) -> Response:
        authorize(request, account_id)
        f = load(request, account_id, fax_id, folder)
        fmt = request.query_params.get("format")
        if fmt is None:
            accept = request.headers.get("accept", "")
            fmt = "tiff" if "image/tiff" in accept and "application/pdf" not in accept else "pdf"
        if fmt not in ("pdf", "tiff", "original"):
            raise KazooError.validation({"format": {"enum": {
                "message": "invalid format for attachment", "value": fmt, "target": ["pdf", "tiff", "original"]}}})
        etag = f'"{f.rev}"'
        if request.headers.get("if-none-match") == etag:
            return Response(status_code=304, headers={"ETag": etag})
        try:
            found = ctx(request).documents.attachment_sync(f, fmt)
        except Exception as exc:  # a converter failure: say so, like crossbar's datastore_fault
            raise KazooError(500, "datastore_fault", {"cause": str(exc), "message": "unknown failure"}) from exc
        if found is None:
            raise KazooError.system("bad_identifier", "no attachment", cause=fax_id)
        ctype, data, ext = found
        disposition = request.query_params.get("disposition", "attachment")
        if disposition not in ("attachment", "inline"):
            disposition = "attachment"
        stamp = time.strftime("%Y-%m-%d_%H-%M-%S", time.gmtime(f.created - GREGORIAN_OFFSET))
        headers = {"Content-Disposition": f"{disposition}; filename=fax_document_{stamp}.{ext}", "ETag": etag,
                   "X-Request-ID": request.state.request_id}
        return Response(data, media_type=ctype, headers=headers)
    return handler


def _attachment_delete(folder: str):  # noqa: ANN202
    def handler(request: Request, account_id: str, fax_id: str) -> Response:
        f = _load_idle(request, account_id, fax_id, folder)
        removed = ctx(request).store.delete_attachments(f.id)
        return reply(request, {"id": f.id, "_read_only": {"deleted": True, "attachments_removed": removed}},
                     revision=f.rev)
    return handler


for _folder in ("outbox", "inbox", "incoming"):
    router.add_api_route(f"/{_folder}", _folder_list(_folder), methods=["GET"])
    router.add_api_route(f"/{_folder}/{{fax_id}}", _folder_get(_folder), methods=["GET"])
    router.add_api_route(f"/{_folder}/{{fax_id}}", _folder_delete(_folder), methods=["DELETE"])
    router.add_api_route(f"/{_folder}/{{fax_id}}/attachment", _attachment_get(_folder), methods=["GET"])
    router.add_api_route(f"/{_folder}/{{fax_id}}/attachment", _attachment_delete(_folder), methods=["DELETE"])


async def _action(request: Request, account_id: str, fax_id: str, folder: str, allowed: str) -> Response:
    raw = await raw_body(request)
    return await run_in_threadpool(_action_sync, request, account_id, fax_id, raw, folder, allowed)


def _action_sync(request: Request, account_id: str, fax_id: str, raw: bytes, folder: str, allowed: str) -> Response:
    c = ctx(request)
    f = _authorized_load(request, account_id, fax_id, folder)
    body = body_of(request, raw, allow_files=False)
    action = body.envelope.get("action")
    if action is None:
        raise KazooError.validation({"action": {"required": {"message": "action required", "value": "action"}}})
    if action != allowed:
        raise KazooError.validation({"action": {"enum": {"message": "invalid action", "value": action,
                                                         "target": [allowed]}}})
    data = body.envelope.get("data") or {}
    if not isinstance(data, dict):
        raise KazooError.validation({"data": {"type": {"message": "Value did not match type(s): object"}}})
    base = {k: v for k, v in f.doc.items() if k not in ("tx_result", "rx_result", "attempts")}
    new = c.copy_job(f, deep_merge(base, data), folder)
    return reply(request, render_job(new), revision=new.rev, status_code=201,
                 headers={"Location": f"/v2/accounts/{account_id}/faxes/outgoing/{new.id}"})


@router.put("/outbox/{fax_id}")
async def resubmit(request: Request, account_id: str, fax_id: str) -> Response:
    return await _action(request, account_id, fax_id, "outbox", "resubmit")


@router.put("/inbox/{fax_id}")
async def forward(request: Request, account_id: str, fax_id: str) -> Response:
    return await _action(request, account_id, fax_id, "inbox", "forward")


# ------------------------------------------------------------------ smtplog

@router.get("/smtplog")
def list_smtplog(request: Request, account_id: str) -> Response:
    authorize(request, account_id)
    created_from, created_to = _ranges(request)
    store = ctx(request).store

    def fetch(start, limit):  # noqa: ANN001, ANN202
        rows = store.list_smtplog(account_id, start_key=None if start is None else tuple(start),
                                  limit=limit + (1 if isinstance(start, _after) else 0),
                                  created_from=created_from, created_to=created_to)
        if isinstance(start, _after):
            rows = [r for r in rows if (r["created"], r["id"]) != tuple(start)][:limit]
        return rows

    def render(r: dict) -> dict:
        d = r["doc"]
        errors = d.get("errors") or []
        return {"id": r["id"], "from": d.get("from"), "to": d.get("to"), "error": errors[0] if errors else "",
                "outcome": d.get("outcome"), "created": r["created"]}
    return listing(request, fetch, render, lambda r: (r["created"], r["id"]))


@router.get("/smtplog/{log_id}")
def get_smtplog(request: Request, account_id: str, log_id: str) -> Response:
    authorize(request, account_id)
    m = MODB_PREFIX.match(log_id)
    r = ctx(request).store.get_smtplog(account_id, m.group(3) if m else log_id)
    if r is None:
        raise bad_identifier(log_id)
    return reply(request, {**r["doc"], "id": r["id"], "created": r["created"]})
