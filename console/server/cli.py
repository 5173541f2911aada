"""``agentroster server``: run the collector, and administer its tokens, enroll secret and devices.

``agentroster`` imports this module at every start, so it imports only the standard library at module
level; FastAPI, SQLModel and uvicorn are imported inside the commands that need them.
"""

from __future__ import annotations

import argparse
import os
import sys
from datetime import UTC, datetime
from typing import Any

from console.loopback import is_loopback_host

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8443


def add_parser(sub: Any) -> None:
    server = sub.add_parser("server", help="run and administer the collector server",
                            description="Run the collector (the default action) or administer it.")
    _database_options(server, default=None)
    _run_options(server, default=None)
    server.set_defaults(run=run_server)
    actions = server.add_subparsers(metavar="ACTION")

    run = actions.add_parser("run", help="serve the API (the default)")
    _database_options(run, default=argparse.SUPPRESS)
    _run_options(run, default=argparse.SUPPRESS)
    run.set_defaults(run=run_server)

    token = actions.add_parser("token", help="admin and viewer tokens for the console and the API")
    token_actions = token.add_subparsers(metavar="ACTION")
    create = _action(token_actions, "create", "make a token and print it (once: it is stored hashed)", token_create)
    create.add_argument("--role", required=True, choices=("admin", "viewer"))
    create.add_argument("--name", default="", help="a label, e.g. who holds it")
    _action(token_actions, "list", "list tokens (never their values)", token_list)
    revoke = _action(token_actions, "revoke", "revoke a token now", token_revoke)
    revoke.add_argument("id", help="the token id from `token list`")
    token.set_defaults(run=lambda _args: _usage(token))

    secret = actions.add_parser("secret", help="the enroll secret devices use to enroll")
    secret_actions = secret.add_subparsers(metavar="ACTION")
    _action(secret_actions, "rotate", "make a new enroll secret and print it once; the old one stops working",
            secret_rotate)
    secret.set_defaults(run=lambda _args: _usage(secret))

    device = actions.add_parser("device", help="enrolled devices")
    device_actions = device.add_subparsers(metavar="ACTION")
    _action(device_actions, "list", "list devices", device_list)
    revoke_device = _action(device_actions, "revoke", "revoke a device: its key stops working, it cannot re-enroll",
                            device_revoke)
    revoke_device.add_argument("id", help="the device id from `device list`")
    device.set_defaults(run=lambda _args: _usage(device))


def _action(actions: Any, name: str, help_text: str, func: Any) -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = actions.add_parser(name, help=help_text, description=help_text)
    _database_options(parser, default=argparse.SUPPRESS)
    parser.set_defaults(run=func)
    return parser


def _database_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument("--data-dir", metavar="DIR", default=default,
                        help="where the SQLite database lives (default: $AGENTROSTER_SERVER_DATA_DIR, else "
                             "$XDG_DATA_HOME/agentroster/server, or /var/lib/agentroster/server as root); "
                             "created on first start")
    parser.add_argument("--database-url", metavar="URL", default=default,
                        help="any SQLAlchemy URL instead, e.g. postgresql://user@host/agentroster "
                             "(also $AGENTROSTER_DATABASE_URL)")


