"""Free loopback ports for the servers the tools start.

A port is "free" only in the moment it is asked for: once the probing socket
closes, the kernel may hand the same number to the next ``bind(0)``. Two
ports taken one after the other can therefore be equal, and a broker given
the same port for two listeners refuses to start (it did, in CI). So several
ports are taken while all their probing sockets are still bound, and a port
can be asked for apart from ones already chosen elsewhere.
"""

from __future__ import annotations

import socket
from collections.abc import Collection
from contextlib import ExitStack


def free_ports(count: int, *, avoid: Collection[int] = ()) -> list[int]:
    """``count`` distinct loopback TCP ports, none in ``avoid``, free a moment ago."""
    ports: list[int] = []
    with ExitStack() as held:
        while len(ports) < count:
            sock = held.enter_context(socket.socket(socket.AF_INET, socket.SOCK_STREAM))
            sock.bind(("127.0.0.1", 0))
            port = int(sock.getsockname()[1])
            if port not in avoid:
                ports.append(port)
    return ports


def free_port(*, avoid: Collection[int] = ()) -> int:
    """One loopback TCP port, not in ``avoid``, that was free a moment ago."""
    return free_ports(1, avoid=avoid)[0]
