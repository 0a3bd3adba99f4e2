"""`botfleet tokens [list]`, `tokens create NAME --role ROLE [--expires 30d]`,
`tokens revoke ID|NAME` (the admin's calls)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from datetime import datetime
from typing import get_args

from rich.table import Table

from botfleet.cli.argtypes import duration
from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_OK, CliError, UsageError
from botfleet.cli.render import ago
from botfleet.protocol import messages as m

ROLES: tuple[str, ...] = get_args(m.Role)
_ROLE_HELP = (
    "admin: everything; operator: read everything, cancel and retry jobs, command bots; "
    "producer: submit jobs and act on its own; reader: read jobs, bots and stats; "
    "enroll: register bots"
)


def add_token_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    tokens = subparsers.add_parser(
        "tokens",
        parents=parents,
        help="create, list and revoke role tokens (admin)",
        description="With no action: list the tokens. `create NAME --role ROLE` prints the "
        "new token's secret once; `revoke ID|NAME` stops it at once.",
    )
    tokens.add_argument(
        "action", nargs="?", choices=("list", "create", "revoke"), default="list", metavar="ACTION"
    )
    tokens.add_argument("target", nargs="?", metavar="NAME|ID")
    tokens.add_argument("--role", choices=ROLES, metavar="ROLE", help=_ROLE_HELP)
    tokens.add_argument(
        "--expires",
        type=duration,
        metavar="DURATION",
        help="the token stops working after this long, e.g. 12h or 30d (default: never)",
    )
    tokens.set_defaults(handler=tokens_command)


async def tokens_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action == "create":
        return await _create(args, ctx)
    if args.action == "revoke":
        return await _revoke(args, ctx)
    if args.target or args.role or args.expires:
        raise UsageError("tokens list takes no name, --role or --expires")
    tokens = await ctx.client.tokens()
    if ctx.output.as_json:
        ctx.output.json(m.TokenList(tokens=tokens))
    elif not tokens:
        ctx.output.note("no tokens; create one with `botfleet tokens create NAME --role ROLE`")
    else:
        ctx.output.show(tokens_table(tokens, ctx.clock.now()))
    return EXIT_OK


async def _create(args: argparse.Namespace, ctx: Context) -> int:
    if not args.target:
        raise UsageError("tokens create: give the new token's NAME")
    if not args.role:
        raise UsageError(f"tokens create: give its --role ({', '.join(ROLES)})")
    expires_in_s = None if args.expires is None else max(1, round(args.expires))
    created = await ctx.client.create_token(args.target, args.role, expires_in_s=expires_in_s)
    if ctx.output.as_json:
        ctx.output.json(created)
        return EXIT_OK
    # The secret alone on stdout (so `$(botfleet tokens create …)` captures it); the
    # rest, for the person, on stderr.
    ctx.output.out.file.write(created.token + "\n")
    ctx.output.out.file.flush()
    until = f", expires {created.expires_at}" if created.expires_at else ""
    ctx.output.note(
        f"token {created.name} ({created.id}, role {created.role}{until}) created; "
        "its secret is above and is not shown again"
    )
    return EXIT_OK


async def _revoke(args: argparse.Namespace, ctx: Context) -> int:
    if not args.target:
        raise UsageError("tokens revoke: give the token's ID or NAME (see `botfleet tokens`)")
    tokens = await ctx.client.tokens()
    # Ids and live names are each unique; an id is taken first, should a name look like one.
    by_id = [token for token in tokens if token.id == args.target]
    matches = by_id or [token for token in tokens if token.name == args.target]
    if not matches:
        raise CliError(f"no token {args.target!r} (see `botfleet tokens`)")
    revoked = await ctx.client.revoke_token(matches[0].id)
    if ctx.output.as_json:
        ctx.output.json(revoked)
    else:
        ctx.output.show(f"token {revoked.name} ({revoked.id}, role {revoked.role}) revoked")
    return EXIT_OK


def tokens_table(tokens: Sequence[m.TokenView], now: datetime) -> Table:
    table = Table(title=f"{len(tokens)} token{'s' if len(tokens) != 1 else ''}")
    for column in ("ID", "NAME", "ROLE", "CREATED", "EXPIRES", "LAST USED"):
        table.add_column(column, no_wrap=column in ("ID", "NAME"))
    for token in tokens:
        table.add_row(
            token.id,
            token.name,
            token.role,
            ago(token.created_at, now),
            ago(token.expires_at, now) if token.expires_at else "never",
            ago(token.last_used_at, now),
        )
    return table
