"""Subscriptions, channel choices, deliveries and webhook endpoints."""

from datetime import datetime

from sqlalchemy import UniqueConstraint
from sqlmodel import Field, SQLModel

from caseforum.models.base import utcnow


class Subscription(SQLModel, table=True):
    """One user following one thing.  ``target`` is the followed object's key as
    text: an application or family id, an office code, a thread or category id."""

    __table_args__ = (UniqueConstraint("user_id", "kind", "target", "for_office"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    #: an office default (set by its administrator): it applies to every user of
    #: that office who has no subscription of their own on the target
    for_office: str = Field(default="", max_length=2, index=True)
    kind: str = Field(max_length=16, index=True)  # application|family|office|thread|category
    target: str = Field(max_length=64, index=True)
    label: str = Field(default="", max_length=300)
    documents: str = Field(default="all", max_length=16)  # search|examination|all
    direction: str = Field(default="all", max_length=16)  # incoming|outgoing|all
    level: str = Field(default="watching", max_length=16)  # watching|tracking|muted
    channels: str = Field(default="inapp", max_length=200)  # names, space-separated
    created_at: datetime = Field(default_factory=utcnow)

    @property
    def channel_list(self) -> list[str]:
        return [c for c in self.channels.split() if c]


class ChannelChoice(SQLModel, table=True):
    """The channels a user wants for one kind of notification (mention, reply,
    message, or a subscription kind); no row: the in-app bell only."""

    __tablename__ = "channel_choice"

    user_id: int = Field(foreign_key="user.id", primary_key=True)
    kind: str = Field(max_length=16, primary_key=True)
    channels: str = Field(default="inapp", max_length=200)


class Delivery(SQLModel, table=True):
    """One notification handed to one channel (and endpoint): the unique key is
    what makes a delivery happen at most once per pair, the state what makes it
    happen at least once."""

    __table_args__ = (UniqueConstraint("notification_id", "channel", "endpoint_id"),)

    id: int | None = Field(default=None, primary_key=True)
    notification_id: int = Field(index=True)
    user_id: int = Field(index=True)
    channel: str = Field(max_length=32)
    endpoint_id: int = 0
    #: pending | sending | sent | failed | dropped (no longer visible, unsubscribed)
    state: str = Field(default="pending", max_length=16, index=True)
    attempts: int = 0
    due_at: datetime = Field(default_factory=utcnow, index=True)
    lease_until: datetime | None = None
    last_error: str = Field(default="", max_length=500)
    sent_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)


class WebhookEndpoint(SQLModel, table=True):
    """Where the webhook channel posts a user's notifications, signed with its secret."""

    __tablename__ = "webhook_endpoint"

    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="user.id", index=True)
    url: str = Field(max_length=500)
    secret: str = Field(max_length=100)
    active: bool = True
    failures: int = 0  # consecutive
    last_error: str = Field(default="", max_length=500)
    last_success_at: datetime | None = None
    disabled_at: datetime | None = None
    created_at: datetime = Field(default_factory=utcnow)
