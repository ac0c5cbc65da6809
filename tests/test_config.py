"""Settings from the environment and a TOML file; one clear line when bad."""

from __future__ import annotations

from pathlib import Path

import pytest

from caseforum.config import SettingsError, load_settings


def test_defaults_use_sqlite_in_the_data_folder(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings()
    assert settings.data_dir == Path("var")
    assert settings.sqlalchemy_url == f"sqlite:///{(tmp_path / 'var' / 'caseforum.db')}"


def test_secret_key_is_generated_once_and_kept(tmp_path: Path) -> None:
    first = load_settings(data_dir=tmp_path)
    second = load_settings(data_dir=tmp_path)
    assert first.secret_key and len(first.secret_key) >= 32
    assert first.secret_key == second.secret_key
    assert (tmp_path / "secret_key").stat().st_mode & 0o077 == 0


def test_environment_variables_override(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CASEFORUM_DATABASE_URL", "postgresql://u@h:5432/db")
    monkeypatch.setenv("CASEFORUM_PLUGINS__OPD_LINK__RETRIES", "4")
    settings = load_settings()
    assert settings.data_dir == tmp_path
    assert settings.sqlalchemy_url == "postgresql+psycopg://u@h:5432/db"
    assert settings.plugins["opd_link"]["retries"] == "4"


def test_toml_file_with_plugin_sections(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "caseforum.toml"
    config.write_text(
        f'data_dir = "{tmp_path}"\nsession_days = 3\n\n'
        '[plugins.opd_link]\nbase_url = "http://127.0.0.1:9000"\n'
    )
    monkeypatch.setenv("CASEFORUM_CONFIG", str(config))
    settings = load_settings()
    assert settings.session_days == 3
    assert settings.plugins["opd_link"]["base_url"] == "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("CASEFORUM_SESSION_DAYS", "fortnight", "bad setting CASEFORUM_SESSION_DAYS"),
        ("CASEFORUM_DATABASE_URL", "mysql://x", "bad setting CASEFORUM_DATABASE_URL: use sqlite"),
        ("CASEFORUM_REDIS_URL", "localhost:6379", "bad setting CASEFORUM_REDIS_URL"),
        ("CASEFORUM_MAX_UPLOAD_MB", "0", "bad setting CASEFORUM_MAX_UPLOAD_MB"),
        ("CASEFORUM_SECRET_KEY", "short", "bad setting CASEFORUM_SECRET_KEY"),
        ("CASEFORUM_CONFIG", "/nonexistent/caseforum.toml", "bad setting CASEFORUM_CONFIG"),
    ],
)
def test_bad_setting_names_itself_in_one_line(
    tmp_path: Path, monkeypatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv("CASEFORUM_DATA_DIR", str(tmp_path))
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as info:
        load_settings()
    text = str(info.value)
    assert text.startswith(message)
    assert "\n" not in text


def test_malformed_toml_and_unknown_key(tmp_path: Path, monkeypatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text("session_days = [unclosed\n")
    monkeypatch.setenv("CASEFORUM_CONFIG", str(config))
    with pytest.raises(SettingsError, match="bad settings file"):
        load_settings(data_dir=tmp_path)
    config.write_text("sesion_days = 3\n")
    with pytest.raises(SettingsError, match="sesion_days.*unknown setting|unknown setting"):
        load_settings(data_dir=tmp_path)


def test_password_hashes_use_the_standard_cost_unless_a_test_suite_asks(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from caseforum import passwords

    monkeypatch.delenv("CASEFORUM_PASSWORD_HASH_PROFILE")
    settings = load_settings(data_dir=tmp_path)
    assert settings.password_hash_profile == "standard"
    try:
        passwords.configure(settings.password_hash_profile)
        standard = passwords.hasher().hash("correct horse battery")
        assert "m=65536,t=3,p=4" in standard  # RFC 9106, low-memory profile
        passwords.configure("test")
        # a hash keeps its own cost: it still verifies, and is due for rehashing
        assert passwords.hasher().verify(standard, "correct horse battery")
        assert passwords.hasher().check_needs_rehash(standard)
    finally:
        passwords.configure("test")
