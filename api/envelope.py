"""The Kazoo (crossbar) response envelope and its error shapes."""

from __future__ import annotations

import hashlib
import json
import time
import uuid
from typing import Any

from starlette.responses import Response

NODE = "faxengine"
VERSION = "4.3-compatible"

SYSTEM_ERRORS = {
    "invalid_credentials": (401, "invalid credentials"),
    "forbidden": (403, "forbidden"),
    "bad_identifier": (404, "bad identifier"),
    "not_found": (404, "not found"),
    "faulty_request": (404, "faulty request"),
    "invalid_method": (405, "method not allowed"),
    "datastore_conflict": (409, "conflicting documents"),
    "parse_error": (400, "failed to parse request body"),
    "too_large": (413, "request entity too large"),
    "unsupported_media_type": (415, "unsupported media type"),
    "range_not_satisfiable": (416, "too many results; paginate"),
}


class KazooError(Exception):
    """Raised anywhere in a request; rendered as the Kazoo error envelope."""

    def __init__(self, code: int, message: str, data: Any = None):
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data if data is not None else {"message": message}

    @classmethod
    def system(cls, name: str, message: str | None = None, **data: Any) -> KazooError:
        code, default = SYSTEM_ERRORS[name]
        return cls(code, name, {"message": message or default, **data})

    @classmethod
    def validation(cls, errors: dict) -> KazooError:
        return cls(400, "validation error", errors)


def _json(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":")).encode()


def envelope(data: Any, *, request_id: str, auth_token: str | None, revision: str | None = None,
             status_code: int = 200, extra: dict | None = None, headers: dict | None = None) -> Response:
    body: dict[str, Any] = {
        "data": data,
        "request_id": request_id,
        "status": "success",
        "node": NODE,
        "version": VERSION,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    if auth_token:
        body["auth_token"] = auth_token
    rendered_data = None
    if revision is None:
        rendered_data = _json({"d": data})
        revision = hashlib.md5(rendered_data).hexdigest()
    body["revision"] = revision
    if extra:
        body.update(extra)
    hdrs = {"X-Request-ID": request_id}
    if rendered_data is not None:
        hdrs["ETag"] = f'"{revision}"'
    if headers:
        hdrs.update(headers)
    return Response(_json(body), status_code=status_code, media_type="application/json", headers=hdrs)


def error_response(err: KazooError, *, request_id: str | None = None, auth_token: str | None = None) -> Response:
    request_id = request_id or uuid.uuid4().hex
    body = {
        "auth_token": auth_token or "undefined",
        "request_id": request_id,
        "node": NODE,
        "version": VERSION,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "status": "error",
        "error": str(err.code),
        "message": err.message,
        "data": err.data,
    }
    return Response(_json(body), status_code=err.code, media_type="application/json",
                    headers={"X-Request-ID": request_id})
