"""``faxengine serve``: API, SMTP gateway, scheduler and channels on one asyncio loop."""

from __future__ import annotations

import asyncio
import contextlib
import json
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


def first_run_account(ctx: AppContext, config: Config) -> None:
    """An empty store gets a 'default' account, so `make run` can be tried at once; its key is logged
    and kept in <data_dir>/default_account.json."""
    if ctx.store.count_accounts():
        return
    account = ctx.store.create_account("default", default_domain=config["email_gateway"]["default_domain"],
                                       settings={"smtp_permission_list": []})
    info = {"account_id": account.id, "api_key": account.api_key, "fax_domain": account.fax_domain}
    path = config.data_dir / "default_account.json"
    with contextlib.suppress(OSError):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(info, indent=2) + "\n")
        path.chmod(0o600)
    server = config["server"]
    log.info("first start: created account 'default' %s (api key in %s)", account.id, path)
    log.info("try: curl -s -X PUT -d '{\"data\":{\"api_key\":\"%s\"}}' http://%s:%s/v2/api_auth", account.api_key,
             server["host"], server["port"])


async def serve(config: Config) -> None:
    ctx, scheduler, notifier = build(config)
    first_run_account(ctx, config)
    server_cfg = config["server"]
    app = create_app(ctx)
    uv = uvicorn.Server(uvicorn.Config(app, host=server_cfg["host"], port=int(server_cfg["port"]), lifespan="off",
                                       log_level="warning", access_log=False))
    smtp = None
    await scheduler.start()
    try:
        if config["email_gateway"]["enabled"] and int(server_cfg["smtp_port"]) > 0:
            from api.email_gateway import start_gateway

            try:
                smtp = await start_gateway(ctx, server_cfg["smtp_host"] or server_cfg["host"],
                                           int(server_cfg["smtp_port"]))
            except OSError as exc:   # the API is worth running without the email gateway
                log.error("email-to-fax gateway not started on port %s: %s", server_cfg["smtp_port"], exc)
        log.info("faxengine: API on http://%s:%s, SMTP on port %s, store %s, data in %s", server_cfg["host"],
                 server_cfg["port"], server_cfg["smtp_port"], ctx.store.url.split("@")[-1], config.data_dir)
        await uv.serve()
    finally:
        if smtp is not None:
            smtp.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(5):   # not wait_for: it can swallow a cancel on 3.11
                    await smtp.wait_closed()
        await scheduler.stop()
        await notifier.drain(10)
        ctx.store.close()
