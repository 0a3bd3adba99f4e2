"""`botfleet bots`, `botfleet bots pause|resume|drain|quarantine|release ID`, and an
operator's hold on a bot: `botfleet bots revoke|allow|forget ID`."""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from botfleet.cli.context import Context
from botfleet.cli.errors import EXIT_OK, UsageError
from botfleet.cli.render import assignment_text, bots_table, stats_view
from botfleet.protocol import messages as m

# Each action is one PATCH /v1/bots/{id} body; pause and resume change the assignment,
# the others send a command the bot receives with its next heartbeat.
BOT_ACTIONS: dict[str, m.PatchBotRequest] = {
    "pause": m.PatchBotRequest(assignment=m.AssignmentPatch(paused=True)),
    "resume": m.PatchBotRequest(assignment=m.AssignmentPatch(paused=False)),
    "drain": m.PatchBotRequest(command="drain"),
    "quarantine": m.PatchBotRequest(command="quarantine"),
    "release": m.PatchBotRequest(command="release"),
}
_ACTION_HELP = {
    "pause": "stop handing it new jobs (running ones finish)",
    "resume": "hand it jobs again",
    "drain": "let it finish its jobs, then stop",
    "quarantine": "take it out of service",
    "release": "bring a quarantined bot back",
    "revoke": "cut it off at once (its token dies, its jobs go back, it cannot register)",
    "allow": "let a revoked bot register again",
    "forget": "remove an offline bot from the list (its jobs keep its id)",
}
HOLD_ACTIONS = ("revoke", "allow", "forget")


def add_bot_commands(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
    parents: Sequence[argparse.ArgumentParser],
) -> None:
    bots = subparsers.add_parser(
        "bots",
        parents=parents,
        help="list bots, or act on one",
        description="With no action: list the bots. With an action and a bot id: "
        + "; ".join(f"{name}: {text}" for name, text in _ACTION_HELP.items())
        + ".",
    )
    bots.add_argument(
        "action", nargs="?", choices=sorted([*BOT_ACTIONS, *HOLD_ACTIONS]), metavar="ACTION"
    )
    bots.add_argument("bot_id", nargs="?", metavar="ID")
    bots.set_defaults(handler=bots_command)
    stats = subparsers.add_parser("stats", parents=parents, help="job and bot counts, throughput")
    stats.set_defaults(handler=stats_command)


async def bots_command(args: argparse.Namespace, ctx: Context) -> int:
    if args.action:
        if not args.bot_id:
            raise UsageError(f"bots {args.action}: which bot? give its ID (see `botfleet bots`)")
        if args.action in HOLD_ACTIONS:
            return await _hold(ctx, args.action, args.bot_id)
        return await _act(ctx, args.action, args.bot_id)
    bots = await ctx.client.bots()
    if ctx.output.as_json:
        ctx.output.json(m.BotList(bots=bots))
    elif not bots:
        ctx.output.note("no bots have registered yet; start one with `botfleet bot`")
    else:
        ctx.output.show(bots_table(bots, ctx.clock.now()))
    return EXIT_OK


async def _act(ctx: Context, action: str, bot_id: str) -> int:
    bot = await ctx.client.update_bot(bot_id, BOT_ACTIONS[action])
    if ctx.output.as_json:
        ctx.output.json(bot)
        return EXIT_OK
    if bot.pending_command:
        detail = f"command {bot.pending_command} is sent with its next heartbeat"
    else:
        detail = f"assignment {assignment_text(bot.assignment)}"
    ctx.output.show(f"{bot.id} ({bot.name}): {action} — {detail}")
    return EXIT_OK


async def _hold(ctx: Context, action: str, bot_id: str) -> int:
    client = ctx.client
    if action == "forget":
        await client.forget_bot(bot_id)
        if ctx.output.as_json:
            ctx.output.json(m.ReportAccepted())
        else:
            ctx.output.show(f"{bot_id}: forgotten (its jobs keep its id)")
        return EXIT_OK
    bot = await (client.revoke_bot(bot_id) if action == "revoke" else client.allow_bot(bot_id))
    if ctx.output.as_json:
        ctx.output.json(bot)
    elif bot.revoked_at is not None:
        ctx.output.show(
            f"{bot.id} ({bot.name}): revoked — its token no longer works and its jobs are "
            f"queued again; `botfleet bots allow {bot.id}` lets it register again"
        )
    else:
        ctx.output.show(f"{bot.id} ({bot.name}): allowed — it may register again")
    return EXIT_OK


async def stats_command(args: argparse.Namespace, ctx: Context) -> int:
    stats = await ctx.client.stats()
    if ctx.output.as_json:
        ctx.output.json(stats)
    else:
        ctx.output.show(stats_view(stats))
    return EXIT_OK
