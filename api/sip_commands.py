"""``faxengine sip status``: the SIP trunks of a running ``faxengine serve`` and their registrations,
read from its ``/v2/health`` (the server owns the SIP port, so the CLI asks it rather than register
a second time)."""

from __future__ import annotations

import argparse
import json
import sys
import time

from engine.config import ConfigError, load_config

EXIT_OK, EXIT_DEGRADED, EXIT_UNREACHABLE = 0, 1, 2


def _health_url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url.rstrip("/") + "/v2/health"
    config = load_config(args.config)
    server = config["server"]
    host = server["host"] if server["host"] not in ("0.0.0.0", "::", "") else "127.0.0.1"
    host = f"[{host}]" if ":" in host else host
    return f"http://{host}:{server['port']}/v2/health"


def _describe(sip: dict) -> list[str]:
    if not sip.get("running"):
        return [f"SIP endpoint not running: {sip.get('error', '?')}"]
    lines = [f"SIP endpoint listening on {sip.get('listening')}" + (" (udp, tcp)" if sip.get("tcp") else " (udp)")]
    calls = sip.get("active_calls") or {}
    registrations = sip.get("registrations") or {}
    for trunk in sorted(set(calls) | set(registrations)):
        reg = registrations.get(trunk)
        if reg is None:
            state = "not registering"
        else:
            state = reg["state"]
            if reg.get("code"):
                state += f" ({reg['code']} {reg.get('reason', '')})".rstrip()
            if reg["state"] == "registered" and reg.get("expires_at"):
                state += f", expires in {max(0, int(reg['expires_at'] - time.time()))} s"
        lines.append(f"trunk {trunk}: {state}; {calls.get(trunk, 0)} call(s) now")
    return lines


def _status(args: argparse.Namespace) -> int:
    # here, not at the top: every faxengine command imports this module
    import urllib.error
    import urllib.request

    try:
        url = _health_url(args)
    except (ConfigError, OSError) as exc:
        print(f"faxengine: bad configuration: {exc}", file=sys.stderr)
        return EXIT_UNREACHABLE
    try:
        with urllib.request.urlopen(url, timeout=args.timeout) as resp:   # noqa: S310 - our own server
            body = json.loads(resp.read())
    except (urllib.error.URLError, OSError, ValueError) as exc:
        print(f"faxengine: no fax server answering at {url}: {getattr(exc, 'reason', exc)}", file=sys.stderr)
        return EXIT_UNREACHABLE
    data = body.get("data") or {}
    sip = data.get("sip")
    if args.json:
        print(json.dumps(sip, indent=2, sort_keys=True))
    elif sip is None:
        print("the server has no SIP endpoint (no [sip] section in its configuration)")
    else:
        print("\n".join(_describe(sip)))
    if sip is None or not sip.get("running"):
        return EXIT_DEGRADED
    failed = [n for n, r in (sip.get("registrations") or {}).items() if r.get("state") != "registered"]
    return EXIT_DEGRADED if failed else EXIT_OK


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("sip", help="SIP trunks of the running server")
    sip_sub = p.add_subparsers(dest="sip_command", required=True, metavar="ACTION")
    s = sip_sub.add_parser("status", help="registration state of each trunk (exit 1 unless all are registered)")
    s.add_argument("--config", default=None, help="the server's TOML configuration (for its address)")
    s.add_argument("--url", default=None, help="the server's base URL instead, e.g. http://127.0.0.1:8000")
    s.add_argument("--json", action="store_true", help="print the raw SIP health record")
    s.add_argument("--timeout", type=float, default=5.0, help="seconds to wait for the server")
    s.set_defaults(func=_status)
