"""What the counting client makes of each message of the resume protocol (no server).

The handlers are fed the payloads a gateway sends; what the client records
and the ``since`` it would resume with are checked.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.harness.counting_client import ClientSpec, CountingClient, parse_offset

SPEC = ClientSpec("c0", "user-01", "org-a", ("dispatcher",), ("channel:ch-1", "asset:unit-01"))
ROOMS = ("org", "user:user-01", "channel:ch-1", "asset:unit-01")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def client(clock: Clock) -> CountingClient:
    return CountingClient(SPEC, ["http://127.0.0.1:1", "http://127.0.0.1:2"], clock=clock)


def feed(client: CountingClient, name: str, data: Any) -> None:
    client._on_event(name, data, asyncio.get_running_loop().create_future())


def event(event_id: str, room: str, offset: str, **extra: Any) -> dict[str, Any]:
    return {"event_id": event_id, "event_type": "alert_created", "organization_id": "org-a",
            "occurred_at": "2026-11-25T18:00:00Z", "data": {}, "room": room, "offset": offset,
            **extra}  # fmt: skip


def test_offsets_compare_as_integer_pairs() -> None:
    assert parse_offset("1732550400000-3") == (1732550400000, 3)
    assert parse_offset("9-10") > parse_offset("9-9")  # type: ignore[operator]
    assert parse_offset("10-0") > parse_offset("9-99")  # type: ignore[operator]
    for bad in ("", "12", "a-1", "1-b", None, 7, "1-2-3"):
        assert parse_offset(bad) is None


async def test_the_greatest_offset_of_each_room_is_kept(client: CountingClient) -> None:
    feed(client, "alert_created", event("e1", "org", "10-5"))
    feed(client, "alert_created", event("e2", "org", "9-99"))  # older: a replay out of order
    feed(client, "alert_created", event("e3", "channel:ch-1", "10-10"))
    assert client.offsets == {"org": (10, 5), "channel:ch-1": (10, 10)}
    assert set(client.record.received) == {"e1", "e2", "e3"}
    assert client.record.received["e1"][0] == (100.0, "org")


async def test_the_offsets_map_names_every_history_room_of_the_event(
    client: CountingClient,
) -> None:
    offsets = {"asset:unit-01": "20-1", "org": "21-4"}
    feed(client, "alert_created", event("e1", "asset:unit-01", "20-1", offsets=offsets))
    assert client.offsets == {"asset:unit-01": (20, 1), "org": (21, 4)}


async def test_a_resync_announces_its_rooms_unless_recovered(
    client: CountingClient, clock: Clock
) -> None:
    feed(client, "resync", {"rooms": ["channel:ch-1", "org"], "reason": "x", "recovered": False})
    clock.now = 101.0
    feed(client, "resync", {"rooms": ["asset:unit-01"], "reason": "y", "recovered": True})
    assert client.record.resyncs == 2
    assert client.record.announced == {
        "channel:ch-1:org:org-a": [100.0],
        "org:org-a": [100.0],
    }


async def test_resuming_names_every_room_and_marks_those_without_an_offset(
    client: CountingClient, clock: Clock
) -> None:
    feed(client, "alert_created", event("e1", "org", "10-5"))
    feed(client, "alert_created", event("e2", "channel:ch-1", "11-0"))
    auth = client._auth(resuming=True)
    assert auth["since"] == {"org": "10-5", "channel:ch-1": "11-0"}
    assert set(client.record.unresumable) == {"user:user-01:org:org-a", "asset:unit-01:org:org-a"}
    assert "since" not in client._auth(resuming=False)


async def test_a_session_that_did_not_recover_a_room_announces_it(
    client: CountingClient, clock: Clock
) -> None:
    session = {"rooms": list(ROOMS), "recovered": {"org": True, "channel:ch-1": False}}
    await client._join(None, session)  # every room joined: no request sent
    assert client.record.announced == {"channel:ch-1:org:org-a": [100.0]}


async def test_a_room_refused_at_connect_is_recorded(client: CountingClient) -> None:
    session = {"rooms": list(ROOMS[:3]), "refused": {"asset:unit-01": {"code": "forbidden"}}}
    await client._join(None, session)
    assert client.record.refusals == ["asset:unit-01: {'code': 'forbidden'}"]


async def test_notices_and_frames_that_are_not_events_are_not_deliveries(
    client: CountingClient,
) -> None:
    feed(client, "disconnect_reason", {"code": "draining", "reconnect": True})
    feed(client, "asset_positions", {"positions": []})
    feed(client, "session", {"rooms": []})
    assert client.notices == [{"code": "draining", "reconnect": True}]
    assert client.record.received == {}
