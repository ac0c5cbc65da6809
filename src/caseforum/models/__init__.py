"""SQLModel tables.  Importing this package registers every core table."""

from caseforum.models.account import ApiToken, LoginFailure, User, UserSession
from caseforum.models.base import utcnow
from caseforum.models.dossier import (
    AccessLog,
    Application,
    Citation,
    Document,
    DocumentOffice,
    Family,
    IdempotencyRecord,
    ImportRecord,
    Priority,
    Visibility,
)
from caseforum.models.events import AccountAudit, ConsumerCursor, Event
from caseforum.models.forum import (
    BotRun,
    Category,
    Flag,
    Mention,
    Notification,
    OfficeGroup,
    Post,
    PostRevision,
    Reaction,
    ReadState,
    Reference,
    Thread,
    ThreadParticipant,
)
from caseforum.models.notify import ChannelChoice, Delivery, Subscription, WebhookEndpoint
from caseforum.models.office import Office
from caseforum.models.plugin_state import PluginState
from caseforum.models.remote import RemoteDocument, RemoteDossier

__all__ = [
    "BotRun",
    "ChannelChoice",
    "Delivery",
    "Subscription",
    "WebhookEndpoint",
    "Category",
    "Flag",
    "Mention",
    "Notification",
    "OfficeGroup",
    "Post",
    "PostRevision",
    "Reaction",
    "ReadState",
    "Reference",
    "Thread",
    "ThreadParticipant",
    "AccessLog",
    "Application",
    "Citation",
    "Document",
    "DocumentOffice",
    "Family",
    "IdempotencyRecord",
    "ImportRecord",
    "Priority",
    "Visibility",
    "AccountAudit",
    "ApiToken",
    "ConsumerCursor",
    "Event",
    "LoginFailure",
    "Office",
    "PluginState",
    "RemoteDocument",
    "RemoteDossier",
    "User",
    "UserSession",
    "utcnow",
]
