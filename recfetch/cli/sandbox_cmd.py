"""`recfetch sandbox` (local stand-ins of every provider) and `recfetch demo` (a full pull from them)."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from recfetch.cli._runtime import Runtime, call_reported, reported, runtime
from recfetch.errors import ExitCode, UsageError
from recfetch.jobs.options import PullOptions

DEMO_DIR = Path("recfetch-demo")
KALEYRA_REPORT = Path("sandbox-kaleyra-report.csv")
"""Written by `recfetch sandbox` in the current folder, so README examples paste as they are."""


@reported
def sandbox(
    ctx: typer.Context,
    port: Annotated[
        int,
        typer.Option(
            "--port",
            min=0,
            max=65530,
            help="First port: APIs on PORT..PORT+4, storage host on PORT+5 (0 = any free ports).",
        ),
    ] = 8780,
    recordings: Annotated[
        int | None,
        typer.Option("--recordings", min=1, help="Synthetic recordings per provider (default: a small set)."),
    ] = None,
    profile_name: Annotated[
        str, typer.Option("--profile-name", help="Profile to write the stand-ins' settings to.")
    ] = "sandbox",
    no_write: Annotated[
        bool, typer.Option("--no-write", help="Do not touch the config file; print the settings instead.")
    ] = False,
    kaleyra_report: Annotated[
        Path,
        typer.Option(
            "--kaleyra-report",
            metavar="FILE",
            help="Where to write a recordings report of the Kaleyra stand-in (Kaleyra has no "
            "listing API; pass it to `kaleyra list/pull --from-report`).",
        ),
    ] = KALEYRA_REPORT,
) -> None:
    """Serve local stand-ins of all five provider APIs on 127.0.0.1 until interrupted."""

    from recfetch.sandbox import Sandbox

    rt = runtime(ctx)
    rt.writes_config = True
    try:
        box = Sandbox(port=port, recordings=recordings)
    except OSError as exc:
        raise UsageError(
            f"cannot listen on 127.0.0.1 ports {port}..{port + 5}: {exc.strerror}",
            hint="pick other ports with --port N, or --port 0 for any free ones",
        ) from None
    with box:
        if not no_write:
            box.write_profile(rt.config_path, profile_name)
            rt.ui.info(f"wrote profile {profile_name!r} to {rt.config_path}")
        for name, table in box.profiles().items():
            rt.ui.line(f"{name:<12} {table.get('base_url')}")
        rt.ui.line(f"{'storage':<12} {box.storage.url}")
        if "kaleyra" in box.standins:
            kaleyra_report.write_text(box.standins["kaleyra"].report_csv(), encoding="utf-8")
            rt.ui.line(f"{'kaleyra csv':<12} {kaleyra_report}")
        rt.ui.info(f"try: recfetch -p {profile_name} kismet list    (Ctrl-C stops the sandbox)")
        stopped = threading.Event()

        def on_signal(signum: int, frame: Any) -> None:
            stopped.set()

        old_int = signal.signal(signal.SIGINT, on_signal)
        old_term = signal.signal(signal.SIGTERM, on_signal)
        try:
            while not stopped.wait(0.5):
                pass
        finally:
            signal.signal(signal.SIGINT, old_int)
            signal.signal(signal.SIGTERM, old_term)
    rt.ui.info("sandbox stopped")


@reported
def demo(
    ctx: typer.Context,
    output_dir: Annotated[Path, typer.Option("--output-dir", "-o", help="Where to download.")] = DEMO_DIR,
    jobs: Annotated[int, typer.Option("--jobs", "-j", min=1, max=64, help="Parallel downloads.")] = 4,
) -> int:
    """Start the sandbox in-process and pull every provider's recordings into ./recfetch-demo."""
    from recfetch.sandbox import Sandbox

    outer = runtime(ctx)
    worst = 0
    with tempfile.TemporaryDirectory(prefix="recfetch-demo-") as tmp, Sandbox() as box:
        config_path = Path(tmp) / "config.toml"
        box.write_profile(config_path, "sandbox")
        state = output_dir / ".state"
        old_state = os.environ.get("RECFETCH_STATE_DIR")
        os.environ["RECFETCH_STATE_DIR"] = str(state)
        try:
            outer.ui.info(f"recfetch demo: sandbox on 127.0.0.1, downloading into {output_dir}/")
            for name, standin in box.standins.items():
                outer.ui.info(f"\n== {name} ==")
                options: dict[str, Any] = {}
                if name == "kaleyra":
                    report = Path(tmp) / "kaleyra-report.csv"
                    report.write_text(standin.report_csv(), encoding="utf-8")
                    options["from_report"] = str(report)
                inner = _demo_runtime(outer, config_path)
                code = _pull(
                    inner, name, PullOptions(output_dir=output_dir / name, jobs=jobs, filters=options)
                )
                worst = code if worst == 0 else worst
        finally:
            if old_state is None:
                os.environ.pop("RECFETCH_STATE_DIR", None)
            else:
                os.environ["RECFETCH_STATE_DIR"] = old_state
    files = [p for p in output_dir.rglob("*") if p.is_file() and ".state" not in p.parts]
    outer.ui.info(f"\ndemo done: {len(files)} files under {output_dir}/ (run it again: nothing new)")
    return worst


def _demo_runtime(outer: Runtime, config_path: Path) -> Runtime:
    """The outer run's display settings, with the demo's own config file and profile."""
    inner = Runtime(json_errors=outer.json_errors, config_cli=str(config_path), profile_cli="sandbox")
    inner.quiet, inner.verbose, inner.progress, inner.color = (
        outer.quiet,
        outer.verbose,
        outer.progress,
        outer.color,
    )
    return inner


def _pull(rt: Runtime, name: str, options: PullOptions) -> int:
    from recfetch.cli import _commands

    try:
        call_reported(rt, _commands.pull, rt, name, options, "table")
    except typer.Exit as exc:
        return int(exc.exit_code or 0)
    return int(ExitCode.OK)


def register(app: typer.Typer) -> None:
    app.command(
        "sandbox",
        epilog="\b\nExamples:\n  recfetch sandbox\n  recfetch sandbox --port 0 --recordings 200",
    )(sandbox)
    app.command("demo", epilog="\b\nExamples:\n  recfetch demo\n  recfetch demo -o /tmp/demo -j 8")(demo)
