"""socket.io-client's reconnection backoff, shared by the storm and the connect-storm clients.

The first retry waits ``delay_s``, each further failed attempt doubles it up
to ``max_s``, and every wait is randomized by ±``randomization`` (its
defaults: reconnectionDelay 1000, reconnectionDelayMax 5000,
randomizationFactor 0.5). A crowd of clients that failed together then comes
back spread out, not in lockstep: a storm's real shape.
"""

from __future__ import annotations

import random
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Backoff:
    delay_s: float = 1.0
    max_s: float = 5.0
    randomization: float = 0.5

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait before the next attempt after ``failures`` failed ones."""
        base = min(self.max_s, self.delay_s * 2.0**failures)
        return base * rng.uniform(1 - self.randomization, 1 + self.randomization)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)
