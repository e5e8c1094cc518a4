"""Commands outside the providers: config, providers, sandbox, demo, verify."""

from __future__ import annotations

import json
from typing import Annotated

import typer

from recfetch import config
from recfetch.cli._runtime import current, run
from recfetch.errors import UsageError
from recfetch.providers import NAMES, get_provider, registry
from recfetch.redact import mask

config_app = typer.Typer(
    name="config", help="Show and edit the configuration file.", no_args_is_help=True, rich_markup_mode=None
)


@config_app.command("path")
def config_path() -> None:
    """Print the path of the config file in use."""
    run(lambda: current().ui.line(str(current().config_path)))


@config_app.command("show")
def config_show(
    provider: Annotated[str | None, typer.Argument(help="Only this provider.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """Print every setting of the active profile with its source; secrets are masked."""

    def body() -> None:
        rt = current()
        data = rt.data()
        profile, profile_source = config.active_profile(rt.profile_cli, data)
        names = [_provider_name(provider)] if provider else list(registry())
        doc: dict[str, object] = {
            "config": str(rt.config_path),
            "profile": profile,
            "profile_source": profile_source,
            "providers": {},
        }
        lines = [f"config: {rt.config_path}", f"profile: {profile} ({profile_source})"]
        for name in names:
            cls = get_provider(name)
            resolved = rt.settings(cls)
            entries = {}
            lines.append(f"[{name}]")
            for key, item in resolved.items():
                secret = config.is_secret_key(key)
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
        if as_json:
            rt.ui.line(json.dumps(doc, indent=2))
        else:
            for line in lines:
                rt.ui.line(line)

    run(body)


def _provider_name(name: str) -> str:
    try:
        return get_provider(name).name
    except KeyError:
        raise UsageError(f"unknown provider {name!r}", hint="one of: " + ", ".join(NAMES)) from None


def _check_key(provider: str, key: str) -> None:
    cls = get_provider(provider)
    known = {s.key for s in cls.settings} | {"base_url"}
    base = key.removesuffix("_cmd")
    if base not in known or (key.endswith("_cmd") and not config.is_secret_key(base)):
        raise UsageError(
            f"{provider} has no setting {key!r}",
            hint="known: "
            + ", ".join(sorted(known | {k + "_cmd" for k in known if config.is_secret_key(k)})),
        )


@config_app.command("set")
def config_set(
    key: Annotated[str, typer.Argument(help="PROVIDER.KEY, e.g. kazoo.base_url")],
    value: Annotated[str, typer.Argument(help="The value (use `login` for secrets: it hides input).")],
) -> None:
    """Set one setting in the active profile."""

    def body() -> None:
        rt = current()
        provider, name = config.split_dotted(key)
        provider = _provider_name(provider)
        _check_key(provider, name)
        config.set_value(rt.config_path, rt.profile, provider, name, value)
        rt.ui.info(f"set {provider}.{name} in profile {rt.profile!r} ({rt.config_path})")

    run(body)


@config_app.command("unset")
def config_unset(
    key: Annotated[str, typer.Argument(help="PROVIDER.KEY, e.g. kazoo.api_key")],
) -> None:
    """Remove one setting from the active profile."""

    def body() -> None:
        rt = current()
        provider, name = config.split_dotted(key)
        provider = _provider_name(provider)
        _check_key(provider, name)
        config.set_value(rt.config_path, rt.profile, provider, name, None)
        rt.ui.info(f"unset {provider}.{name} in profile {rt.profile!r}")

    run(body)


def providers_cmd(
    as_json: Annotated[bool, typer.Option("--json", help="One JSON document.")] = False,
) -> None:
    """List the providers, their verbs and whether the active profile configures them."""

    def body() -> None:
        rt = current()
        items = []
        for name, cls in registry().items():
            values = {
                k: v.value or ("cmd" if v.source.startswith("cmd:") else None)
                for k, v in rt.settings(cls).items()
            }
            configured = all(values.get(s.key) for s in cls.settings if s.required)
            try:
                cls.check_settings({k: v for k, v in values.items() if v})
            except Exception:
                configured = False
            verbs = ["login", "list", "show", "url", "download", "pull", *cls.extra_verbs]
            items.append({"provider": name, "title": cls.title, "verbs": verbs, "configured": configured})
        if as_json:
            rt.ui.line(json.dumps({"profile": rt.profile, "items": items}, indent=2))
            return
        for item in items:
            mark = "configured" if item["configured"] else "not configured"
            rt.ui.line(f"{item['provider']:<12} {mark:<15} {' '.join(item['verbs'])}")

    run(body)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
    app.command("providers")(providers_cmd)
    for module_name in ("sandbox_cmd", "verify_cmd"):
        try:
            module = __import__(f"recfetch.cli.{module_name}", fromlist=["register"])
        except ModuleNotFoundError as exc:
            if exc.name != f"recfetch.cli.{module_name}":
                raise
            continue
        module.register(app)
