"""Answering a TAB without Typer, Rich, httpx or any provider: < 100 ms per completion.

The shell scripts in `completions/` call `recfetch` with `_RECFETCH_COMPLETE=complete_<shell>`
(the documented protocol, as Typer prints it for `_RECFETCH_COMPLETE=source_<shell>`). Building
the whole app for every TAB would import every provider and their HTTP stack, so the command
tree is kept as data instead: `completion_spec.json`, generated from the app with the scripts
(`recfetch completions --output-dir completions`) and checked for staleness by a test. This
module walks that tree the way Click's completion does and prints the answer in the format
of Typer's completion classes; only profile names are read live (from the config file).
"""

from __future__ import annotations

import json
import os
import re
import shlex
import sys
from importlib import resources
from typing import Any

SPEC_FILE = "completion_spec.json"
_WHITESPACE = re.compile(r"\s")
Item = tuple[str, str]
"""(value, help)"""


def load_spec() -> dict[str, Any]:
    text = resources.files("recfetch.cli").joinpath(SPEC_FILE).read_text("utf-8")
    spec: dict[str, Any] = json.loads(text)
    return spec


def _split(line: str) -> list[str]:
    lexer = shlex.shlex(line, posix=True)
    lexer.whitespace_split = True
    lexer.commenters = ""
    out: list[str] = []
    try:
        out.extend(lexer)
    except ValueError:  # an unclosed quote: complete what is there
        out.append(lexer.token)
    return out


def _args(shell: str) -> tuple[list[str], str]:
    if shell == "bash":
        words = _split(os.environ.get("COMP_WORDS", ""))
        cword = int(os.environ.get("COMP_CWORD", "0"))
        return words[1:cword], (words[cword] if cword < len(words) else "")
    line = os.environ.get("_TYPER_COMPLETE_ARGS", "")
    words = _split(line)[1:]
    if words and not line.endswith(" "):
        return words[:-1], words[-1]
    return words, ""


def _option(node: dict[str, Any], name: str) -> dict[str, Any] | None:
    return next((o for o in node["options"] if name in o["names"]), None)


def _walk(spec: dict[str, Any], args: list[str]) -> tuple[dict[str, Any], list[str], int, bool]:
    """The command the line is in, the options used there, positional count, `--` seen."""
    node, used, positional, dashdash = spec, [], 0, False
    index = 0
    while index < len(args):
        arg = args[index]
        index += 1
        if arg == "--":
            dashdash = True
            continue
        if not dashdash and arg.startswith("-") and len(arg) > 1:
            option = _option(node, arg.split("=", 1)[0])
            if option is not None:
                used.append(option["names"][0])
                if option["value"] and "=" not in arg:
                    index += 1
            continue
        if arg in node["commands"] and not positional:
            node, used, positional = node["commands"][arg]["node"], [], 0
            continue
        positional += 1
    return node, used, positional, dashdash


def _given_config(args: list[str]) -> str | None:
    for index, arg in enumerate(args):
        if arg.startswith("--config="):
            return arg.partition("=")[2]
        if arg == "--config" and index + 1 < len(args):
            return args[index + 1]
    return None


def _values(kind: dict[str, Any], incomplete: str, args: list[str]) -> list[Item]:
    if kind.get("choices"):
        return [(c, "") for c in kind["choices"] if c.startswith(incomplete)]
    if kind.get("complete") == "profiles":
        from recfetch.cli._complete import config_file, profiles_in

        return [(p, "") for p in profiles_in(config_file(_given_config(args)), incomplete)]
    if kind.get("complete") == "config_keys":
        return [(k, "") for k in kind.get("keys", []) if k.startswith(incomplete)]
    return []


def completions(spec: dict[str, Any], args: list[str], incomplete: str) -> list[Item]:
    """What Click would offer for ``incomplete`` after ``args`` (the shell's words)."""
    if incomplete == "=":
        incomplete = ""
    elif incomplete.startswith("-") and "=" in incomplete:
        name, _, incomplete = incomplete.partition("=")
        args = [*args, name]
    node, used, positional, dashdash = _walk(spec, args)
    if args and args[-1].startswith("-") and not dashdash:
        option = _option(node, args[-1])
        if option is not None and option["value"]:
            return _values(option, incomplete, args)
    if incomplete.startswith("-") and not dashdash:
        items = [
            (cmd, entry["help"])
            for cmd, entry in node["commands"].items()
            if cmd.startswith(incomplete) and not entry["hidden"]
        ]
        for option in node["options"]:
            if option["names"][0] in used and not option["multiple"]:
                continue
            items += [(n, option["help"]) for n in option["names"] if n.startswith(incomplete)]
        return items
    if node["commands"]:
        return [
            (cmd, entry["help"])
            for cmd, entry in node["commands"].items()
            if cmd.startswith(incomplete) and (not entry["hidden"] or entry.get("complete"))
        ]
    arguments = node["arguments"]
    if arguments:
        argument = arguments[min(positional, len(arguments) - 1)]
        if positional < len(arguments) or argument["many"]:
            return _values(argument, incomplete, args)
    return []


_ZSH_ESCAPES = (('"', '""'), ("'", "''"), ("$", "\\$"), ("`", "\\`"), (":", r"\\:"))


def _zsh_escape(text: str) -> str:
    for old, new in _ZSH_ESCAPES:
        text = text.replace(old, new)
    return text


def answer(shell: str) -> int:
    """Print the completions for the current line in ``shell``'s format; the exit status."""
    args, incomplete = _args(shell)
    items = completions(load_spec(), args, incomplete)
    if shell == "bash":
        sys.stdout.write("\n".join(value for value, _ in items))
    elif shell == "zsh":
        lines = [f'"{_zsh_escape(v)}":"{_zsh_escape(h)}"' if h else f'"{_zsh_escape(v)}"' for v, h in items]
        sys.stdout.write("_arguments '*: :((" + "\n".join(lines) + "))'" if lines else "_files")
    elif shell == "fish":
        action = os.environ.get("_TYPER_COMPLETE_FISH_ACTION", "")
        if action == "is-args":
            return 0 if items else 1
        sys.stdout.write("\n".join(f"{v}\t{_WHITESPACE.sub(' ', h)}" if h else v for v, h in items))
    else:
        sys.stderr.write(f"recfetch: completion for {shell!r} is not supported\n")
        return 1
    sys.stdout.flush()
    return 0
