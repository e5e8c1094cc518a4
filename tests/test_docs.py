"""README, config.example.toml, --help and the code agree with each other."""

from __future__ import annotations

import re
import tomllib

from conftest import REPO

from recfetch.errors import ExitCode
from recfetch.providers import registry

README = (REPO / "README.md").read_text(encoding="utf-8")


def _quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def test_quick_start_has_exactly_two_commands_install_demo_and_tests() -> None:
    commands = _quick_start_commands()
    assert len(commands) == 2
    assert "pip install" in commands[0] and commands[0].endswith("recfetch demo")
    assert 'pip install -e ".[test]"' in commands[1] and "pytest" in commands[1]


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    ci = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert _quick_start_commands()[1] in ci.splitlines()


def test_config_example_documents_every_setting_of_every_provider() -> None:
    data = tomllib.loads((REPO / "config.example.toml").read_text(encoding="utf-8"))
    tables = data["profiles"]["work"]
    for name, cls in registry().items():
        keys = {s.key for s in cls.settings} | {"base_url"}
        assert set(tables[name]) == keys, name


def test_readme_exit_code_table_matches_the_error_tree() -> None:
    table = README.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    documented = {int(m) for m in re.findall(r"^\| (\d+) \|", table, flags=re.M)}
    assert {int(code) for code in ExitCode} <= documented


def test_readme_names_every_provider_verb(cli) -> None:
    for name, cls in registry().items():
        result = cli(name, "--help")
        assert result.exit_code == 0
        for verb in ("login", "list", "show", "url", "download", "pull", *cls.extra_verbs):
            assert verb in result.stdout, (name, verb)
            if verb not in {"login", "list", "show", "url", "download", "pull"}:
                assert re.search(rf"`{name} [^`]*\b{verb}\b", README), (name, verb)
