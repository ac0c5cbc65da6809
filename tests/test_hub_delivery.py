"""How the live hub hands fragments to sockets: at once to a socket with nothing
waiting, in order to one that is behind, and never held up by a socket that is slow."""

from __future__ import annotations

import asyncio

from caseforum.authz import Viewer
from caseforum.events import LocalBroker
from caseforum.forum.hub import Hub, Subscriber
from caseforum.models import Event

TOPIC = "thread:1"
VIEWER = Viewer(user_id=1, username="a", office_code="JP", role="examiner")


class Socket:
    """A client's end: records what arrives; ``hold`` makes the next send wait."""

    def __init__(self) -> None:
        self.got: list[str] = []
        self.hold: asyncio.Event | None = None

    async def send(self, html: str) -> None:
        if self.hold is not None:
            await self.hold.wait()
        self.got.append(html)


def subscriber(socket: Socket) -> Subscriber:
    sub = Subscriber(viewer=VIEWER, topics={TOPIC}, send=socket.send)
    sub.live = True
    return sub


async def dispatch(hub: Hub, event_id: int, html: str) -> None:
    event = Event(id=event_id, kind="post.created", payload={"thread_id": 1})
    await hub._dispatch(event, {TOPIC}, {TOPIC: {VIEWER}}, {(TOPIC, VIEWER): html})


def test_a_slow_socket_holds_up_no_one_and_gets_everything_in_order() -> None:
    async def scenario() -> None:
        hub = Hub(None, LocalBroker(), None, None)  # type: ignore[arg-type]
        quick, slow = Socket(), Socket()
        quick_sub, slow_sub = subscriber(quick), subscriber(slow)
        hub.subscribers |= {quick_sub, slow_sub}
        writer = asyncio.create_task(slow_sub.writer())

        # the slow socket is in the middle of a send when the next posts arrive
        slow.hold = asyncio.Event()
        slow_sub.queue.put_nowait("<p>0</p>")
        await asyncio.sleep(0)
        assert slow_sub.sending
        for k in (1, 2, 3):
            await dispatch(hub, k, f"<p>{k}</p>")
        # the quick socket has them already, sent by the hub itself
        assert quick.got == ["<p>1</p>", "<p>2</p>", "<p>3</p>"]
        assert slow.got == [] and slow_sub.queue.qsize() == 3

        slow.hold.set()
        for _ in range(10):
            await asyncio.sleep(0)
        assert slow.got == ["<p>0</p>", "<p>1</p>", "<p>2</p>", "<p>3</p>"]

        # caught up: the next fragment goes straight out again, after the others
        slow.hold = None
        await dispatch(hub, 4, "<p>4</p>")
        assert slow.got[-1] == quick.got[-1] == "<p>4</p>"
        slow_sub.end(1000, "done")
        await writer

    asyncio.run(scenario())


def test_an_event_is_sent_once_even_when_dispatched_twice() -> None:
    async def scenario() -> None:
        hub = Hub(None, LocalBroker(), None, None)  # type: ignore[arg-type]
        socket = Socket()
        hub.subscribers.add(subscriber(socket))
        await dispatch(hub, 7, "<p>7</p>")
        await dispatch(hub, 7, "<p>7</p>")
        await dispatch(hub, 6, "<p>6</p>")  # older than what the socket has
        assert socket.got == ["<p>7</p>"]

    asyncio.run(scenario())


def test_a_send_that_fails_ends_the_socket_through_its_writer() -> None:
    async def scenario() -> None:
        hub = Hub(None, LocalBroker(), None, None)  # type: ignore[arg-type]

        async def gone(html: str) -> None:
            raise ConnectionResetError("the client went away")

        sub = Subscriber(viewer=VIEWER, topics={TOPIC}, send=gone)
        sub.live = True
        hub.subscribers.add(sub)
        await dispatch(hub, 1, "<p>1</p>")
        # the failed fragment waits for the writer, which meets the same error: the
        # websocket handler then closes the socket and unsubscribes it
        assert sub.queue.qsize() == 1
        writer = asyncio.create_task(sub.writer())
        done, _ = await asyncio.wait({writer}, timeout=1)
        assert done and isinstance(writer.exception(), ConnectionResetError)

    asyncio.run(scenario())
