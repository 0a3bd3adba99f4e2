"""The command line's reference: every `botfleet` command and its flags, read from the
argparse parsers the command line itself runs."""

from __future__ import annotations

import argparse
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from botfleet.cli.main import DELEGATED_PARSERS, PROG, build_parser
from botfleet.reference.markdown import code, table

_USAGE_WIDTH = 96
COMMON_HEADING = "Options of the operator commands"


@dataclass(frozen=True, slots=True)
class Command:
    """One command of the tree: `botfleet`, `botfleet jobs`, `botfleet bots …`."""

    name: str
    summary: str  # the line its parent's help lists
    parser: argparse.ArgumentParser


def commands(root: argparse.ArgumentParser | None = None) -> list[Command]:
    """Every command, depth first in the order the parsers list them; `server` and `bot`
    with the parsers their packages define (the top parser only names them)."""
    root = build_parser() if root is None else root
    found = [Command(PROG, root.description or "", root)]
    _walk(root, PROG, found)
    return found


def _walk(parser: argparse.ArgumentParser, prefix: str, found: list[Command]) -> None:
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
        seen: set[int] = set()
        for name, sub in action.choices.items():
            if id(sub) in seen:  # an alias of a command already listed
                continue
            seen.add(id(sub))
            if prefix == PROG and name in DELEGATED_PARSERS:
                sub = DELEGATED_PARSERS[name]()
            full = f"{prefix} {name}"
            found.append(Command(full, summaries.get(name, ""), sub))
            _walk(sub, full, found)


def documented_actions(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    """The arguments a reader types: all but --help and the sub-command choosers."""
    return [
        action
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
    ]


def shared_actions(found: Sequence[Command]) -> list[argparse.Action]:
    """Arguments that several commands take from one shared parent parser."""
    counts: Counter[int] = Counter()
    first: dict[int, argparse.Action] = {}
    for command in found:
        for action in documented_actions(command.parser):
            counts[id(action)] += 1
            first.setdefault(id(action), action)
    return [first[key] for key, count in counts.items() if count > 1]


def argument_text(action: argparse.Action) -> str:
    """How the argument is typed: `--server URL`, `-n, --name NAME`, `OP`, `KEY=VALUE …`."""
    metavar = action.metavar if isinstance(action.metavar, str) else None
    if not action.option_strings:
        text = metavar or action.dest
        return f"{text} …" if action.nargs in ("*", "+", argparse.REMAINDER) else text
    names = ", ".join(action.option_strings)
    if action.nargs == 0:
        return names
    value = metavar or action.dest.upper()
    return f"{names} {value} …" if action.nargs in ("*", "+") else f"{names} {value}"


def default_text(action: argparse.Action) -> str:
    """The parser's default where it has a plain one; flags whose default lives in the
    settings show it in their help and on the settings page."""
    if action.nargs == 0 or action.default in (None, argparse.SUPPRESS):
        return ""
    if isinstance(action.default, bool | int | float | str):
        return code(str(action.default))
    if isinstance(action.default, list | tuple) and action.default:
        return code(",".join(map(str, action.default)))
    return ""


def help_text(parser: argparse.ArgumentParser, action: argparse.Action) -> str:
    text = parser._get_formatter()._expand_help(action) if action.help else ""
    if action.choices is not None and not isinstance(action, argparse._SubParsersAction):
        choices = ", ".join(code(str(choice)) for choice in action.choices)
        text = f"{text} (one of {choices})" if text else f"one of {choices}"
    return text


def usage(parser: argparse.ArgumentParser) -> str:
    formatter = argparse.HelpFormatter(prog=parser.prog, width=_USAGE_WIDTH)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups, "")
    return formatter.format_help().strip()


def _rows(parser: argparse.ArgumentParser, actions: Sequence[argparse.Action]) -> list[list[str]]:
    return [
        [code(argument_text(action)), default_text(action), help_text(parser, action)]
        for action in actions
    ]


def _section(command: Command, shared: Sequence[argparse.Action]) -> str:
    parser = command.parser
    parts = [f"## {command.name}", ""]
    about = [_sentence(text) for text in (command.summary, parser.description) if text]
    if about:
        # The summary and the description often say the same; keep both only when not.
        parts += [". ".join(dict.fromkeys(t.rstrip(".") for t in about)) + ".", ""]
    parts += ["```", usage(parser), "```", ""]
    own = [action for action in documented_actions(parser) if action not in shared]
    if own:
        parts += [table(["argument", "default", "what"], _rows(parser, own)), ""]
    if any(action in shared for action in documented_actions(parser)):
        parts += [f"Also the [options of the operator commands](#{_anchor(COMMON_HEADING)}).", ""]
    if parser.epilog:
        parts += [parser.epilog, ""]
    return "\n".join(parts)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:]


def _anchor(heading: str) -> str:
    return heading.lower().replace(" ", "-")


def cli_reference(root: argparse.ArgumentParser | None = None) -> str:
    """The Markdown of every command: a summary table, the shared options, then each
    command's usage and arguments."""
    found = commands(root)
    shared = shared_actions(found)
    listing = table(
        ["command", "what"],
        [[f"[{code(c.name)}](#{_anchor(c.name)})", c.summary] for c in found[1:]],
    )
    parts = [listing, ""]
    if shared:
        takers = [c.name for c in found if set(documented_actions(c.parser)) & set(shared)]
        parts += [
            f"## {COMMON_HEADING}",
            "",
            "Taken by " + ", ".join(code(name) for name in takers) + ".",
            "",
            table(["argument", "default", "what"], _rows(found[0].parser, shared)),
            "",
        ]
    parts += [_section(command, shared) for command in found]
    return "\n".join(parts).rstrip() + "\n"