def _run_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    parser.add_argument("--host", default=default, help=f"address to listen on (default {DEFAULT_HOST})")
    parser.add_argument("--port", type=int, default=default, help=f"port (default {DEFAULT_PORT})")
    parser.add_argument("--tls-cert", metavar="FILE", default=default, help="serve HTTPS with this certificate")
    parser.add_argument("--tls-key", metavar="FILE", default=default, help="... and this private key")
    parser.add_argument("--insecure-http", action="store_true", default=default,
                        help="serve plain HTTP on an address other than loopback (tokens and device keys then "
                             "cross the network in clear; for a TLS proxy on a trusted network only)")
    parser.add_argument("--workers", type=int, default=default,
                        help="worker processes (default 1); on SQLite they take turns to write")
    parser.add_argument("--proxy-headers", action="store_true", default=default,
                        help="trust X-Forwarded-For/-Proto from the addresses in --forwarded-allow-ips")
    parser.add_argument("--forwarded-allow-ips", metavar="LIST", default=default,
                        help="comma-separated proxy addresses (or networks) to trust (default 127.0.0.1)")
    parser.add_argument("--stale-hours", type=float, default=default,
                        help="a device not seen for this long is stale (default 24)")
    parser.add_argument("--report-rate", type=float, default=default,
                        help="reports per second each device may send, per worker (default 10)")
    parser.add_argument("--report-burst", type=int, default=default, help="... and at once (default 50)")
    parser.add_argument("--enroll-rate", type=float, default=default,
                        help="enrollments per second from one address, per worker (default 2; burst --enroll-burst, 60)")
    parser.add_argument("--enroll-burst", type=int, default=default, help=argparse.SUPPRESS)
    parser.add_argument("--auth-failure-rate", type=float, default=default,
                        help="failed token checks per second from one address before 429 (default 1; burst "
                             "--auth-failure-burst, 30)")
    parser.add_argument("--auth-failure-burst", type=int, default=default, help=argparse.SUPPRESS)
    parser.add_argument("--max-report-mib", type=float, default=default,
                        help="a report body over this answers 413 (default 8; a device splits bigger snapshots)")
    parser.add_argument("--access-log", action="store_true", default=default, help="log every request")


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help(sys.stderr)
    return 2


def _option(args: argparse.Namespace, name: str, default: Any = None) -> Any:
    value = getattr(args, name, None)
    return default if value is None else value


def _settings(args: argparse.Namespace) -> Any:
    from pathlib import Path

    from console.server.settings import Settings

    extra: dict[str, Any] = {}
    if _option(args, "stale_hours") is not None:
        extra["stale_after_seconds"] = float(args.stale_hours) * 3600
    if _option(args, "report_rate") is not None:
        extra["report_rate_per_second"] = float(args.report_rate)
    if _option(args, "report_burst") is not None:
        extra["report_burst"] = int(args.report_burst)
    for option, field, kind in (("enroll_rate", "enroll_rate_per_second", float), ("enroll_burst", "enroll_burst", int),
                                ("auth_failure_rate", "auth_failure_rate_per_second", float),
                                ("auth_failure_burst", "auth_failure_burst", int)):
        if _option(args, option) is not None:
            if not 0 < args.__dict__[option] <= 1_000_000:
                raise SystemExit(f"agentroster server: --{option.replace('_', '-')} must be more than 0")
            extra[field] = kind(args.__dict__[option])
    if _option(args, "max_report_mib") is not None:
        if not 0 < args.max_report_mib <= 1024:
            raise SystemExit("agentroster server: --max-report-mib must be more than 0 and at most 1024")
        extra["max_report_bytes"] = int(float(args.max_report_mib) * (1 << 20))
    url = _option(args, "database_url") or os.environ.get("AGENTROSTER_DATABASE_URL")
    if url:
        return Settings(database_url=url, **extra)
    data_dir = _option(args, "data_dir")  # else $AGENTROSTER_SERVER_DATA_DIR or the default
    return Settings.for_data_dir(Path(data_dir) if data_dir else None, **extra)


def _database(args: argparse.Namespace) -> Any:
    """The store, migrated to the newest schema (a new data dir works from the first command)."""
    from console.server.db import Database, migrate

    url = _settings(args).database_url
    _say_store(url)
    db = Database(url, pool_size=1)
    migrate(db)
    return db


