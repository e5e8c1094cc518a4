"""SPEC §6 configuration: locations, profiles, precedence, `_cmd` secrets, file modes, `config` verbs."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path
from typing import Any

import platformdirs
import pytest
import tomli_w

from recfetch import config

SECRET = "file-secret-value-wxyz"


def write(path: Path, data: dict[str, Any], mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.write_text(tomli_w.dumps(data))
    path.chmod(mode)
    return path


def kismet_file(config_file: Path, profile: str = "work", **values: str) -> Path:
    table = {"client_id": "file-id", "client_secret": SECRET, **values}
    return write(config_file, {"profiles": {profile: {"kismet": table}}})


def show(cli, *args: str) -> dict[str, Any]:
    result = cli(*args, "config", "show", "--json")
    assert result.exit_code == 0, result.output
    return result.json()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------
# where the file and the state live


def test_config_path_prefers_the_option_over_the_environment(cli, tmp_path: Path) -> None:
    chosen = tmp_path / "chosen.toml"
    result = cli("--config", str(chosen), "config", "path")
    assert result.exit_code == 0
    assert result.stdout.strip() == str(chosen)


def test_config_path_comes_from_recfetch_config(cli, config_file: Path) -> None:
    result = cli("config", "path")
    assert result.stdout.strip() == str(config_file)


def test_config_path_defaults_to_the_platform_user_config_dir(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RECFETCH_CONFIG")
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    expected = platformdirs.user_config_path("recfetch") / "config.toml"
    assert str(expected).startswith(str(tmp_path / "xdg"))
    assert cli("config", "path").stdout.strip() == str(expected)


def test_state_dir_comes_from_the_environment_else_the_platform_dir(
    cli, isolated: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert show(cli)["state_dir"] == str(isolated / "state")
    monkeypatch.delenv("RECFETCH_STATE_DIR")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdgstate"))
    assert config.state_dir() == platformdirs.user_state_path("recfetch")
    assert show(cli)["state_dir"].startswith(str(tmp_path / "xdgstate"))


# ---------------------------------------------------------------------------
# profiles


def test_profile_is_option_then_env_then_default_profile_then_default(
    cli, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    profiles = {name: {"kismet": {"client_id": name}} for name in ("a", "b", "c")}
    write(config_file, {"profiles": profiles})
    doc = show(cli)
    assert (doc["profile"], doc["profile_source"]) == ("default", "default")

    write(config_file, {"default_profile": "a", "profiles": profiles})
    doc = show(cli)
    assert (doc["profile"], doc["profile_source"]) == ("a", "file")
    assert doc["providers"]["kismet"]["client_id"]["value"] == "a"

    monkeypatch.setenv("RECFETCH_PROFILE", "b")
    doc = show(cli)
    assert (doc["profile"], doc["profile_source"]) == ("b", "env")

    doc = show(cli, "--profile", "c")
    assert (doc["profile"], doc["profile_source"]) == ("c", "option")
    assert doc["providers"]["kismet"]["client_id"]["value"] == "c"
    assert show(cli, "-p", "a")["profile"] == "a"


@pytest.mark.parametrize("how", ["option", "env", "default_profile"])
def test_unknown_chosen_profile_is_a_config_error_naming_the_known_ones(
    cli, config_file: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    data: dict[str, Any] = {"profiles": {"work": {"kismet": {"client_id": "x"}}, "home": {}}}
    args: list[str] = []
    if how == "option":
        args = ["-p", "wrok"]
    elif how == "env":
        monkeypatch.setenv("RECFETCH_PROFILE", "wrok")
    else:
        data["default_profile"] = "wrok"
    write(config_file, data)
    for command in (["kismet", "list"], ["config", "show"]):
        result = cli(*args, *command)
        assert result.exit_code == 5, result.output
        assert "'wrok'" in result.stderr and "home, work" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1


# ---------------------------------------------------------------------------
# precedence and sources


def test_resolve_precedence_is_option_env_file_cmd_default(monkeypatch: pytest.MonkeyPatch) -> None:
    data = {"profiles": {"p": {"kazoo": {"api_key": "from-file", "account_id_cmd": "echo x", "x": "f"}}}}
    keys = ["api_key", "account_id", "base_url", "x"]
    got = config.resolve("kazoo", keys, data, "p", defaults={"base_url": "https://d"})
    assert got["api_key"] == config.Sourced("from-file", "file")
    assert got["account_id"].source == "cmd:echo x"
    assert got["base_url"] == config.Sourced("https://d", "default")

    monkeypatch.setenv("RECFETCH_KAZOO_API_KEY", "from-env")
    monkeypatch.setenv("RECFETCH_KAZOO_BASE_URL", "https://env")
    got = config.resolve("kazoo", keys, data, "p", defaults={"base_url": "https://d"})
    assert got["api_key"] == config.Sourced("from-env", "env")
    assert got["base_url"] == config.Sourced("https://env", "env")

    got = config.resolve("kazoo", keys, data, "p", cli_values={"api_key": "from-option"})
    assert got["api_key"] == config.Sourced("from-option", "option")


def test_config_show_names_each_source_and_masks_secrets(
    cli, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kismet_file(config_file, profile="default")
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_ID", "env-client-id")
    doc = show(cli)
    kismet = doc["providers"]["kismet"]
    assert kismet["client_id"] == {"value": "env-client-id", "source": "env", "secret": False}
    assert kismet["client_secret"] == {"value": "****wxyz", "source": "file", "secret": True}
    assert kismet["base_url"]["source"] == "default"
    assert kismet["base_url"]["value"].startswith("https://")

    human = cli("config", "show", "kismet")
    assert human.exit_code == 0
    assert "client_secret = ****wxyz  [file]" in human.stdout
    assert "client_id = env-client-id  [env]" in human.stdout
    for result in (human, cli("config", "show"), cli("config", "show", "--json")):
        assert SECRET not in result.output


def test_config_show_of_an_unknown_provider_is_a_usage_error(cli) -> None:
    result = cli("config", "show", "nosuch")
    assert result.exit_code == 2
    assert "kismet" in result.stderr


def test_config_show_reports_cmd_secrets_without_running_them(cli, config_file: Path, tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    kismet_file(config_file, profile="default")
    data = config.load(config_file)
    del data["profiles"]["default"]["kismet"]["client_secret"]
    data["profiles"]["default"]["kismet"]["client_secret_cmd"] = f"touch {marker}; echo s3cr3t"
    write(config_file, data)
    entry = show(cli)["providers"]["kismet"]["client_secret"]
    assert entry["source"] == "cmd"
    assert entry["value"] == "<from client_secret_cmd>"
    assert not marker.exists()


def test_config_show_reports_a_destination_cmd_secret_without_running_it(
    cli, config_file: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in list(os.environ):
        if key.startswith("AWS_"):
            monkeypatch.delenv(key)
    marker = tmp_path / "ran"
    table = {"aws_region": "eu-west-1", "aws_secret_access_key_cmd": f"touch {marker}; echo s3cr3t"}
    write(config_file, {"profiles": {"default": {"destination": table}}})
    dest = show(cli)["destination"]
    assert dest["aws_secret_access_key"] == {
        "value": "<from aws_secret_access_key_cmd>", "source": "cmd", "secret": True
    }
    assert dest["aws_region"] == {"value": "eu-west-1", "source": "file", "secret": False}
    assert "aws_access_key_id" not in dest  # unset keys are left out
    assert not marker.exists()


# ---------------------------------------------------------------------------
# `_cmd` secrets and env overrides against the sandbox


def test_secret_from_a_cmd_key_in_the_file_authenticates(cli, sandbox, config_file: Path) -> None:
    table = sandbox["kismet"].profile()
    secret = table.pop("client_secret")
    table["client_secret_cmd"] = f"printf '%s\\n' '{secret}'"
    write(config_file, {"profiles": {"default": {"kismet": table}}})
    result = cli("kismet", "list", "--jsonl", "--limit", "1")
    assert result.exit_code == 0, result.output
    assert len(result.jsonl()) == 1
    assert secret not in result.output


def test_secret_from_an_env_cmd_overrides_the_file(
    cli, sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sandbox["kismet"].profile()
    secret = table["client_secret"]
    write(config_file, {"profiles": {"default": {"kismet": {**table, "client_secret": "wrong-secret"}}}})
    assert cli("kismet", "list", "--limit", "1").exit_code == 4
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_SECRET_CMD", f"printf %s {secret}")
    result = cli("kismet", "list", "--jsonl", "--limit", "1")
    assert result.exit_code == 0, result.output


def test_env_override_wins_over_the_file(
    cli, sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table = sandbox["kismet"].profile()
    write(config_file, {"profiles": {"default": {"kismet": table}}})
    assert cli("kismet", "list", "--limit", "1").exit_code == 0
    monkeypatch.setenv("RECFETCH_KISMET_CLIENT_SECRET", "env-wrong-secret")
    result = cli("kismet", "list", "--limit", "1")
    assert result.exit_code == 4, result.output
    assert "env-wrong-secret" not in result.output


def test_env_only_settings_work_without_a_config_file(
    cli, sandbox, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in sandbox["kismet"].profile().items():
        monkeypatch.setenv(f"RECFETCH_KISMET_{key.upper()}", value)
    result = cli("kismet", "list", "--jsonl", "--limit", "2")
    assert result.exit_code == 0, result.output
    assert not config_file.exists()


def test_failing_secret_command_is_a_config_error_that_does_not_echo_its_output(
    cli, config_file: Path
) -> None:
    # printf assembles the output, so it never appears in the command text itself.
    command = "printf 'leak%s\\n' ed-stdout-77; printf 'leak%s\\n' ed-stderr-77 >&2; exit 3"
    table = {"client_id": "x", "client_secret_cmd": command}
    write(config_file, {"profiles": {"default": {"kismet": table}}})
    result = cli("kismet", "list")
    assert result.exit_code == 5, result.output
    assert "client_secret_cmd exited with status 3" in result.stderr
    assert "leaked-stdout-77" not in result.output and "leaked-stderr-77" not in result.output


def test_secret_command_printing_nothing_is_a_config_error(cli, config_file: Path) -> None:
    write(config_file, {"profiles": {"default": {"kismet": {"client_id": "x", "client_secret_cmd": "true"}}}})
    result = cli("kismet", "list")
    assert result.exit_code == 5
    assert "printed nothing" in result.stderr


def test_missing_credential_is_a_config_error_naming_login_and_the_variable(cli) -> None:
    result = cli("kismet", "list")
    assert result.exit_code == 5
    assert "client_id" in result.stderr
    assert "recfetch kismet login" in result.stderr and "RECFETCH_KISMET_CLIENT_ID" in result.stderr


# ---------------------------------------------------------------------------
# reading: bad files and the permissions warning


def test_bad_toml_is_exit_5_with_the_file_and_line(cli, config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text('default_profile = "work"\n\n[profiles.work.kismet]\nclient_id = \n')
    result = cli("kismet", "list")
    assert result.exit_code == 5
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1
    assert f"{config_file}:4" in lines[0]


def test_unterminated_toml_string_still_names_a_line(cli, config_file: Path) -> None:
    config_file.parent.mkdir(parents=True)
    config_file.write_text('[profiles.work.kismet]\nclient_id = "abc\n')
    result = cli("config", "show")
    assert result.exit_code == 5
    assert f"{config_file}:" in result.stderr


@pytest.mark.parametrize(
    "data",
    [
        {"profiles": "work"},
        {"profiles": {"work": "kismet"}},
        {"profiles": {"work": {"kismet": "client_id"}}},
        {"default_profile": 3},
    ],
    ids=["profiles-not-table", "profile-not-table", "provider-not-table", "default-profile-not-string"],
)
def test_misshapen_config_is_exit_5(cli, config_file: Path, data: dict[str, Any]) -> None:
    write(config_file, data)
    result = cli("config", "show")
    assert result.exit_code == 5, result.output
    assert str(config_file) in result.stderr


def test_config_path_that_is_a_directory_is_exit_5(
    cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    result = cli("--config", str(tmp_path), "config", "show")
    assert result.exit_code == 5
    assert "is a directory" in result.stderr
    monkeypatch.setenv("RECFETCH_CONFIG", str(tmp_path))
    assert cli("kismet", "list").exit_code == 5


def test_world_readable_file_with_secrets_warns_on_stderr(cli, config_file: Path) -> None:
    kismet_file(config_file, profile="default")
    config_file.chmod(0o644)
    result = cli("config", "show")
    assert result.exit_code == 0
    assert "readable by others" in result.stderr and "chmod 600" in result.stderr
    assert "readable by others" not in result.stdout


@pytest.mark.parametrize(
    ("table", "settings"),
    [
        ("destination", {"aws_secret_access_key": "s3-secret-value"}),
        ("kazoo", {"password": "pw-value"}),
        ("destination", {"aws_access_key_id": "AKIAPUBLIC"}),  # an id, not a secret
    ],
)
def test_the_permissions_warning_follows_the_declared_secrets(
    cli, config_file: Path, table: str, settings: dict[str, str]
) -> None:
    write(config_file, {"profiles": {"default": {table: settings}}}, mode=0o644)
    warned = "readable by others" in cli("config", "show").stderr
    assert warned is ("aws_access_key_id" not in settings)


def test_private_file_or_file_without_secrets_gives_no_warning(cli, config_file: Path) -> None:
    kismet_file(config_file, profile="default")
    assert "readable by others" not in cli("config", "show").stderr
    write(config_file, {"profiles": {"default": {"kismet": {"client_id": "public"}}}}, mode=0o644)
    assert "readable by others" not in cli("config", "show").stderr


def test_top_level_provider_table_is_pointed_out(cli, config_file: Path) -> None:
    write(config_file, {"kismet": {"client_id": "x"}})
    result = cli("config", "show")
    assert result.exit_code == 0
    assert "[profiles.NAME.kismet]" in result.stderr


# ---------------------------------------------------------------------------
# writing: config set / unset


def test_config_set_writes_a_0600_file_in_a_0700_directory_atomically(cli, config_file: Path) -> None:
    assert not config_file.parent.exists()
    result = cli("config", "set", "kismet.client_id", "new-id")
    assert result.exit_code == 0, result.output
    assert mode_of(config_file) == 0o600
    assert mode_of(config_file.parent) == 0o700
    assert config.load(config_file)["profiles"]["default"]["kismet"]["client_id"] == "new-id"
    assert sorted(os.listdir(config_file.parent)) == ["config.toml"]  # no temp file left behind


def test_config_set_keeps_other_profiles_and_the_files_comments(cli, config_file: Path) -> None:
    config_file.parent.mkdir(parents=True, mode=0o700)
    config_file.write_text('# my notes\n[profiles.home.kismet]\nclient_id = "home-id"\n')
    config_file.chmod(0o600)
    result = cli("-p", "home", "config", "set", "kismet.base_url", "https://kismet.example")
    assert result.exit_code == 0, result.output
    assert result.stderr.startswith("set kismet.base_url")
    result = cli("-p", "work", "config", "set", "kismet.client_id", "work-id")
    assert result.exit_code == 0, result.output
    data = config.load(config_file)
    assert data["profiles"]["home"]["kismet"] == {
        "client_id": "home-id",
        "base_url": "https://kismet.example",
    }
    assert data["profiles"]["work"]["kismet"] == {"client_id": "work-id"}
    assert config_file.read_text().startswith('# my notes\n[profiles.home.kismet]\nclient_id = "home-id"\n')


def test_login_and_unset_keep_comments_and_layout(cli, sandbox, config_file: Path) -> None:
    config_file.parent.mkdir(parents=True, mode=0o700)
    original = (
        "# recfetch settings, hand-written\n"
        'default_profile = "default"  # the one cron uses\n\n'
        "[profiles.default.bird]\n"
        "# the office workspace\n"
        'workspace_id = "keep-me"  # do not touch\n'
    )
    config_file.write_text(original)
    config_file.chmod(0o600)
    bird = sandbox.profiles()["bird"]
    result = cli(
        *("-p", "sandbox", "bird", "login", "--workspace-id", bird["workspace_id"]),
        *("--base-url", bird["base_url"], "--access-key-stdin"),
        input=bird["access_key"] + "\n",
    )
    assert result.exit_code == 0, result.output
    text = config_file.read_text()
    assert text.startswith(original)
    assert config.load(config_file)["profiles"]["sandbox"]["bird"]["workspace_id"] == bird["workspace_id"]
    assert cli("-p", "sandbox", "config", "unset", "bird.base_url").exit_code == 0
    assert config_file.read_text().startswith(original)
    assert "base_url" not in config.load(config_file)["profiles"]["sandbox"]["bird"]


def test_config_set_of_a_secret_warns_about_shell_history(cli, config_file: Path) -> None:
    result = cli("config", "set", "kismet.client_secret", "typed-in-the-shell")
    assert result.exit_code == 0
    assert "shell history" in result.stderr and "recfetch kismet login" in result.stderr
    assert "typed-in-the-shell" not in result.output
    assert "shell history" not in cli("config", "set", "kismet.client_id", "plain").stderr


def test_config_set_accepts_a_cmd_key_for_a_secret(cli, config_file: Path) -> None:
    result = cli("config", "set", "kismet.client_secret_cmd", "pass show kismet")
    assert result.exit_code == 0, result.output
    assert "shell history" not in result.stderr
    assert show(cli)["providers"]["kismet"]["client_secret"]["source"] == "cmd"


@pytest.mark.parametrize("key", ["kismet.colour", "kismet.client_id_cmd", "nosuch.client_id", "kismet"])
def test_config_set_of_an_unknown_key_is_a_usage_error_listing_known_keys(
    cli, config_file: Path, key: str
) -> None:
    result = cli("config", "set", key, "value")
    assert result.exit_code == 2, result.output
    if key.startswith("kismet."):
        assert "client_secret" in result.stderr and "base_url" in result.stderr
    assert not config_file.exists()


def test_config_unset_removes_only_that_key(cli, config_file: Path) -> None:
    kismet_file(config_file, profile="default")
    result = cli("config", "unset", "kismet.client_secret")
    assert result.exit_code == 0, result.output
    assert config.load(config_file)["profiles"]["default"]["kismet"] == {"client_id": "file-id"}
    assert mode_of(config_file) == 0o600
    again = cli("config", "unset", "kismet.client_secret")
    assert again.exit_code == 0
    assert "not set" in again.stderr


def test_config_show_json_lists_every_registered_provider(cli) -> None:
    from recfetch.providers import REGISTRY

    doc = show(cli)
    assert set(doc["providers"]) == set(REGISTRY)
    for name, cls in REGISTRY.items():
        for setting in cls.settings:
            entry = doc["providers"][name][setting.key]
            assert entry["secret"] is setting.secret  # the declaration is the only truth
            assert entry["source"] in ("unset", "default")


def test_sandbox_profile_written_by_the_fixture_is_private(sandbox_profile, config_file: Path) -> None:
    assert mode_of(config_file) == 0o600
    assert json.loads(json.dumps(config.load(config_file)))["profiles"]["sandbox"]


# ---------------------------------------------------------------------------
# the provider seam: a provider registered by one line gets all of the config handling


def test_a_registered_provider_gets_login_masking_cmd_secrets_and_scrubbing(
    cli, config_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import parrot

    from recfetch.sandbox import Sandbox

    parrot.register(monkeypatch)
    with Sandbox(providers=["parrot"]) as box:
        url = box["parrot"].server.url
        login = cli(
            "parrot", "login", "--base-url", url, "--passphrase-stdin", input=parrot.PASSPHRASE + "\n"
        )
        assert login.exit_code == 0, login.output
        assert parrot.PASSPHRASE not in login.output
        saved = config.load(config_file)["profiles"]["default"]["parrot"]
        assert saved == {"base_url": url, "passphrase": parrot.PASSPHRASE}

        # `passphrase` holds none of the words a name heuristic would look for: the declaration masks it
        shown = cli("config", "show", "parrot", "--json").json()["providers"]["parrot"]
        assert shown["passphrase"]["secret"] is True
        assert shown["passphrase"]["value"] == "****" + parrot.PASSPHRASE[-4:]
        assert shown["base_url"] == {"value": url, "source": "file", "secret": False}

        assert cli("config", "set", "parrot.passphrase_cmd", f"echo {parrot.PASSPHRASE}").exit_code == 0
        assert cli("config", "set", "parrot.base_url_cmd", "echo x").exit_code == 2  # not a secret
        listed = cli("parrot", "list", "--jsonl")
        assert listed.exit_code == 0, listed.output
        assert len(listed.jsonl()) == len(box["parrot"].items)

        # a wrong passphrase is registered as a secret too: quoted back by the API, it is scrubbed
        wrong = "Wrong-phrase-" + "q" * 20
        monkeypatch.setenv("RECFETCH_PARROT_PASSPHRASE", wrong)
        failed = cli("parrot", "list")
        assert failed.exit_code == 4, failed.output
        assert wrong not in failed.output and "bad passphrase" in failed.output


@pytest.mark.parametrize("source", ["option", "env", "file", "cmd"])
def test_a_secret_from_any_source_is_scrubbed_from_an_error_that_quotes_it(
    cli, config_file: Path, monkeypatch: pytest.MonkeyPatch, source: str
) -> None:
    """Parrot's stand-in quotes a rejected passphrase back in its 401 body; recfetch must not pass it on."""
    import parrot

    from recfetch.sandbox import Sandbox

    wrong = f"Wrong-{source}-phrase-" + "z" * 16
    parrot.register(monkeypatch)
    with Sandbox(providers=["parrot"]) as box:
        url = box["parrot"].server.url
        if source == "option":
            result = cli("parrot", "login", "--base-url", url, "--passphrase", wrong)
        else:
            table = {"base_url": url}
            if source == "env":
                monkeypatch.setenv("RECFETCH_PARROT_PASSPHRASE", wrong)
            elif source == "file":
                table["passphrase"] = wrong
            else:
                table["passphrase_cmd"] = f"echo {wrong}"
            write(config_file, {"profiles": {"default": {"parrot": table}}})
            result = cli("-vv", "parrot", "list")
    assert result.exit_code == 4, result.output
    assert "bad passphrase" in result.output  # the quoting error did reach the user...
    assert wrong not in result.output  # ...without the secret
