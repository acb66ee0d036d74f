"""``faxengine serve``: the API server (health only until the faxes API lands)."""

from __future__ import annotations

import argparse


def _serve(args: argparse.Namespace) -> int:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI(title="faxengine")

    @app.get("/health")
    def health() -> dict:
        return {"status": "ok"}

    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the fax server")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(func=_serve)
