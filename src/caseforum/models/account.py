"""Users, their log-in sessions and API tokens."""

from datetime import datetime
from enum import StrEnum

from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class Role(StrEnum):
    examiner = "examiner"
    office_admin = "office_admin"
    platform_admin = "platform_admin"
    bot = "bot"


class User(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True, unique=True, max_length=64)
    display_name: str = ""
    office_code: str = Field(foreign_key="office.code", index=True)
    role: Role = Role.examiner
    password_hash: str | None = None
    is_active: bool = True
    #: the interface language the user chose (a code of ``caseforum.i18n.LANGUAGES``);
    #: empty: none chosen, the browser's languages decide
    locale: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    #: where the e-mail channel writes; empty: no e-mail
    email: str = Field(default="", max_length=254, sa_column_kwargs={"server_default": ""})
    #: e-mail timing: immediate | daily | weekly (a digest)
    email_digest: str = Field(default="immediate", max_length=16,
                              sa_column_kwargs={"server_default": "immediate"})

    #: the zone the user reads times in (IANA name); empty: the office's
    time_zone: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})

    @property
    def label(self) -> str:
        return self.display_name or self.username


class UserSession(SQLModel, table=True):
    """A log-in.  The cookie carries a signed random id; only its hash is kept."""

    __tablename__ = "user_session"

    id: str = Field(primary_key=True, max_length=64)
    user_id: int = Field(foreign_key="user.id", index=True)
    created_at: datetime = Field(default_factory=utcnow)
    last_seen_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    revoked_at: datetime | None = None
    address: str = ""
    user_agent: str = ""


class ApiToken(SQLModel, table=True):
    __tablename__ = "api_token"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    name: str = ""
    prefix: str = Field(max_length=16)
    token_hash: str = Field(index=True, unique=True, max_length=64)
    scopes: str = ""
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    @property
    def scope_list(self) -> list[str]:
        return [s for s in self.scopes.split() if s]


class LoginFailure(SQLModel, table=True):
    """One failed log-in, for throttling by account and by address."""

    __tablename__ = "login_failure"

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(index=True)
    address: str = Field(index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
