"""Pieces several scenarios share: broadcast clients and events, warm-up."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from bench import events, measure, tokens
from bench.context import Context
from bench.loadgen.client import ClientSpec
from bench.loadgen.control import LoadGen
from bench.publish import Publisher
from bench.results import ScenarioResult
from bench.servers import Server
from fleetcast.protocol import rooms

CHANNEL = "ch-1"


def client_specs(count: int, org: str, channel: str = CHANNEL) -> list[ClientSpec]:
    """K dispatchers of one org, each in the org, own user and one channel room."""
    channel_room = rooms.Room(rooms.RoomKind.CHANNEL, org, channel).name
    specs = []
    for i in range(count):
        user = f"fan-{i}"
        specs.append(
            ClientSpec(
                token=tokens.token(user, org, ["dispatcher"]),
                subscribe=(f"channel:{channel}",),
                rooms=(rooms.org_room(org).name, rooms.user_room(user, org).name, channel_room),
            )
        )
    return specs


def batch(count: int, org: str, channel: str = CHANNEL) -> list[events.BenchEvent]:
    return [events.transmission(seq, org, channel) for seq in range(count)]


def clamp(value: float, bounds: tuple[int, int]) -> int:
    return max(bounds[0], min(bounds[1], round(value)))


def redis_fed(ctx: Context, result: ScenarioResult) -> tuple[str, ...]:
    """The servers of this run a scenario fed through fleetcast's Redis wire can drive.

    Centrifugo is published to through its own API, which the fan-out, mix
    and connect-storm scenarios do; elsewhere it is left out, and the report
    says so.
    """
    names = tuple(n for n in ctx.options.servers if n != "centrifugo")
    if len(names) < len(ctx.options.servers):
        result.notes.append(
            "centrifugo is measured in the fanout, mix and connect-storm scenarios only (so far)"
        )
    return names


async def warm_up(server: Server, loadgen: LoadGen, publisher: Publisher) -> None:
    """A few clients and events before anything is measured: imports, caches, code paths.

    The RSS baseline is read after this, so one-time costs are not charged
    to connections.
    """
    org = "org-warm"
    specs = client_specs(20, org=org)
    await loadgen.connect(server.host, server.port, server.path, specs, protocol=server.protocol)
    await measure.prime(loadgen, specs, batch(1, org=org)[0], publisher.burst)
    warm = batch(20, org=org)
    await loadgen.arm(len(warm))
    await publisher.burst(warm)
    await loadgen.wait_for(measure.expected_deliveries(specs, warm), deadline_s=5.0, idle_s=1.0)
    await loadgen.close_all()
    await asyncio.sleep(1.0)  # let the server finish the disconnects before RSS is read


async def prepare(
    result: ScenarioResult,
    server: Server,
    loadgen: LoadGen,
    specs: Sequence[ClientSpec],
    primers: Sequence[events.BenchEvent],
    publisher: Publisher,
    send: Callable[[Sequence[events.BenchEvent]], Awaitable[int]] | None = None,
) -> bool:
    """Warm up, connect ``specs`` (recording the connection figures), then prime.

    One priming event per org makes sure every org channel is live end to end
    (through ``send``, the publisher's burst by default) before anything counts.
    ``False`` when some org's clients received nothing at all: measuring
    phases then would only time out, so the caller skips them (with a note).
    """
    await warm_up(server, loadgen, publisher)
    result.connections.append(await measure.connect(result.name, server, loadgen, specs))
    deliverable = True
    for event in primers:
        got = await measure.prime(loadgen, specs, event, send or publisher.burst)
        want = measure.expected_deliveries(specs, [event])
        if got < want:
            result.notes.append(
                f"{server.name} K={len(specs):,}: {got:,}/{want:,} clients of {event.org} "
                f"received its priming event after {measure.PRIME_ATTEMPTS} attempts"
                + ("; its phases were skipped" if not got else "")
            )
            deliverable = deliverable and got > 0
    return deliverable


def about(doc: str | None) -> str:
    """A scenario module's docstring minus its title line: the report's paragraph."""
    body = (doc or "").split("\n\n", 1)[-1]
    return " ".join(body.split())
