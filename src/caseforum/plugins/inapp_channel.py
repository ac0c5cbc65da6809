"""The in-app bell as a notification channel.

It is *immediate*: the notifier calls it inside the transaction that stores the
notification (it only writes to the database), so the bell and the live count
move the moment the event is handled.  Switch the plugin off and notifications
are still kept on the notifications page, but the bell stays quiet.
"""

from typing import Any

from caseforum import hookimpl
from caseforum.channels import Outgoing
from caseforum.forum.notify import put_in_bells


class InAppChannel:
    name = "inapp"
    label = "In-app bell"
    immediate = True

    def deliver(self, outgoing: Outgoing) -> None:
        self.deliver_many([outgoing])

    def deliver_many(self, outgoing: list[Outgoing]) -> None:
        """All of one event's notes at once: one ``UPDATE`` and one event."""
        session = outgoing[0].session
        assert session is not None, "an immediate channel runs in the notifier"
        put_in_bells(session, [o.notification for o in outgoing])


CHANNEL = InAppChannel()


@hookimpl
def register_notification_channels() -> list[Any]:
    return [CHANNEL]
