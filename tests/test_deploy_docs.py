"""docs/deploy.md stays true: its settings files and ``export`` lines load as settings,
every ``caseforum`` line is a real command with real options, and the backup example
runs (a backup of the demo instance, restored into a new folder)."""

from __future__ import annotations

import re
import shlex
import tomllib
from pathlib import Path

import pytest
from click.testing import CliRunner

from caseforum.cli import cli
from caseforum.config import load_settings

DOC = (Path(__file__).resolve().parents[1] / "docs" / "deploy.md").read_text()


def _blocks(kind: str, text: str = DOC) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", text, re.DOTALL)


def _lines(block: str) -> list[str]:
    return [line.split(" #")[0].strip() for line in block.splitlines()
            if line.split(" #")[0].strip()]


def test_the_settings_file_example_loads(tmp_path: Path) -> None:
    blocks = _blocks("toml")
    assert blocks
    for block in blocks:
        values = tomllib.loads(block)
        values["data_dir"] = tmp_path  # the example's folder need not exist here
        settings = load_settings(**values)
        assert settings.trusted_proxies and settings.metrics_allow and settings.redis_url


def test_every_shell_line_is_a_setting_or_a_real_command(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [line for block in _blocks("sh") for line in _lines(block)]
    exports = [line for line in lines if line.startswith("export ")]
    commands = [line for line in lines if not line.startswith("export ")]
    assert exports and commands
    for line in exports:
        name, value = line.removeprefix("export ").split("=", 1)
        assert name.startswith("CASEFORUM_"), line
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(tmp_path))  # not /srv here
    settings = load_settings()  # every exported value is a valid setting
    assert settings.database_url and settings.base_url.startswith("https:")
    for line in commands:
        words = shlex.split(line)
        while "=" in words[0]:  # VAR=value prefixes
            words.pop(0)
        assert words[0] == "caseforum", line
        assert words[1] in cli.commands, line
        # --help after the arguments: click parses them all (an unknown option fails)
        # before printing the help, and nothing runs
        result = CliRunner().invoke(cli, [*words[1:], "--help"])
        assert result.exit_code == 0, (line, result.output)


def test_the_backup_example_runs(data_dir: Path, tmp_path: Path,
                                 monkeypatch: pytest.MonkeyPatch) -> None:
    section = DOC.split("## Backups", 1)[1].split("\n## ", 1)[0]
    (block,) = _blocks("sh", section)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CASEFORUM_SECRET_KEY", "d" * 32)
    outputs = []
    for line in _lines(block):
        words = shlex.split(line)
        env = {"CASEFORUM_DATA_DIR": str(data_dir)}
        while "=" in words[0]:
            name, value = words.pop(0).split("=", 1)
            env[name] = value
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        result = CliRunner().invoke(cli, words[1:], catch_exceptions=False)
        assert result.exit_code == 0, (line, result.output)
        outputs.append(result.output)
    assert "backed up" in outputs[0] and "restored" in outputs[-1]
    assert (tmp_path / "restored" / "caseforum.db").is_file()
    assert any((tmp_path / "restored" / "files").rglob("*"))
