"""The examiners' forum: categories, threads, posts and what hangs off them."""

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Text, UniqueConstraint, false
from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class OfficeGroup(SQLModel, table=True):
    """A named set of offices, e.g. a regional cooperation group."""

    __tablename__ = "office_group"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    offices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Category(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(unique=True, max_length=100)
    description: str = ""
    # empty offices and no group: every participating office
    offices: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    group_id: int | None = Field(default=None, foreign_key="office_group.id")
    position: int = 0
    created_at: datetime = Field(default_factory=utcnow)


class Thread(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    category_id: int | None = Field(default=None, foreign_key="category.id", index=True)
    title: str = Field(max_length=300)
    author_id: int = Field(foreign_key="user.id")
    is_private: bool = False  # a private conversation between named examiners
    pinned: bool = False
    locked: bool = False
    post_count: int = 0
    last_post_id: int | None = None
    last_post_at: datetime = Field(default_factory=utcnow, index=True)
    created_at: datetime = Field(default_factory=utcnow)


class ThreadParticipant(SQLModel, table=True):
    __tablename__ = "thread_participant"

    thread_id: int = Field(foreign_key="thread.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class Post(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", index=True)
    author_id: int = Field(foreign_key="user.id", index=True)
    reply_to_id: int | None = Field(default=None, foreign_key="post.id")
    body: str = Field(sa_column=Column(Text, nullable=False))
    html: str = Field(sa_column=Column(Text, nullable=False))
    # blocks rendered for each viewer under the body (bot answers): [{"kind": ...}]
    embeds: list[dict[str, Any]] = Field(default_factory=list,
                                         sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow)
    edited_at: datetime | None = None
    hidden: bool = False
    hidden_by: int | None = None
    hidden_reason: str = ""
    # a bot's note about a new document: shown only to readers who may see the
    # document, so it must not move counts, unread marks, order or notifications
    # (the server default is migration 0004's, so that a database made from the
    # models, as `caseforum init` makes a new one, is the migrated one)
    quiet: bool = Field(default=False, sa_column_kwargs={"server_default": false()})


class PostRevision(SQLModel, table=True):
    __tablename__ = "post_revision"

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    body: str = Field(sa_column=Column(Text, nullable=False))
    editor_id: int
    replaced_at: datetime = Field(default_factory=utcnow)


class Reference(SQLModel, table=True):
    """A dossier number mentioned in a post (in order of appearance)."""

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    position: int = 0
    kind: str = "application"  # application | publication
    office_code: str = Field(max_length=2, index=True)
    number: str = Field(max_length=40, index=True)
    text: str = ""


class Mention(SQLModel, table=True):
    post_id: int = Field(foreign_key="post.id", primary_key=True)
    user_id: int = Field(foreign_key="user.id", primary_key=True)


class Reaction(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("post_id", "user_id", "emoji"),)

    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    emoji: str = Field(max_length=16)


class ReadState(SQLModel, table=True):
    __tablename__ = "read_state"

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    thread_id: int = Field(foreign_key="thread.id", primary_key=True)
    last_read_post_id: int = 0


class Flag(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    post_id: int = Field(foreign_key="post.id", index=True)
    user_id: int = Field(foreign_key="user.id")
    reason: str = Field(max_length=500)
    created_at: datetime = Field(default_factory=utcnow)
    resolved_at: datetime | None = None
    resolved_by: int | None = None


class Notification(SQLModel, table=True):
    __table_args__ = (UniqueConstraint("user_id", "event_id", "kind"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    event_id: int
    kind: str = Field(max_length=32)  # mention | reply | bot_error | ...
    text: str = Field(max_length=500)
    link: str = ""
    thread_id: int | None = None
    post_id: int | None = None
    created_at: datetime = Field(default_factory=utcnow)
    read_at: datetime | None = None
    #: the dossier document it is about: delivery checks it is still visible
    document_id: int | None = None
    #: the subscription that asked for it (none for mentions, replies, messages, ICE)
    subscription_id: int | None = Field(default=None, index=True)


class BotRun(SQLModel, table=True):
    """One bot's handling of one post: for rate limits and the admins' view."""

    __tablename__ = "bot_run"
    __table_args__ = (UniqueConstraint("bot", "post_id"),)

    id: int | None = Field(default=None, primary_key=True)
    bot: str = Field(max_length=64, index=True)
    post_id: int = Field(index=True)
    thread_id: int = Field(index=True)
    at: datetime = Field(default_factory=utcnow, index=True)
    status: str = Field(max_length=16)  # answered | skipped | limited | error | timeout
    error: str = ""
    answer_post_id: int | None = None
