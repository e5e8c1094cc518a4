"""Commands outside the providers: config, providers, sandbox, demo, verify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from recfetch import config
from recfetch.cli import _complete
from recfetch.cli._fastcomplete import SPEC_FILE
from recfetch.cli._fasthelp import write_help_texts
from recfetch.cli._runtime import check_base_url, reported, runtime
from recfetch.errors import UsageError
from recfetch.providers import REGISTRY, get_provider
from recfetch.redact import mask

config_app = typer.Typer(
    name="config", help="Show and edit the configuration file.", no_args_is_help=True, rich_markup_mode=None
)


EXAMPLES = {
    "providers": "\b\nExamples:\n  recfetch providers\n  recfetch -p sandbox providers --json",
    "show": "\b\nExamples:\n  recfetch config show\n  recfetch -p work config show kazoo --json",
    "set": "\b\nExamples:\n  recfetch config set kazoo.base_url https://kazoo.example.com:8000\n"
    "  recfetch -p work config set bird.access_key_cmd 'pass show bird'",
    "unset": "\b\nExamples:\n  recfetch config unset kazoo.base_url",
}


@config_app.command(
    "path", epilog="\b\nExamples:\n  recfetch config path\n  recfetch --config ./work.toml config path"
)
@reported
def config_path(ctx: typer.Context) -> None:
    """Print the path of the config file in use."""
    rt = runtime(ctx)
    rt.ui.line(str(rt.config_path))


@config_app.command("show", epilog=EXAMPLES["show"])
@reported
def config_show(
    ctx: typer.Context,
    provider: Annotated[str | None, typer.Argument(help="Only this provider.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Print every setting of the active profile with its source; secrets are masked."""

    rt = runtime(ctx)
    data = rt.data()
    profile, profile_source = config.active_profile(rt.profile_cli, data)
    rt.check_profile()
    names = [_provider_name(provider)] if provider else list(REGISTRY)
    doc: dict[str, object] = {
        "config": str(rt.config_path),
        "state_dir": str(config.state_dir()),
        "profile": profile,
        "profile_source": profile_source,
        "providers": {},
    }
    lines = [
        f"config: {rt.config_path}",
        f"state: {config.state_dir()}",
        f"profile: {profile} ({profile_source})",
    ]
    for name in names:
        cls = get_provider(name)
        resolved = rt.settings(cls)
        secrets = cls.secret_keys()
        entries = {}
        lines.append(f"[{name}]")
        for key, item in resolved.items():
            secret = key in secrets
            if item.source.startswith("cmd:"):
                shown, source = f"<from {key}_cmd>", "cmd"
            elif item.value is None:
                shown, source = None, "unset"
            else:
                shown = mask(item.value) if secret else item.value
                source = item.source
            entries[key] = {"value": shown, "source": source, "secret": secret}
            lines.append(f"  {key} = {shown if shown is not None else '(not set)'}  [{source}]")
        doc["providers"][name] = entries  # type: ignore[index]
    if provider is None:
        # The object store's own settings (-o s3://...): environment over [profiles.P.destination].
        doc["destination"] = _destination(data, profile, lines)
    if as_json:
        rt.ui.line(json.dumps(doc, indent=2))
    else:
        for line in lines:
            rt.ui.line(line)


def _destination(data: dict[str, Any], profile: str, lines: list[str]) -> dict[str, object]:
    from recfetch.destinations.settings import SECRETS, describe

    entries: dict[str, object] = {}
    lines.append("[destination]")
    for key, item in describe(data, profile).items():
        if item.source == "unset":
            continue
        secret = key in SECRETS
        if item.value is None:  # describe() leaves a `_cmd` key's value unread (unset ones are skipped)
            shown, source = f"<from {key}_cmd>", "cmd"
        else:
            shown, source = (mask(item.value) if secret else item.value), item.source
        entries[key] = {"value": shown, "source": source, "secret": secret}
        lines.append(f"  {key} = {shown}  [{source}]")
    return entries


def _provider_name(name: str) -> str:
    try:
        return get_provider(name).name
    except KeyError:
        raise UsageError(f"unknown provider {name!r}", hint="one of: " + ", ".join(REGISTRY)) from None


def _check_key(provider: str, key: str) -> None:
    cls = get_provider(provider)
    known = {s.key for s in cls.settings} | {"base_url"}
    secrets = cls.secret_keys()
    base = key.removesuffix("_cmd")
    if base not in known or (key.endswith("_cmd") and base not in secrets):
        raise UsageError(
            f"{provider} has no setting {key!r}",
            hint="known: " + ", ".join(sorted(known | {k + "_cmd" for k in secrets})),
        )


