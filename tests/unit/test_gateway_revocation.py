"""What control messages do on a gateway (edge/revocation.py), with fakes for Redis and closes."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Coroutine
from typing import Any

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.clients import Client, Clients
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.edge.revocation import Revocations
from fleetcast.gateway.metrics import Metrics
from fleetcast.gateway.rooms.registry import Connection, Registry
from fleetcast.gateway.transport.packets import Frame
from fleetcast.protocol import control

NOW = 1_800_000_000.0


class Closer:
    def __init__(self) -> None:
        self.cut: list[tuple[str, str]] = []

    def cut_off(self, conn: Connection, reason: str) -> None:
        self.cut.append((conn.sid, reason))


class Sender:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str, Any]] = []

    def push(self, conn: Connection, frame: Frame) -> None:
        name, payload = json.loads(frame.text[1:])
        self.sent.append((conn.sid, name, payload))


class Reader:
    def __init__(self) -> None:
        self.entries: list[tuple[str, float]] = []
        self.log: list[bytes] = []

    async def revoked(self, now: float) -> list[tuple[str, float]]:
        return self.entries

    async def log_after(self, last_id: str | None) -> tuple[str | None, list[bytes]]:
        return ("9-0", []) if last_id is None else ("9-0", self.log)


class Setup:
    def __init__(self) -> None:
        self.clients, self.registry = Clients(), Registry()
        self.closer, self.sender, self.reader = Closer(), Sender(), Reader()
        self.tasks: list[asyncio.Task[Any]] = []
        self.revocations = Revocations(
            self.clients, self.registry, self.closer, self.sender, self.reader, Metrics(),
            spawn=self.spawn, clock=lambda: NOW,
        )  # fmt: skip

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        self.tasks.append(asyncio.get_running_loop().create_task(coro))

    def client(self, sid: str, user: str, *rooms: str, jti: str | None = None) -> Client:
        conn = Connection(sid, "e" + sid, "o1", user, 0.0, open=True)
        claims = Claims(user, "o1", ("dispatcher",), exp=NOW + 3600, jti=jti, iat=NOW - 10)
        client = Client(conn, claims, deadline=NOW + 3600, requests=TokenBucket(1, 1, 0))
        self.clients.add(client)
        self.registry.add(conn)
        for room in rooms:
            self.registry.join(conn, room)
        return client

    def message(self, **fields: Any) -> bytes:
        doc = {"v": 1, "org": "o1", "at": NOW, **fields}
        return b"5-0 " + control.encode(control.parse(doc, now=NOW))


def test_a_revoked_user_is_cut_off_here_and_refused_at_the_next_handshake() -> None:
    s = Setup()
    mine, other = s.client("a", "u1"), s.client("b", "u2")
    s.revocations.on_message(s.message(action="revoke", user="u1", reason="stolen"))
    assert s.closer.cut == [("a", "revoked")]
    assert s.revocations.refuses(mine.claims)
    assert not s.revocations.refuses(other.claims)


def test_a_jti_or_a_session_revoke_cuts_only_what_it_names() -> None:
    s = Setup()
    s.client("a", "u1", jti="t-1")
    s.client("b", "u1", jti="t-2")
    s.revocations.on_message(s.message(action="revoke", jti="t-2"))
    s.revocations.on_message(s.message(action="revoke", session="a"))
    assert s.closer.cut == [("b", "revoked"), ("a", "revoked")]


def test_a_withdrawn_room_is_left_and_the_client_told_once() -> None:
    s = Setup()
    unit = s.client("a", "u1", "incident:i1:org:o1", "org:o1")
    s.client("b", "u2", "incident:i1:org:o1")
    s.revocations.on_message(
        s.message(action="withdraw", room="incident:i1", user="u1", reason="reassigned")
    )
    assert "incident:i1:org:o1" not in unit.conn.rooms
    assert unit.withdrawn == {"incident:i1:org:o1"}
    assert s.sender.sent == [
        ("a", "access_changed", {"rooms": ["incident:i1"], "reason": "reassigned"})
    ]
    assert list(s.registry.members("incident:i1:org:o1")) == ["b"]


async def test_after_a_break_the_list_is_reloaded_and_what_was_missed_replayed() -> None:
    s = Setup()
    s.client("a", "u1", "channel:c1:org:o1")
    s.client("b", "u2")
    s.revocations.connected(1)  # the first connection: learn where the log ends
    await asyncio.gather(*s.tasks)
    s.reader.entries = [(f"user:o1:u2:{NOW:.3f}", NOW + 60)]  # revoked while we were away
    s.reader.log = [control.encode(control.parse(
        {"v": 1, "action": "withdraw", "org": "o1", "room": "channel:c1"}, now=NOW
    ))]  # fmt: skip
    s.revocations.connected(2)
    await asyncio.gather(*s.tasks)
    assert ("b", "revoked") in s.closer.cut
    assert [(sid, name) for sid, name, _ in s.sender.sent] == [("a", "access_changed")]
