"""The scenarios ``python -m bench`` knows, by name, in the order a full run takes them.

Modules are imported only when their scenario runs, so a scenario whose
component has not landed yet (no consumer, no Kafka) fails alone, in its own
section of the report, instead of breaking the others.
"""

from __future__ import annotations

import importlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

if TYPE_CHECKING:
    from bench.context import Context
    from bench.results import ScenarioResult


@dataclass(frozen=True, slots=True)
class Scenario:
    name: str
    title: str
    #: One paragraph for the report: what is measured and how.
    about: str
    #: Fills the result it is given, so what was measured before a failure is kept.
    run: Callable[[Context, ScenarioResult], Awaitable[None]]


#: name -> module holding ``SCENARIO``; insertion order is the run order.
MODULES: Final = {
    "fanout": "bench.scenarios.fanout",
    "mix": "bench.scenarios.mix",
    "whole-path": "bench.scenarios.whole_path",
    "consumer": "bench.scenarios.consumer",
    "two-gateways": "bench.scenarios.two_gateways",
    "city-steady": "bench.scenarios.city_steady",
    "city-peak": "bench.scenarios.city_peak",
    "city-storm": "bench.scenarios.city_storm",
    "storm-pod": "bench.scenarios.storm_pod",
    "connect-storm": "bench.scenarios.connect_storm",
    "cluster": "bench.scenarios.cluster",
    "state-connect": "bench.scenarios.state_connect",
    "tracing": "bench.scenarios.tracing",
    "receipts": "bench.scenarios.receipts",
}


def names() -> list[str]:
    return list(MODULES)


def load(name: str) -> Scenario:
    if name not in MODULES:
        raise KeyError(f"unknown scenario {name!r} (known: {', '.join(MODULES)})")
    scenario: Scenario = importlib.import_module(MODULES[name]).SCENARIO
    return scenario