@config_app.command("set", epilog=EXAMPLES["set"])
@reported
def config_set(
    ctx: typer.Context,
    key: Annotated[
        str, typer.Argument(help="PROVIDER.KEY, e.g. kazoo.base_url", autocompletion=_complete.config_keys)
    ],
    value: Annotated[str, typer.Argument(help="The value (use `login` for secrets: it hides input).")],
) -> None:
    """Set one setting in the active profile (comments and layout of the file are kept)."""

    rt = runtime(ctx)
    rt.writes_config = True
    provider, name = config.split_dotted(key)
    provider = _provider_name(provider)
    _check_key(provider, name)
    if name in get_provider(provider).secret_keys():
        rt.ui.warn(
            f"warning: a secret on the command line stays in your shell history; "
            f"`recfetch {provider} login` asks for it with hidden input"
        )
    if name == "base_url":
        check_base_url(provider, value)
    config.set_value(rt.config_path, rt.profile, provider, name, value)
    rt.ui.info(f"set {provider}.{name} in profile {rt.profile!r} ({rt.config_path})")


@config_app.command("unset", epilog=EXAMPLES["unset"])
@reported
def config_unset(
    ctx: typer.Context,
    key: Annotated[
        str, typer.Argument(help="PROVIDER.KEY, e.g. kazoo.api_key", autocompletion=_complete.config_keys)
    ],
) -> None:
    """Remove one setting from the active profile (comments and layout of the file are kept)."""

    rt = runtime(ctx)
    provider, name = config.split_dotted(key)
    provider = _provider_name(provider)
    _check_key(provider, name)
    if name not in config.profile_table(rt.data(), rt.profile, provider):
        rt.ui.info(f"{provider}.{name} is not set in profile {rt.profile!r}; nothing to do")
        return
    config.set_value(rt.config_path, rt.profile, provider, name, None)
    rt.ui.info(f"unset {provider}.{name} in profile {rt.profile!r}")


