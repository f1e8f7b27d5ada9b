"""What the edge keeps per connection: its token, its deadline and its request budget.

The room table (rooms/registry.py) knows a connection by sid, org and user;
what its token grants, when it must go and how fast it may ask for rooms is
the edge's business and lives here, one :class:`Client` per connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.limits import TokenBucket
from fleetcast.gateway.rooms.registry import Connection


@dataclass(slots=True, eq=False)
class Client:
    """One connection as the edge sees it."""

    conn: Connection
    claims: Claims
    #: Wall clock: when the connection must go (token exp + leeway).
    deadline: float
    #: subscribe/unsubscribe requests it may still make (rate_limited beyond).
    requests: TokenBucket
    #: Wall clock: when the session must end whatever its token says
    #: (connected_at + FLEETCAST_MAX_SESSION_AGE_S); refresh cannot move it.
    session_deadline: float = float("inf")
    #: Outcome of the recoveries asked at connect (auth ``since``), for ``session``.
    recovered: dict[str, bool] | None = None
    #: Rooms asked at connect that it may not join, with why.
    refused: dict[str, dict[str, Any]] | None = None
    #: State snapshots sent at connect: records per kind (for ``session``).
    state: dict[str, int] | None = None
    #: Rooms taken from it (a withdraw control message): it may not join them again.
    withdrawn: set[str] = field(default_factory=set)
    #: Receipts it may still send (edge/receipts.py; made at its first receipt).
    receipt_budget: TokenBucket | None = None
    #: Receipts accepted from it ("delivery_id/kind"): a repeat is not written twice.
    answered: set[str] | None = None

    @property
    def sid(self) -> str:
        return self.conn.sid


class Clients:
    """The edge's clients by sid."""

    def __init__(self) -> None:
        self._by_sid: dict[str, Client] = {}

    def __len__(self) -> int:
        return len(self._by_sid)

    def __iter__(self) -> Iterator[Client]:
        return iter(list(self._by_sid.values()))

    def add(self, client: Client) -> None:
        self._by_sid[client.sid] = client

    def get(self, sid: str) -> Client | None:
        return self._by_sid.get(sid)

    def remove(self, sid: str) -> Client | None:
        return self._by_sid.pop(sid, None)
