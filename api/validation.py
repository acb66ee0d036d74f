"""The Kazoo ``faxes`` schema, checked by hand so errors come out in crossbar's shape.

Unknown keys are kept (the schema has no additionalProperties restriction); ``_*``/``pvt_*`` keys and
``id`` are dropped; string->integer/boolean mismatches are coerced as crossbar's non-strict mode does."""

from __future__ import annotations

import re
from typing import Any

TX_RESULT_DEFAULTS = {
    "error_message": "",
    "fax_bad_rows": 0,
    "fax_error_correction": False,
    "fax_receiver_id": "",
    "fax_speed": 0,
    "pages_sent": 0,
    "success": False,
    "time_elapsed": 0,
}

EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$|^[^@\s]+@localhost$")
URL_RE = re.compile(r"^https?://")
NUMBER_RE = re.compile(r"^\+?[0-9]{2,20}$")
NUMBER_FORMATTING = re.compile(r"[\s\-().]")


def public_fields(doc: dict) -> dict:
    return {k: v for k, v in doc.items() if not (k.startswith("_") or k.startswith("pvt_") or k == "id")}


def normalize_number(value: str) -> str | None:
    """Strip formatting; a dialable number is digits with an optional leading '+'."""
    n = NUMBER_FORMATTING.sub("", value)
    return n if NUMBER_RE.match(n) else None


class _Errors:
    def __init__(self) -> None:
        self.errors: dict[str, dict] = {}

    def add(self, path: str, rule: str, message: str, value: Any = None, **extra: Any) -> None:
        entry: dict[str, Any] = {"message": message}
        if value is not None:
            entry["value"] = value
        entry.update(extra)
        self.errors.setdefault(path, {})[rule] = entry


def _type_name(value: Any) -> str:
    return {bool: "boolean", int: "integer", float: "number", str: "string", list: "array", dict: "object",
            type(None): "null"}.get(type(value), "unknown")


def _coerce_int(doc: dict, key: str, path: str, errs: _Errors, minimum: int | None, maximum: int | None) -> None:
    if key not in doc:
        return
    value = doc[key]
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value.strip()):
        value = doc[key] = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        errs.add(path, "type", "Value did not match type(s): integer", value)
        return
    if minimum is not None and value < minimum:
        errs.add(path, "minimum", f"Value must be at least {minimum}", value, target=minimum)
    if maximum is not None and value > maximum:
        errs.add(path, "maximum", f"Value must be at most {maximum}", value, target=maximum)


def _string(doc: dict, key: str, path: str, errs: _Errors, *, max_length: int | None = None) -> None:
    if key not in doc:
        return
    value = doc[key]
    if not isinstance(value, str):
        errs.add(path, "type", "Value did not match type(s): string", value)
    elif max_length is not None and len(value) > max_length:
        errs.add(path, "maxLength", f"String must not be more than {max_length} characters", value,
                 target=max_length)


def _send_to(obj: dict, path: str, errs: _Errors, email: bool) -> None:
    if "send_to" not in obj:
        return
    value = obj["send_to"]
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list) or not all(isinstance(i, str) for i in items):
        errs.add(f"{path}.send_to", "type", "Value did not match type(s): string, array(string)", value)
        return
    if email:
        for item in items:
            if not EMAIL_RE.match(item.strip()):
                errs.add(f"{path}.send_to", "format", "Value does not match format: email", item)


def validate_fax(data: Any) -> tuple[dict, dict]:
    """Return (document, errors); the document has defaults filled and numbers normalised."""
    errs = _Errors()
    if not isinstance(data, dict):
        errs.add("data", "type", "Value did not match type(s): object", data)
        return {}, errs.errors
    doc = public_fields(data)
    for key in ("from_number", "to_number"):
        if key not in doc or doc[key] is None:
            errs.add(key, "required", "Field is required but missing", key)
    for key in ("from_name", "to_name", "from_number", "to_number", "subject", "fax_timezone"):
        _string(doc, key, key, errs)
    _coerce_int(doc, "retries", "retries", errs, 0, 4)
    _coerce_int(doc, "attempts", "attempts", errs, 0, 4)
    if "document" in doc:
        document = doc["document"]
        if not isinstance(document, dict):
            errs.add("document", "type", "Value did not match type(s): object", document)
        else:
            if "url" not in document:
                errs.add("document.url", "required", "Field is required but missing", "url")
            else:
                _string(document, "url", "document.url", errs)
                if isinstance(document["url"], str) and not URL_RE.match(document["url"]):
                    errs.add("document.url", "pattern", "Failed to match pattern '^https?://'", document["url"])
            document.setdefault("method", "get")
            if isinstance(document["method"], str):
                document["method"] = document["method"].lower()
            if document["method"] not in ("get", "post"):
                errs.add("document.method", "enum", "Value not found in enumerated list of values",
                         document["method"], target=["get", "post"])
            _string(document, "content", "document.content", errs, max_length=256)
            for key in ("content_type", "host", "referer"):
                _string(document, key, f"document.{key}", errs)
    if "notifications" in doc:
        notes = doc["notifications"]
        if not isinstance(notes, dict):
            errs.add("notifications", "type", "Value did not match type(s): object", notes)
        else:
            for kind in ("email", "sms"):
                if kind in notes:
                    if not isinstance(notes[kind], dict):
                        errs.add(f"notifications.{kind}", "type", "Value did not match type(s): object", notes[kind])
                    else:
                        _send_to(notes[kind], f"notifications.{kind}", errs, email=kind == "email")
    if "tx_result" in doc and not isinstance(doc["tx_result"], dict):
        errs.add("tx_result", "type", "Value did not match type(s): object", doc["tx_result"])
    if not errs.errors:
        number = normalize_number(doc["to_number"])
        if number is None:
            errs.add("to_number", "invalid", "add a valid number to send the fax to", doc["to_number"])
        else:
            doc["to_number"] = number
    doc.setdefault("retries", 1)
    return doc, errs.errors


def deep_merge(base: dict, patch: dict) -> dict:
    """PATCH semantics: the request wins, recursively; ``null`` removes a key."""
    out = dict(base)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        elif isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out
