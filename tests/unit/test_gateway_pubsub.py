"""The gateway's Redis side without Redis: the subscription book, the listener through its
hooks, and the canary's rule that a failed probe only condemns the connection it probed."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import pytest

from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.redis.book import SubscriptionBook
from fleetcast.gateway.redis.canary import Canary, Echoes
from fleetcast.gateway.redis.listener import Listener
from fleetcast.protocol import keys

CANARY = keys.canary_channel("gw")


def test_the_book_counts_clients_per_org() -> None:
    book = SubscriptionBook()
    assert book.want("o1") is True
    assert book.want("o1") is False
    assert book.want("o2") is True
    assert book.orgs == ["o1", "o2"]
    assert book.unwant("o1") is False
    assert book.unwant("o1") is True
    assert book.channels() == [keys.org_channel("o2")]
    book.subscribed = {CANARY, keys.org_channel("o2")}
    assert book.org_channels_held() == 1


class FakeReader:
    def __init__(self, replies: asyncio.Queue[Any]) -> None:
        self._replies = replies

    async def read(self, wait_s: float) -> list[Any]:
        try:
            async with asyncio.timeout(wait_s):
                reply = await self._replies.get()
        except TimeoutError:
            return []
        if isinstance(reply, Exception):
            raise reply
        return [reply]


class FakePubSub:
    async def handle_message(self, reply: Any) -> dict[str, Any]:
        return {"type": reply[0].decode(), "channel": reply[1]}

    async def aclose(self) -> None:
        pass


class HookedListener(Listener):
    """A Listener whose I/O hooks record and feed, instead of talking to Redis."""

    def __init__(self, **kwargs: Any) -> None:
        self.received: list[tuple[str, bytes]] = []
        self.canary: list[bytes] = []
        super().__init__(
            None,
            Metrics(),
            sink=lambda org, data: self.received.append((org, data)),
            channels={CANARY: self.canary.append},
            backoff_max_s=0.05,
            **kwargs,
        )
        self.replies: asyncio.Queue[Any] = asyncio.Queue()
        self.connects: list[list[str]] = []
        self.calls: list[tuple[str, list[str]]] = []

    async def _connect(self, channels: Sequence[str]) -> Any:
        self.connects.append(list(channels))
        for channel in channels:
            self.replies.put_nowait((b"subscribe", channel.encode(), 1))
        return FakePubSub()

    async def _subscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        self.calls.append(("subscribe", list(channels)))
        for channel in channels:
            self.replies.put_nowait((b"subscribe", channel.encode(), 1))

    async def _unsubscribe(self, pubsub: Any, channels: Sequence[str]) -> None:
        self.calls.append(("unsubscribe", list(channels)))

    def _reader(self, pubsub: Any) -> Any:
        return FakeReader(self.replies)


async def until(condition: Any, what: str) -> None:
    for _ in range(200):
        if condition():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
async def running() -> Any:
    generations: list[int] = []
    listener = HookedListener(on_connected=[generations.append])
    task = asyncio.create_task(listener.run())
    await until(lambda: listener.connected, "first connection")
    yield listener, generations
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def test_first_client_subscribes_last_one_unsubscribes(running: Any) -> None:
    listener, _ = running
    await listener.acquire("o1")
    await listener.acquire("o1")
    await listener.release("o1")
    assert listener.calls == [("subscribe", [keys.org_channel("o1")])]
    await listener.release("o1")
    assert listener.calls[-1] == ("unsubscribe", [keys.org_channel("o1")])
    assert listener.orgs == []


async def test_messages_go_to_the_sink_by_org_and_canaries_to_their_handler(running: Any) -> None:
    listener, _ = running
    await listener.acquire("o1")
    listener.replies.put_nowait((b"message", keys.org_channel("o1").encode(), b"payload"))
    listener.replies.put_nowait((b"message", CANARY.encode(), b"7"))
    await until(lambda: listener.received and listener.canary, "both messages")
    assert listener.received == [("o1", b"payload")]
    assert listener.canary == [b"7"]


async def test_a_new_connection_subscribes_every_org_still_wanted(running: Any) -> None:
    listener, generations = running
    await listener.acquire("o1")
    await listener.acquire("o2")
    listener.replies.put_nowait(ConnectionError("redis went away"))
    await until(lambda: len(listener.connects) == 2 and listener.connected, "reconnection")
    assert sorted(listener.connects[1]) == sorted(
        [CANARY, keys.org_channel("o1"), keys.org_channel("o2")]
    )
    assert generations == [1, 2]


async def test_a_reset_for_an_older_connection_is_ignored(running: Any) -> None:
    listener, _ = running
    listener.replies.put_nowait(ConnectionError("redis went away"))
    await until(lambda: listener.generation == 2 and listener.connected, "reconnection")
    listener.reset(1, RuntimeError("stale canary"))
    await asyncio.sleep(0.6)  # longer than the listener's read tick
    assert listener.generation == 2
    assert len(listener.connects) == 2
    listener.reset(2, RuntimeError("canary lost"))
    await until(lambda: listener.generation == 3, "the reset connection replaced")


class Commands:
    """Publishes canaries into a fake listener (or loses them)."""

    def __init__(self, echoes: Echoes, *, deliver: bool) -> None:
        self.echoes, self.deliver = echoes, deliver

    async def publish(self, channel: str, token: str) -> int:
        if self.deliver:
            asyncio.get_running_loop().call_soon(self.echoes.back, token.encode())
        return 1


class Probed:
    def __init__(self) -> None:
        self.connected, self.generation, self.handled = True, 1, 0
        self.resets: list[int] = []
        self._changed = asyncio.Event()

    def reset(self, generation: int, why: BaseException) -> None:
        self.resets.append(generation)

    async def changed(self, after: int) -> None:
        while self.generation <= after:
            self._changed.clear()
            await self._changed.wait()

    def reconnect(self) -> None:
        self.generation += 1
        self._changed.set()


async def test_the_canary_proves_the_current_connection_and_resets_only_the_one_it_probed() -> None:
    echoes, listener = Echoes(), Probed()
    commands = Commands(echoes, deliver=True)
    canary = Canary(
        commands, listener, echoes, Metrics(), channel=CANARY, interval_s=0.05, timeout_s=0.02
    )
    task = asyncio.create_task(canary.run())
    try:
        await until(lambda: canary.healthy, "a first good canary")
        commands.deliver = False
        await until(lambda: listener.resets, "a lost canary")
        assert set(listener.resets) == {1}  # the connection it probed
        listener.reconnect()
        commands.deliver = True
        await until(lambda: canary.healthy, "the new connection proven")
        assert set(listener.resets) == {1}  # never the one that replaced it
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


class FailingCommands:
    async def publish(self, channel: str, token: str) -> int:
        raise ConnectionError("the commands connection broke, not the subscriber")


async def test_a_canary_that_cannot_be_sent_drops_nothing() -> None:
    echoes, listener = Echoes(), Probed()
    canary = Canary(
        FailingCommands(), listener, echoes, Metrics(), channel=CANARY, interval_s=0.05,
        timeout_s=0.02,
    )  # fmt: skip
    task = asyncio.create_task(canary.run())
    try:
        await asyncio.sleep(0.3)
        assert not canary.healthy
        assert listener.resets == []
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
