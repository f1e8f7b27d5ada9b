"""Which org channels the gateway wants and which its pub/sub connection has: pure bookkeeping.

The gateway listens to an org's channel while it has local clients of that
org: the first client's connect subscribes, the last one's disconnect
unsubscribes, so its Redis ingress grows with the orgs it serves. The book
counts clients per org and remembers what the current connection has
subscribed; the listener (listener.py) does the I/O it decides.
"""

from __future__ import annotations

from collections import Counter

from fleetcast.protocol import keys


class SubscriptionBook:
    """Clients per org (wanted) and the channels the current connection holds (subscribed)."""

    def __init__(self) -> None:
        self._wanted: Counter[str] = Counter()
        self.subscribed: set[str] = set()

    @property
    def orgs(self) -> list[str]:
        """Orgs with local clients, sorted."""
        return sorted(self._wanted)

    def wants(self, org: str) -> bool:
        return org in self._wanted

    def want(self, org: str) -> bool:
        """One more client of ``org``; True when it is the first (subscribe now)."""
        self._wanted[org] += 1
        return self._wanted[org] == 1

    def unwant(self, org: str) -> bool:
        """One client of ``org`` fewer; True when it was the last (unsubscribe now)."""
        if self._wanted[org] > 1:
            self._wanted[org] -= 1
            return False
        self._wanted.pop(org, None)
        return True

    def channels(self) -> list[str]:
        """Every wanted org channel: what a new connection subscribes to."""
        return [keys.org_channel(org) for org in self._wanted]

    def org_channels_held(self) -> int:
        """Org channels the current connection holds (the subscribed_orgs gauge)."""
        return sum(1 for channel in self.subscribed if keys.org_of_channel(channel) is not None)
