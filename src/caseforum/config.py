"""Settings: ``CASEFORUM_*`` environment variables over an optional TOML file.

A bad setting stops start-up with one line naming it (:class:`SettingsError`),
rather than a traceback some minutes later.
"""

from __future__ import annotations

import ipaddress
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from caseforum import i18n


class SettingsError(Exception):
    """A setting is missing or malformed; the message names it."""


class MailSettings(BaseModel):
    """The SMTP server the e-mail channel sends through (``[mail]`` in the settings
    file, ``CASEFORUM_MAIL__HOST`` ... in the environment).  No host: no e-mail."""

    model_config = ConfigDict(extra="forbid")

    host: str = ""
    port: int = Field(default=25, ge=1, le=65535)
    #: upgrade a plain connection with STARTTLS (port 587)
    starttls: bool = False
    #: TLS from the first byte (port 465)
    tls: bool = False
    user: str = ""
    password: str = ""
    from_address: str = "caseforum@localhost"
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("from_address")
    @classmethod
    def _an_address(cls, value: str) -> str:
        if "@" not in value or any(c in value for c in "\r\n<>"):
            raise ValueError("use a plain address such as caseforum@office.example")
        return value.strip()


class StorageSettings(BaseModel):
    """Where documents, OPD copies and ICE parcels are kept (``[storage]`` in the settings
    file, ``CASEFORUM_STORAGE__BACKEND`` ... in the environment).  See
    ``caseforum.storage_backends``."""

    model_config = ConfigDict(extra="forbid")

    #: ``local`` (``<data_dir>/files``), ``s3``, or a backend a plugin registers
    backend: str = Field(default="local", pattern=r"^[a-z][a-z0-9_]*$")
    #: the S3 API's address; empty for AWS itself
    s3_endpoint: str = ""
    s3_bucket: str = ""
    s3_region: str = "us-east-1"
    #: empty: boto3's own search (environment, instance role ...)
    s3_access_key: str = ""
    s3_secret_key: str = ""
    #: server-side encryption of every object: empty (the bucket's default), AES256, aws:kms
    s3_sse: Literal["", "AES256", "aws:kms"] = ""
    #: files larger than this go up in parts of this size (S3's smallest part is 5 MB)
    s3_part_size_mb: int = Field(default=8, ge=5, le=5120)

    @field_validator("s3_endpoint")
    @classmethod
    def _http_endpoint(cls, value: str) -> str:
        value = value.strip()
        if value and (urlsplit(value).scheme not in ("http", "https")
                      or not urlsplit(value).netloc):
            raise ValueError("use an address such as https://s3.office.example or "
                             "http://127.0.0.1:9000")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _bucket_for_s3(self) -> StorageSettings:
        if self.backend == "s3" and not self.s3_bucket:
            raise ValueError("the s3 backend needs a bucket: set s3_bucket "
                             "(CASEFORUM_STORAGE__S3_BUCKET)")
        return self