@reported
def providers_cmd(
    ctx: typer.Context,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List the providers, their verbs and whether the active profile configures them."""

    rt = runtime(ctx)
    items: list[dict[str, Any]] = []  # the --json document's rows
    for name, cls in REGISTRY.items():
        values = {
            k: v.value or ("cmd" if v.source.startswith("cmd:") else None)
            for k, v in rt.settings(cls).items()
        }
        configured = all(values.get(s.key) for s in cls.settings if s.required)
        try:
            cls.check_settings({k: v for k, v in values.items() if v})
        except Exception:
            configured = False
        verbs = _verbs(name)
        items.append({"provider": name, "title": cls.title, "verbs": verbs, "configured": configured})
    if as_json:
        rt.ui.line(json.dumps({"profile": rt.profile, "items": items}, indent=2))
        return
    # The common verbs once (on stderr), each row its own: a row of every verb wraps at 80 columns.
    rt.ui.note(f"profile '{rt.profile}'; every provider has: {' '.join(COMMON_VERBS)}")
    for item in items:
        mark = "configured" if item["configured"] else "not configured"
        extra = [verb for verb in item["verbs"] if verb not in COMMON_VERBS]
        rt.ui.line(f"{item['provider']:<12} {mark:<15} {' '.join(extra)}".rstrip())


COMMON_VERBS = ("login", "list", "show", "url", "download", "pull")


def _verbs(provider: str) -> list[str]:
    """The verbs the provider's sub-app really has (the generated app is the truth), common ones first."""
    from recfetch.cli._app import app

    root = typer.main.get_command(app)
    assert isinstance(root, TyperGroup)
    group = root.get_command(typer.Context(root), provider)
    assert isinstance(group, TyperGroup)  # a provider is a group of verbs
    ctx = typer.Context(group)
    commands = [
        name
        for name in group.list_commands(ctx)
        if (command := group.get_command(ctx, name)) is not None and not command.hidden
    ]
    return [v for v in COMMON_VERBS if v in commands] + [v for v in commands if v not in COMMON_VERBS]


# ---------------------------------------------------------------------------
# shell completions


COMPLETION_FILES = {"bash": "recfetch.bash", "zsh": "_recfetch", "fish": "recfetch.fish"}
_GENERATED = "Generated by `recfetch completions --output-dir completions` (_RECFETCH_COMPLETE protocol)."


def completion_script(shell: str) -> str:
    """The completion script for ``shell``, as recfetch prints it for `_RECFETCH_COMPLETE=source_<shell>`.

    That environment variable is the documented completion protocol: the script calls back
    into `recfetch` with `_RECFETCH_COMPLETE=complete_<shell>` on every TAB.
    """
    import os
    import subprocess
    import sys

    env = {**os.environ, "_RECFETCH_COMPLETE": f"source_{shell}"}
    script = subprocess.run(
        [sys.executable, "-c", "from recfetch.cli import main; main()"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip("\n")
    note = f"# {_GENERATED} Do not edit."
    if shell == "zsh":
        # `#compdef` must stay the first line for compinit. When compinit autoloads this file
        # as the function `_recfetch`, the body only defines the real completer and binds it,
        # so the first TAB would offer nothing: call the completer once in that case.
        first, _, rest = script.partition("\n")
        tail = '\n\nif [[ ${funcstack[1]} == _recfetch ]]; then\n  _recfetch_completion "$@"\nfi'
        return f"{first}\n{note}\n{rest.rstrip()}{tail}\n"
    return f"{note}\n{script.rstrip()}\n"


INSTALL_PLACES = {
    "bash": (
        "~/.local/share/bash-completion/completions/recfetch",
        "bash loads it from there through the bash-completion package "
        "(Debian/Ubuntu: `sudo apt install bash-completion`; it needs root because it is a system package); "
        "open a new shell",
    ),
    "zsh": (
        "~/.zfunc/_recfetch",
        "zsh finds it through $fpath: put `fpath=(~/.zfunc $fpath)` and then "
        "`autoload -Uz compinit && compinit` in ~/.zshrc (once), then open a new shell",
    ),
    "fish": ("~/.config/fish/completions/recfetch.fish", "fish loads it by itself in new shells"),
}


def install_completion(shell: str) -> tuple[Path, str]:
    """Write ``shell``'s completion script where that shell looks for it; (path, what else to do)."""
    if shell not in INSTALL_PLACES:
        raise UsageError(f"unknown shell {shell!r}", hint="one of: bash, zsh, fish")
    place, note = INSTALL_PLACES[shell]
    path = Path(place).expanduser()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(completion_script(shell), encoding="utf-8")
    return path, note


def completion_spec() -> dict[str, Any]:
    """The command tree as data for `_fastcomplete` (what a TAB needs, nothing else)."""
    from recfetch.cli._app import app

    return _spec_node(typer.main.get_command(app))


HELP_OPTION = {
    "names": ["-h", "--help"],
    "value": False,
    "multiple": False,
    "help": "Show this message and exit.",
}


def _spec_node(command: Any) -> dict[str, Any]:
    options: list[dict[str, Any]] = []
    arguments: list[dict[str, Any]] = []
    for param in command.params:
        kind = _spec_kind(command, param)
        if getattr(param, "param_type_name", "") == "argument":
            arguments.append({**kind, "many": param.nargs == -1})
        elif not getattr(param, "hidden", False):
            options.append(
                {
                    "names": [*param.opts, *param.secondary_opts],
                    "value": not (param.is_flag or param.count),
                    "multiple": bool(param.multiple or param.count),
                    "help": param.help or "",
                    **kind,
                }
            )
    options.append(HELP_OPTION)
    ctx = typer.Context(command)
    names = command.list_commands(ctx) if hasattr(command, "list_commands") else []
    subs = {name: command.get_command(ctx, name) for name in names}  # a provider is built when asked for
    commands = {
        name: {
            "help": sub.get_short_help_str(limit=45),
            "hidden": bool(sub.hidden),
            "complete": name == "cloudflare",  # the alias completes though help hides it (SPEC §8)
            "node": _spec_node(sub),
        }
        for name, sub in subs.items()
    }
    return {"options": options, "arguments": arguments, "commands": commands}


def _spec_kind(command: Any, param: Any) -> dict[str, Any]:
    """Fixed values a parameter completes to (choices, config keys), asked of Click itself."""
    if param.name == "profile":
        return {"complete": "profiles"}  # read from the config file at TAB time
    items = param.shell_complete(typer.Context(command), "")
    values = [item.value for item in items if item.value and getattr(item, "type", "plain") == "plain"]
    return {"choices": values} if values else {}


def write_completion_spec() -> Path:
    """Regenerate the packaged spec (with the scripts, by `completions --output-dir`)."""
    path = Path(__file__).with_name(SPEC_FILE)
    text = json.dumps(completion_spec(), separators=(",", ":"), sort_keys=True)
    path.write_text(text + "\n", encoding="utf-8")
    return path


@reported
def completions_cmd(
    ctx: typer.Context,
    shell: Annotated[str | None, typer.Argument(help="bash, zsh or fish (omit with --output-dir).")] = None,
    output_dir: Annotated[
        Path | None,
        typer.Option("--output-dir", "-o", help="Write recfetch.bash, _recfetch and recfetch.fish here."),
    ] = None,
) -> None:
    """Print a shell completion script, or write all three into a directory."""

    rt = runtime(ctx)
    if output_dir is None:
        if shell not in COMPLETION_FILES:
            raise UsageError(
                f"unknown shell {shell!r}" if shell else "name a shell",
                hint="one of: bash, zsh, fish (or --output-dir DIR for all three)",
            )
        rt.ui.stdout.write(completion_script(shell))
        rt.ui.stdout.flush()
        return
    if shell is not None:
        raise UsageError("give either a shell or --output-dir, not both")
    output_dir.mkdir(parents=True, exist_ok=True)
    for name, filename in COMPLETION_FILES.items():
        (output_dir / filename).write_text(completion_script(name), encoding="utf-8")
        rt.ui.line(str(output_dir / filename))
    # The packaged TAB spec and help texts live beside this module; they are regenerated only with
    # the checkout's own completions/ (the maintainers' command), never from an installed copy or
    # a test's folder.
    if output_dir.resolve() == Path(__file__).resolve().parents[2] / "completions":
        rt.ui.line(str(write_completion_spec()))
        rt.ui.line(str(write_help_texts()))


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("providers", epilog=EXAMPLES["providers"])(providers_cmd)
    app.command("completions", hidden=True)(completions_cmd)
