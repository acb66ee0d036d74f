"""``GET /v2/health``: is the server up, and what state are its channels in (SIP trunk registrations
for monitoring and ``faxengine sip status``).  Open like a load balancer's probe; it shows trunk
names and registration states, never credentials."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, Request
from starlette.responses import Response

from api.envelope import envelope

router = APIRouter()


def channels_health(ctx) -> dict:  # noqa: ANN001
    scheduler = getattr(ctx, "scheduler", None)
    channels = getattr(scheduler, "channels", None) or {}
    out: dict = {}
    for name, channel in channels.items():
        report = getattr(channel, "health", None)
        try:
            out[name] = report() if callable(report) else {}
        except Exception as exc:   # health must answer even when a channel is broken
            out[name] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


@router.get("/v2/health")
async def health(request: Request) -> Response:
    ctx = request.app.state.ctx
    channels = channels_health(ctx)
    scheduler = getattr(ctx, "scheduler", None)
    services = [c.service for c in (getattr(scheduler, "channels", None) or {}).values() if hasattr(c, "service")]
    sip = services[0].health() if services else None
    registrations = (sip or {}).get("registrations") or {}
    degraded = bool(sip and not sip.get("running")) or any(r.get("state") == "failed" for r in registrations.values())
    data = {
        "status": "degraded" if degraded else "ok",
        "scheduler": getattr(ctx, "scheduler", None) is not None,
        "channels": channels,
        "sip": sip,
    }
    return envelope(data, request_id=request.headers.get("x-request-id") or uuid.uuid4().hex, auth_token=None)
