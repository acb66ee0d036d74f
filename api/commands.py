"""``faxengine serve`` and ``faxengine accounts create``."""

from __future__ import annotations

import argparse
import json
import logging
import sys

from engine.config import ConfigError, load_config  # light: tomllib only; asyncio and the server load in handlers


def _config(args: argparse.Namespace):  # noqa: ANN202
    overrides = {"server__data_dir": getattr(args, "data_dir", None)}
    for name in ("host", "port", "smtp_port"):
        overrides[f"server__{name}"] = getattr(args, name, None)
    return load_config(getattr(args, "config", None), **overrides)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = _config(args)
    except (ConfigError, OSError) as exc:
        print(f"faxengine: bad configuration: {exc}", file=sys.stderr)
        return 2
    import asyncio

    from api.server import serve

    asyncio.run(serve(config))
    return 0


def _accounts_create(args: argparse.Namespace) -> int:
    try:
        config = _config(args)
    except (ConfigError, OSError) as exc:
        print(f"faxengine: bad configuration: {exc}", file=sys.stderr)
        return 2
    from engine.store import Store, StoreError

    store = Store(config.storage_url)
    settings: dict = {}
    if args.inbound_email:
        settings["inbound_email"] = args.inbound_email
    if args.number:
        settings["numbers"] = args.number
    if args.allow_sender:
        settings["smtp_permission_list"] = [s.lower() for s in args.allow_sender]
    try:
        account = store.create_account(args.name, parent_id=args.parent, fax_domain=args.fax_domain,
                                       settings=settings, default_domain=config["email_gateway"]["default_domain"])
    except StoreError as exc:
        print(f"faxengine: {exc}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(json.dumps({"account_id": account.id, "api_key": account.api_key, "name": account.name,
                      "fax_domain": account.fax_domain, "parent_id": account.parent_id}))
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the fax server (API, SMTP gateway, scheduler, channels)")
    p.add_argument("--host", default=None, help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=None, help="API port (default 8000)")
    p.add_argument("--smtp-port", type=int, default=None, help="email-to-fax port (default 2525; 0 disables)")
    p.add_argument("--data-dir", default=None, help="where the SQLite store lives (default ./data)")
    p.add_argument("--config", default=None, help="TOML configuration file")
    p.set_defaults(func=_serve)

    acc = sub.add_parser("accounts", help="manage accounts")
    acc_sub = acc.add_subparsers(dest="accounts_command", required=True, metavar="ACTION")
    c = acc_sub.add_parser("create", help="create an account; prints its id and api key as JSON")
    c.add_argument("name")
    c.add_argument("--data-dir", default=None)
    c.add_argument("--config", default=None)
    c.add_argument("--parent", default=None, help="parent account id")
    c.add_argument("--fax-domain", default=None, help="email-to-fax domain (default <id>.fax.localhost)")
    c.add_argument("--inbound-email", action="append", default=None, help="where received faxes are emailed")
    c.add_argument("--number", action="append", default=None, help="a fax number of this account (inbound calls)")
    c.add_argument("--allow-sender", action="append", default=None,
                   help="email address (or regex) allowed to send faxes by email")
    c.set_defaults(func=_accounts_create)
