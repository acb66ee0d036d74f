"""``faxengine serve``: API, SMTP gateway, scheduler and channels on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import logging

import uvicorn

from api.app import AppContext, create_app
from engine.channels import build_channels
from engine.config import Config
from engine.fetch import FetchPolicy
from engine.inbound import InboundRecorder
from engine.notify import Notifier
from engine.scheduler import Scheduler
from engine.store import Store
from engine.store.documents import DocumentService

log = logging.getLogger("faxengine")


def build(config: Config) -> tuple[AppContext, Scheduler, Notifier]:
    store = Store(config.storage_url)
    documents = DocumentService(store, FetchPolicy.from_config(config["fetch"]))
    notifier = Notifier(store, config, documents)
    inbound = InboundRecorder(store, notifier, config.node_id)
    channels = build_channels(config, inbound)
    scheduler = Scheduler(store, config, documents, channels, notifier)
    return AppContext(config, store, documents, scheduler), scheduler, notifier


async def serve(config: Config) -> None:
    ctx, scheduler, notifier = build(config)
    server_cfg = config["server"]
    app = create_app(ctx)
    uv = uvicorn.Server(uvicorn.Config(app, host=server_cfg["host"], port=int(server_cfg["port"]), lifespan="off",
                                       log_level="warning", access_log=False))
    smtp = None
    await scheduler.start()
    try:
        if config["email_gateway"]["enabled"] and int(server_cfg["smtp_port"]) > 0:
            from api.email_gateway import start_gateway

            smtp = await start_gateway(ctx, server_cfg["smtp_host"] or server_cfg["host"], int(server_cfg["smtp_port"]))
        log.info("faxengine: API on http://%s:%s, SMTP on port %s, store %s, data in %s", server_cfg["host"],
                 server_cfg["port"], server_cfg["smtp_port"], ctx.store.url.split("@")[-1], config.data_dir)
        await uv.serve()
    finally:
        if smtp is not None:
            smtp.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(smtp.wait_closed(), 5)
        await scheduler.stop()
        await notifier.drain(10)
        ctx.store.close()
