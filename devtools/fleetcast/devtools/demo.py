"""A demo fleet: realistic events of all 14 types for a few organizations.

Units drive loops around their city and report positions; radio traffic
happens on each org's channels (start, complete, transcription, tag);
incidents open, change and close; crews get tasks; alerts fire and get
acknowledged. :class:`Fleet` is a pure, seeded simulator (tests and the
throughput benchmark use it directly); :func:`produce` writes its events to
Kafka at a steady rate, keyed by org as domain services do.

    python -m fleetcast.devtools.demo --bootstrap 127.0.0.1:9092 --rate 50
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import math
import random
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

import orjson
from aiokafka import AIOKafkaProducer

from fleetcast.protocol import events

CITIES: Final = {
    "org-metro": (40.7128, -74.0060),
    "org-harbor": (37.8044, -122.2712),
    "org-valley": (33.4484, -112.0740),
    "org-lakes": (41.8781, -87.6298),
    "org-coast": (25.7617, -80.1918),
}
CHANNELS: Final = ("ch-dispatch", "ch-fire", "ch-ems", "ch-tac-1")
UNIT_STATUSES: Final = ("available", "en_route", "on_scene", "transporting", "out_of_service")
INCIDENT_KINDS: Final = (
    "structure_fire",
    "medical",
    "traffic_collision",
    "hazmat",
    "welfare_check",
)
INCIDENT_FLOW: Final = ("dispatched", "on_scene", "contained", "closed")
ALERT_KINDS: Final = ("emergency_button", "man_down", "geofence_exit", "low_battery")
PHRASES: Final = (
    "Engine {unit} responding, ETA four minutes.",
    "{unit} on scene, smoke showing from the second floor.",
    "Dispatch, {unit}, requesting a second ambulance.",
    "{unit} clear, returning to quarters.",
    "Copy {unit}, hold at the staging area.",
)

#: Share of each kind of activity per step; positions dominate, as on a real fleet.
WEIGHTS: Final = {
    "position": 80,
    "status": 4,
    "radio": 7,
    "incident": 3,
    "task": 4,
    "alert": 2,
}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass
class Unit:
    asset_id: str
    user_id: str
    center: tuple[float, float]
    radius_km: float
    angle: float
    speed: float  # radians per step
    status: str = "available"

    def advance(self) -> dict[str, Any]:
        self.angle = (self.angle + self.speed) % (2 * math.pi)
        lat0, lon0 = self.center
        lat = lat0 + self.radius_km / 111.0 * math.sin(self.angle)
        lon = lon0 + self.radius_km / (111.0 * math.cos(math.radians(lat0))) * math.cos(self.angle)
        heading = (math.degrees(-self.angle) + 360.0) % 360.0
        return {
            "asset_id": self.asset_id,
            "lat": round(lat, 6),
            "lon": round(lon, 6),
            "heading": round(heading, 1),
            "speed_kmh": round(abs(self.speed) * self.radius_km * 3600 / 2, 1),
            "accuracy_m": 5,
        }


@dataclass
class Org:
    org_id: str
    units: list[Unit]
    #: Open lifecycles: transmission/incident/task/alert id -> what is next.
    transmissions: dict[str, tuple[int, Unit, str]] = field(default_factory=dict)
    incidents: dict[str, int] = field(default_factory=dict)
    tasks: dict[str, tuple[int, Unit, str | None]] = field(default_factory=dict)
    alerts: dict[str, Unit] = field(default_factory=dict)


class Fleet:
    """Seeded event generator: ``next()`` returns the next envelope (a dict)."""

    def __init__(self, orgs: int = 3, units_per_org: int = 20, seed: int = 7) -> None:
        self._random = random.Random(seed)
        self._ids = itertools.count(1)
        self._clock = time.time
        names = list(CITIES)[:orgs] + [f"org-{n}" for n in range(len(CITIES), orgs)]
        self.orgs = [self._org(name, units_per_org) for name in names]
        self._kinds = list(WEIGHTS)
        self._weights = list(WEIGHTS.values())

    def _org(self, name: str, count: int) -> Org:
        center = CITIES.get(name, (48.8566, 2.3522))
        rnd = self._random
        units = [
            Unit(
                asset_id=f"unit-{n:03d}",
                user_id=f"user-{n:03d}",
                center=center,
                radius_km=rnd.uniform(1.0, 8.0),
                angle=rnd.uniform(0, 2 * math.pi),
                speed=rnd.choice((-1, 1)) * rnd.uniform(0.002, 0.01),
            )
            for n in range(1, count + 1)
        ]
        return Org(name, units)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        while True:
            yield self.next()

    def next(self) -> dict[str, Any]:
        org = self._random.choice(self.orgs)
        kind = self._random.choices(self._kinds, self._weights)[0]
        event_type, data = getattr(self, f"_{kind}")(org)
        return self._envelope(org.org_id, event_type, data)

    def _envelope(self, org: str, event_type: str, data: dict[str, Any]) -> dict[str, Any]:
        rnd_bytes = self._random.getrandbits(128).to_bytes(16, "big")
        return {
            "event_id": str(uuid.UUID(bytes=rnd_bytes, version=4)),
            "event_type": event_type,
            "organization_id": org,
            "occurred_at": iso(self._clock()),
            "data": data,
        }

    def _new_id(self, prefix: str) -> str:
        return f"{prefix}-{next(self._ids)}"

    def _unit(self, org: Org) -> Unit:
        return self._random.choice(org.units)

    def _position(self, org: Org) -> tuple[str, dict[str, Any]]:
        return "asset_position_updated", self._unit(org).advance()

    def _status(self, org: Org) -> tuple[str, dict[str, Any]]:
        unit = self._unit(org)
        previous, unit.status = unit.status, self._random.choice(UNIT_STATUSES)
        data = {"asset_id": unit.asset_id, "status": unit.status, "previous_status": previous}
        return "asset_status_changed", data

    def _radio(self, org: Org) -> tuple[str, dict[str, Any]]:
        if org.transmissions and self._random.random() < 0.75:
            tx_id = self._random.choice(list(org.transmissions))
            stage, unit, channel = org.transmissions[tx_id]
            base = {"transmission_id": tx_id, "channel_id": channel}
            org.transmissions[tx_id] = (stage + 1, unit, channel)
            if stage == 0:
                duration = self._random.randint(1500, 12000)
                return "transmission_completed", {
                    **base,
                    "asset_id": unit.asset_id,
                    "duration_ms": duration,
                }
            if stage == 1:
                text = self._random.choice(PHRASES).format(unit=unit.asset_id)
                return "transcription_completed", {**base, "text": text, "confidence": 0.93}
            del org.transmissions[tx_id]
            tags = self._random.sample(["priority", "location", "resource_request", "status"], 2)
            incident = next(iter(org.incidents), None)
            return "transmission_tagged", {**base, "tags": tags, "incident_id": incident}
        unit = self._unit(org)
        tx_id, channel = self._new_id("tx"), self._random.choice(CHANNELS)
        org.transmissions[tx_id] = (0, unit, channel)
        data = {"transmission_id": tx_id, "channel_id": channel, "asset_id": unit.asset_id}
        return "transmission_started", {**data, "speaker": unit.user_id}

    def _incident(self, org: Org) -> tuple[str, dict[str, Any]]:
        if org.incidents and (len(org.incidents) > 4 or self._random.random() < 0.7):
            incident_id = self._random.choice(list(org.incidents))
            stage = org.incidents[incident_id]
            if self._random.random() < 0.5:
                units = [u.asset_id for u in self._random.sample(org.units, 2)]
                data = {"incident_id": incident_id, "assigned_assets": units, "note": "units added"}
                return "incident_updated", data
            status, previous = INCIDENT_FLOW[stage + 1], INCIDENT_FLOW[stage]
            org.incidents[incident_id] = stage + 1
            if status == "closed":
                del org.incidents[incident_id]
            data = {"incident_id": incident_id, "status": status, "previous_status": previous}
            return "incident_status_changed", data
        incident_id = self._new_id("inc")
        org.incidents[incident_id] = 0
        lat0, lon0 = org.units[0].center
        lat = round(lat0 + self._random.uniform(-0.05, 0.05), 6)
        lon = round(lon0 + self._random.uniform(-0.05, 0.05), 6)
        return "incident_created", {
            "incident_id": incident_id,
            "channel_id": self._random.choice(CHANNELS),
            "kind": self._random.choice(INCIDENT_KINDS),
            "priority": self._random.randint(1, 4),
            "status": INCIDENT_FLOW[0],
            "location": {"lat": lat, "lon": lon},
        }

    def _task(self, org: Org) -> tuple[str, dict[str, Any]]:
        if org.tasks and self._random.random() < 0.6:
            task_id = self._random.choice(list(org.tasks))
            stage, unit, incident = org.tasks[task_id]
            base = {"task_id": task_id, "user_id": unit.user_id, "incident_id": incident}
            if stage == 0:
                org.tasks[task_id] = (1, unit, incident)
                return "task_updated", {**base, "progress": "in_progress", "note": "en route"}
            del org.tasks[task_id]
            return "task_completed", {**base, "outcome": "done"}
        unit = self._unit(org)
        task_id = self._new_id("task")
        incident = next(iter(org.incidents), None)
        org.tasks[task_id] = (0, unit, incident)
        return "task_assigned", {
            "task_id": task_id,
            "user_id": unit.user_id,
            "asset_id": unit.asset_id,
            "incident_id": incident,
            "description": "Respond and report on arrival",
        }

    def _alert(self, org: Org) -> tuple[str, dict[str, Any]]:
        if org.alerts and self._random.random() < 0.5:
            alert_id = self._random.choice(list(org.alerts))
            del org.alerts[alert_id]
            return "alert_acknowledged", {"alert_id": alert_id, "acknowledged_by": "dispatcher-1"}
        unit = self._unit(org)
        alert_id = self._new_id("alert")
        org.alerts[alert_id] = unit
        return "alert_created", {
            "alert_id": alert_id,
            "asset_id": unit.asset_id,
            "kind": self._random.choice(ALERT_KINDS),
            "severity": self._random.choice(("critical", "warning", "info")),
        }


async def produce(
    producer: AIOKafkaProducer,
    fleet: Fleet,
    *,
    rate: float,
    count: int | None = None,
    duration_s: float | None = None,
    topics: dict[str, str] | None = None,
) -> int:
    """Send ``rate`` events/s (in 20 ms ticks) until ``count`` or ``duration_s``."""
    catalog = topics or events.CATALOG
    sent, started = 0, time.monotonic()
    tick = 0.02
    while (count is None or sent < count) and (
        duration_s is None or time.monotonic() - started < duration_s
    ):
        due = int((time.monotonic() - started + tick) * rate) - sent
        for envelope in itertools.islice(fleet, max(0, due)):
            key = envelope["organization_id"].encode()
            await producer.send(catalog[envelope["event_type"]], orjson.dumps(envelope), key=key)
            sent += 1
            if count is not None and sent >= count:
                break
        await asyncio.sleep(tick)
    await producer.flush()
    return sent


async def _main(args: argparse.Namespace) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=5)
    await producer.start()
    try:
        fleet = Fleet(args.orgs, args.units, args.seed)
        print(
            f"demo: {args.rate:g} events/s for {', '.join(o.org_id for o in fleet.orgs)}",
            flush=True,
        )
        await produce(producer, fleet, rate=args.rate, count=args.count, duration_s=args.duration)
    finally:
        await producer.stop()


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m fleetcast.devtools.demo", description=__doc__)
    parser.add_argument("--bootstrap", default="127.0.0.1:9092", help="Kafka bootstrap servers")
    parser.add_argument("--rate", type=float, default=50.0, help="events per second")
    parser.add_argument("--orgs", type=int, default=3)
    parser.add_argument("--units", type=int, default=20, help="units per organization")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--count", type=int, help="stop after this many events")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_main(parser.parse_args()))


if __name__ == "__main__":
    main()