def store_name(database_url: str) -> str:
    """Which store a database URL names, for a person: the SQLite file, or the URL without its password."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"{url.database} (SQLite)"
    return url.render_as_string(hide_password=True)


def _say_store(database_url: str) -> None:
    # An admin command run without the server's --data-dir would silently use another database: say which.
    print(f"agentroster server: store: {store_name(database_url)}", file=sys.stderr)


# -- run ------------------------------------------------------------------------------------------------


def run_server(args: argparse.Namespace) -> int:
    import uvicorn

    from console.server.db import Database, migrate

    settings = _settings(args)
    cert, key = _option(args, "tls_cert"), _option(args, "tls_key")
    if bool(cert) != bool(key):
        print("agentroster server: --tls-cert and --tls-key go together", file=sys.stderr)
        return 2
    host = _option(args, "host", DEFAULT_HOST)
    if not cert and not is_loopback_host(host):
        if not _option(args, "insecure_http", False):
            # before the store is touched or the port bound: nothing is served in clear by accident
            print(f"agentroster server: refusing to serve plain HTTP on {host}, which is not a loopback address: "
                  "tokens, device keys and the enroll secret would cross the network in clear. Give --tls-cert "
                  "and --tls-key, listen on 127.0.0.1 behind a TLS proxy, or add --insecure-http.", file=sys.stderr)
            return 2
        print(f"agentroster server: warning: serving plain HTTP on {host} (--insecure-http)", file=sys.stderr)
    workers = _option(args, "workers", 1)
    _say_store(settings.database_url)
    db = Database(settings.database_url, pool_size=1)
    migrate(db)  # once here, not in every worker
    db.dispose()
    os.environ.update(settings.to_env())
    uvicorn.run("console.server.app:create_app_from_env", factory=True, host=host,
                port=_option(args, "port", DEFAULT_PORT), workers=workers, ssl_certfile=cert, ssl_keyfile=key,
                proxy_headers=bool(_option(args, "proxy_headers", False)),
                forwarded_allow_ips=_option(args, "forwarded_allow_ips", "127.0.0.1"),
                access_log=bool(_option(args, "access_log", False)), server_header=False)
    return 0


# -- tokens, secret, devices ----------------------------------------------------------------------------


def token_create(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.write_session() as session:
        row, token = auth.create_api_token(session, args.role, args.name)
    print(f"created {row.role} token {row.id}; it is shown only now:", file=sys.stderr)
    print(token)
    return 0


def token_list(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.session() as session:
        rows = auth.list_api_tokens(session)
        print(f"{'ID':18} {'ROLE':7} {'CREATED':20} {'STATE':8} NAME")
        for row in rows:
            state = "revoked" if row.revoked_at else "active"
            print(f"{row.id:18} {row.role:7} {_when(row.created_at):20} {state:8} {row.name}")
    return 0


def token_revoke(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.write_session() as session:
        if not auth.revoke_api_token(session, args.id):
            print(f"agentroster server: no active token {args.id}", file=sys.stderr)
            return 1
    print(f"revoked token {args.id}")
    return 0


def secret_rotate(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.write_session() as session:
        value = auth.rotate_enroll_secret(session)
    print("new enroll secret (the previous one no longer works); it is shown only now:", file=sys.stderr)
    print(value)
    return 0


def device_list(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.session() as session:
        rows = auth.list_devices(session)
        print(f"{'ID':18} {'HOSTNAME':24} {'OS':8} {'LAST SEEN':20} {'STATE':8} HOST IDENTIFIER")
        for row in rows:
            state = "revoked" if row.revoked_at else "enrolled"
            print(f"{row.id:18} {row.hostname[:24]:24} {row.os:8} {_when(row.last_seen):20} {state:8} "
                  f"{row.host_identifier}")
    return 0


def device_revoke(args: argparse.Namespace) -> int:
    from console.server import auth

    db = _database(args)
    with db.write_session() as session:
        if not auth.revoke_device(session, args.id):
            print(f"agentroster server: no enrolled device {args.id}", file=sys.stderr)
            return 1
    print(f"revoked device {args.id}")
    return 0


def _when(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
