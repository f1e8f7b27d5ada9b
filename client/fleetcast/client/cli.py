"""Command line of ``fleetcast-client``: parse, build the pieces, run.

``fleetcast-client [listen] --url … --token … --room …`` listens;
``fleetcast-client token --sub … --org … --role …`` prints a dev token.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from collections.abc import Callable, Sequence
from typing import TextIO

from fleetcast.client import output, session, summary, tokens
from fleetcast.client.settings import ClientSettings

EXIT_USAGE = 2


def _grant_arguments(parser: argparse.ArgumentParser, *, org_required: bool) -> None:
    group = parser.add_argument_group("token claims (dev tokens only)")
    group.add_argument("--sub", default="fleetcast-cli", help="user id (sub claim)")
    group.add_argument("--org", required=org_required, help="organization id (org_id claim)")
    group.add_argument(
        "--role", dest="roles", action="append", help="role, repeatable (default: dispatcher)"
    )
    group.add_argument("--channel", dest="channels", action="append", default=[])
    group.add_argument("--asset", dest="assets", action="append", default=[])
    group.add_argument("--ttl", type=float, default=tokens.DEFAULT_TTL_S, help="seconds")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetcast-client",
        description="Listen to a fleetcast gateway over its public Socket.IO protocol.",
        epilog="`fleetcast-client token --help` mints a dev token (testing only).",
    )
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="gateway base URL")
    parser.add_argument("--path", default="/ws", help="Socket.IO path on the gateway")
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--token", help="a JWT from the API service (or `fleetcast-client token`)")
    who.add_argument(
        "--mint", action="store_true", help="mint dev tokens with FLEETCAST_JWT_SECRET (local use)"
    )
    parser.add_argument(
        "--room",
        dest="rooms",
        action="append",
        default=[],
        help="room to subscribe, e.g. channel:ch-3, incident:inc-9, fleet (repeatable)",
    )
    parser.add_argument("--since", help="history offset to resume the --room(s) from")
    parser.add_argument(
        "--state",
        action="store_true",
        help="ask for the org's state at connect (open incidents, active alerts, your tasks)",
    )
    parser.add_argument(
        "--ack",
        metavar="RESPONSE",
        help="acknowledge every alert with this response, e.g. 'en route' "
        "(alerts are always answered delivered and displayed)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--max-events", type=int, help="stop after this many events")
    parser.add_argument("--json", action="store_true", help="one event per line on stdout")
    parser.add_argument("--quiet", action="store_true", help="print only the summary")
    parser.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    parser.add_argument("--transport", choices=("websocket", "polling"), help="force one transport")
    _grant_arguments(parser, org_required=False)
    return parser


def build_token_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="fleetcast-client token",
        description="Print a DEV token signed with FLEETCAST_JWT_SECRET. For testing only.",
    )
    _grant_arguments(parser, org_required=True)
    return parser


def minter(args: argparse.Namespace, settings: ClientSettings) -> Callable[[], str]:
    """A function returning a fresh dev token each call; exits if it cannot."""
    if settings.jwt_secret is None:
        raise SystemExit("fleetcast-client: set FLEETCAST_JWT_SECRET to mint a dev token")
    if not args.org:
        raise SystemExit("fleetcast-client: --mint needs --org")
    grant = tokens.Grant(
        args.sub, args.org, args.roles or ["dispatcher"], args.channels, args.assets
    )
    secret = settings.jwt_secret.get_secret_value()

    def mint() -> str:
        body = tokens.claims(
            grant,
            now=time.time(),
            ttl_s=args.ttl,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
        return tokens.sign(body, secret)

    return mint


def token_command(argv: Sequence[str], settings: ClientSettings, out: TextIO, err: TextIO) -> int:
    args = build_token_parser().parse_args(argv)
    token = minter(args, settings)()
    err.write(tokens.WARNING + "\n")
    out.write(token + "\n")
    return 0


def listen_command(argv: Sequence[str], settings: ClientSettings, out: TextIO, err: TextIO) -> int:
    args = build_parser().parse_args(argv)
    if args.since and not args.rooms:
        raise SystemExit("fleetcast-client: --since needs at least one --room")
    if args.mint:
        token_source = minter(args, settings)
        err.write(tokens.WARNING + "\n")
    else:
        token_source = lambda: args.token  # noqa: E731
    options = session.Options(
        url=args.url,
        token=token_source,
        path=args.path,
        rooms=tuple(args.rooms),
        since=args.since,
        state=args.state,
        duration_s=args.duration,
        max_events=args.max_events,
        transports=(args.transport,) if args.transport else None,
        refresh_margin_s=min(60.0, args.ttl / 5) if args.mint else None,
        expiry=tokens.expiry,
        ack=args.ack,
    )
    color = args.color == "always" or (args.color == "auto" and out.isatty())
    printer = output.Printer(out, err, json_mode=args.json, color=color, quiet=args.quiet)
    return asyncio.run(_listen(options, printer))


async def _listen(options: session.Options, printer: output.Printer) -> int:
    stats = summary.Summary(started_at=time.time())
    listener = session.Listener(options, printer, stats)
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, listener.stop)
    try:
        code = await listener.run()
    finally:
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(Exception):
                loop.remove_signal_handler(signum)
    printer.summary(stats.report(time.time()))
    return code


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    settings = ClientSettings()
    if argv[:1] == ["token"]:
        return token_command(argv[1:], settings, sys.stdout, sys.stderr)
    if argv[:1] == ["listen"]:
        argv = argv[1:]
    return listen_command(argv, settings, sys.stdout, sys.stderr)
