"""The deployment files in deploy/ (no Docker or systemd here to run them): they parse, every TUTORBOT_ name in them
is a setting, and the compose file's services find each other."""

from __future__ import annotations

import configparser
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from bot.config import Settings, setting_names, unknown_settings

DEPLOY = Path(__file__).resolve().parent.parent.parent / "deploy"
UNITS = sorted((DEPLOY / "systemd").glob("*.service"))
NAME = re.compile(r"\bTUTORBOT_[A-Za-z0-9_]+")
# What a bot process needs to share state with the others: the database, the lesson index and the model.
SHARED = ("TUTORBOT_DATABASE_URL", "TUTORBOT_RETRIEVAL__CHROMA_HOST", "TUTORBOT_MODEL__SERVER_URL")


def compose() -> dict[str, Any]:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return compose()["services"]


def bots() -> dict[str, dict[str, Any]]:
    """The services that run a bot (``tutorbot run ...``)."""
    return {name: s for name, s in services().items() if s.get("command", [])[:2] == ["tutorbot", "run"]}


def unit(path: Path) -> configparser.ConfigParser:
    # systemd repeats keys (Environment=) and uses % specifiers: no strictness, no interpolation
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # systemd keys are case-sensitive
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def unknown_names(text: str) -> list[tuple[str, str | None]]:
    """The TUTORBOT_ names in ``text`` no setting reads: the check a bot process warns with at start."""
    return unknown_settings(NAME.findall(text), setting_names(Settings))


@pytest.mark.parametrize(
    "path",
    [DEPLOY / "compose.yaml", DEPLOY / "tutorbot.env.example", *UNITS],
    ids=lambda path: path.name,
)
def test_every_tutorbot_name_in_the_deploy_files_is_a_setting(path: Path) -> None:
    unknown = unknown_names(path.read_text(encoding="utf-8"))
    assert unknown == [], "; ".join(f"{name} is no setting (closest: {closest})" for name, closest in unknown)


def test_the_name_check_catches_a_misspelt_setting() -> None:
    assert unknown_names("TUTORBOT_RETRIEVAL__CHROMA_HOTS=chroma") == [
        ("TUTORBOT_RETRIEVAL__CHROMA_HOTS", "TUTORBOT_RETRIEVAL__CHROMA_HOST")
    ]


def test_the_env_example_holds_placeholders_not_secrets() -> None:
    values = dict(
        line.split("=", 1)
        for line in (DEPLOY / "tutorbot.env.example").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#")
    )
    for secret in ("TUTORBOT_TELEGRAM__TOKEN", "TUTORBOT_DISCORD__TOKEN", "TUTORBOT_TELEGRAM__WEBHOOK_SECRET"):
        assert values[secret] == "CHANGE_ME"
    assert urlsplit(values["TUTORBOT_DATABASE_URL"]).password == "CHANGE_ME"


def test_compose_runs_two_telegram_workers_and_two_discord_shards() -> None:
    commands = [s["command"][2] for s in bots().values()]
    assert commands.count("telegram") >= 2 and commands.count("discord") >= 2
    shards = sorted(
        s["environment"]["TUTORBOT_DISCORD__SHARD_IDS"] for s in bots().values() if "discord" in s["command"]
    )
    counts = {s["environment"]["TUTORBOT_DISCORD__SHARD_COUNT"] for s in bots().values() if "discord" in s["command"]}
    assert counts == {str(len(shards))} and shards == [f"[{i}]" for i in range(len(shards))]


def test_every_bot_gets_the_shared_database_index_and_model_and_waits_for_them() -> None:
    for name, service in {**bots(), "setup": services()["setup"]}.items():
        environment = service.get("environment", {})
        needed = SHARED if name != "setup" else SHARED[:2]  # setup indexes; it asks the model nothing
        missing = [variable for variable in needed if variable not in environment]
        assert missing == [], f"{name} lacks {missing}"
        hosts = {urlsplit(environment[v]).hostname for v in ("TUTORBOT_DATABASE_URL", "TUTORBOT_MODEL__SERVER_URL")}
        hosts.add(environment["TUTORBOT_RETRIEVAL__CHROMA_HOST"])
        assert hosts <= set(services()), f"{name} points at hosts that are not services: {hosts - set(services())}"
        waited_for = hosts - {"model"} if name == "setup" else hosts
        assert waited_for <= set(service["depends_on"]), f"{name} starts without waiting for {waited_for}"


def test_every_dependency_is_a_service_and_bots_start_after_setup() -> None:
    for name, service in services().items():
        depends = service.get("depends_on", [])
        assert set(depends) <= set(services()), f"{name} depends on a service that does not exist"
    for name, service in bots().items():
        assert service["depends_on"]["setup"]["condition"] == "service_completed_successfully", name


def test_the_telegram_workers_listen_where_the_proxy_sends_updates() -> None:
    upstream = set(re.findall(r"^\s*server\s+([\w.-]+:\d+);", (DEPLOY / "nginx.conf").read_text(), re.MULTILINE))
    workers = {
        f"{name}:{service['environment']['TUTORBOT_TELEGRAM__WEBHOOK_PORT']}"
        for name, service in bots().items()
        if service["command"][2] == "telegram"
        and service["environment"]["TUTORBOT_TELEGRAM__WEBHOOK_LISTEN"] == "0.0.0.0"
    }
    assert upstream == workers and len(workers) >= 2
    assert set(services()["proxy"]["depends_on"]) == {name for name, _ in (w.split(":") for w in workers)}


@pytest.mark.parametrize("path", UNITS, ids=lambda path: path.name)
def test_each_systemd_unit_parses_and_runs_as_tutorbot(path: Path) -> None:
    parsed = unit(path)
    assert {"Unit", "Service"} <= set(parsed.sections())
    service = parsed["Service"]
    assert service.get("ExecStart", "").startswith("/opt/tutorbot/.venv/bin/")
    assert service.get("User") == "tutorbot"
    if service.get("Type") != "oneshot":
        assert service.get("Restart") == "on-failure"
    assert service.get("NoNewPrivileges") == "yes" and service.get("ProtectSystem") == "strict"


def test_the_bot_units_read_the_env_file() -> None:
    for path in UNITS:
        if "tutorbot run" in unit(path)["Service"]["ExecStart"] or path.name == "tutorbot-setup.service":
            text = path.read_text(encoding="utf-8")
            assert "EnvironmentFile=/etc/tutorbot/tutorbot.env" in text, path.name
            assert all(f"Environment={variable}=" in text for variable in SHARED[1:]), path.name