class Settings(BaseSettings):
    """Everything an administrator may set.  See ``docs/configuration.md``."""

    model_config = SettingsConfigDict(
        env_prefix="CASEFORUM_",
        env_nested_delimiter="__",
        extra="forbid",
    )

    data_dir: Path = Path("./var")
    database_url: str | None = None
    secret_key: str | None = None
    redis_url: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    content_base_url: str | None = None
    session_days: int = Field(default=14, ge=1, le=365)
    secure_cookies: bool = False
    max_upload_mb: int = Field(default=250, ge=1, le=10_000)
    #: JSON and form bodies (everything but multipart uploads), refused beyond this
    max_body_kb: int = Field(default=1024, ge=16, le=1_048_576)
    login_max_failures: int = Field(default=5, ge=1)
    login_window_minutes: int = Field(default=15, ge=1)
    login_max_failures_per_address: int = Field(default=30, ge=1)
    event_retention_days: int = Field(default=30, ge=1)
    # bounded work (docs/configuration.md, "Limits on packages, log-ins and left-over files")
    package_max_total_mb: int = Field(default=2048, ge=1)
    package_max_members: int = Field(default=10_000, ge=1)
    package_max_ratio: int = Field(default=200, ge=2)
    login_backoff_seconds: int = Field(default=30, ge=1)
    sweep_interval_minutes: int = Field(default=30, ge=0)
    sweep_min_age_minutes: int = Field(default=60, ge=1)
    run_consumers: bool = True
    # forum product decisions, read by the rules in authz.py (see docs/configuration.md)
    forum_platform_admins_read_all: bool = True
    forum_office_admins_moderate_open: bool = True
    # requests served at once per process: sizes the thread pool and the connection pool
    concurrency: int = Field(default=4, ge=1, le=256)
    # argon2id cost: "test" (argon2's cheapest parameters) is for test suites only
    password_hash_profile: Literal["standard", "test"] = "standard"
    #: the interface language when neither the user nor the browser names one we have
    default_locale: str = "en"
    #: the zone of times for visitors (a user's own setting, then the office's, come first)
    default_time_zone: str = "UTC"
    plugins: dict[str, dict[str, Any]] = Field(default_factory=dict)
    mail: MailSettings = Field(default_factory=MailSettings)
    storage: StorageSettings = Field(default_factory=StorageSettings)
    # operations: proxies whose X-Forwarded-* headers count, and who may read /metrics
    # without logging in (addresses or networks; docs/configuration.md, "Behind a proxy")
    trusted_proxies: Annotated[list[str], NoDecode] = Field(default_factory=list)
    metrics_allow: Annotated[list[str], NoDecode] = Field(default_factory=list)

    @field_validator("trusted_proxies", "metrics_allow", mode="before")
    @classmethod
    def _networks(cls, value: Any) -> Any:
        """A TOML list, or in the environment a JSON list or comma-separated text;
        each entry must be an address or a network (checked here, not at first use)."""
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    value = json.loads(text)
                except ValueError:
                    raise ValueError("use a JSON list or comma-separated addresses") from None
            else:
                value = [part for part in text.split(",") if part.strip()]
        if isinstance(value, list):
            for entry in value:
                try:
                    ipaddress.ip_network(str(entry).strip(), strict=False)
                except ValueError:
                    raise ValueError(
                        f"{entry!r} is not an address or network such as 10.0.0.0/8") from None
            return [str(entry).strip() for entry in value]
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("sqlite:///", "postgresql+psycopg://", "postgresql://")):
            raise ValueError(
                "use sqlite:///PATH or postgresql+psycopg://USER@HOST:PORT/DB"
            )
        if value.startswith("postgresql://"):
            value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value

    @field_validator("default_locale")
    @classmethod
    def _known_language(cls, value: str) -> str:
        found = i18n.match_language([value])
        if found is None:
            raise ValueError(f"use one of {', '.join(i18n.LANGUAGES)}")
        return found

    @field_validator("default_time_zone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        if i18n.zone(value.strip()) is None:
            raise ValueError("use a time zone name such as UTC, Asia/Tokyo or Europe/Berlin")
        return value.strip()

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("use redis://HOST:PORT/DB")
        return value

    @field_validator("content_base_url")
    @classmethod
    def _content_origin(cls, value: str | None, info: ValidationInfo) -> str | None:
        """Uploaded documents are served from here; it must be an origin of its own."""
        if value in (None, ""):
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query \
                or parts.path not in ("", "/"):
            raise ValueError("use an origin such as https://files.example.org (no path)")
        if parts.netloc.lower() == urlsplit(info.data.get("base_url", "")).netloc.lower():
            raise ValueError("use another host than base_url")
        return f"{parts.scheme}://{parts.netloc.lower()}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CASEFORUM_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=config_file))
        return tuple(sources)

    # Derived values -----------------------------------------------------

    @property
    def sqlalchemy_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'caseforum.db').resolve()}"

    @property
    def is_sqlite(self) -> bool:
        return self.sqlalchemy_url.startswith("sqlite")

    @property
    def storage_dir(self) -> Path:
        return self.data_dir / "files"

    @property
    def worker_metrics_dir(self) -> Path:
        """The workers' figures under ``serve --workers N`` (web/worker_metrics.py)."""
        return self.data_dir / "metrics"


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    loc = [str(part) for part in first["loc"]]
    if loc and loc[0] == "plugins" and len(loc) >= 2:
        name = f"plugins.{'.'.join(loc[1:])}"
    else:
        name = "CASEFORUM_" + "__".join(part.upper() for part in loc)
    message = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        message = "unknown setting"
    return f"bad setting {name}: {message}"


def load_settings(**overrides: Any) -> Settings:
    """Read settings, make the data folder, and fill in the secret key.

    The secret key, when not set, is generated once into the data folder so
    sessions survive restarts without anyone having to invent one.
    """
    config_file = os.environ.get("CASEFORUM_CONFIG")
    if config_file and not Path(config_file).is_file():
        raise SettingsError(f"bad setting CASEFORUM_CONFIG: no such file {config_file}")
    try:
        settings = Settings(**overrides)
    except ValidationError as exc:
        raise SettingsError(_describe(exc)) from None
    except ValueError as exc:  # e.g. malformed TOML
        raise SettingsError(f"bad settings file {config_file}: {exc}") from None
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise SettingsError(f"bad setting CASEFORUM_DATA_DIR: {exc.strerror}") from None
    if not settings.secret_key:
        key_file = settings.data_dir / "secret_key"
        if not key_file.exists():
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        settings.secret_key = key_file.read_text().strip()
    elif len(settings.secret_key) < 16:
        raise SettingsError("bad setting CASEFORUM_SECRET_KEY: use at least 16 characters")
    return settings
