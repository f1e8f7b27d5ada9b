"""Free ports for the tools' servers: distinct, and apart from ones chosen elsewhere.

CI once started a broker whose two listeners got the same port: two
``bind(0)`` probes, one after the other, were handed the same number.
"""

from __future__ import annotations

import socket

from fleetcast.devtools.ports import free_port, free_ports


def test_ports_taken_together_are_distinct() -> None:
    for _ in range(50):
        ports = free_ports(5)
        assert len(set(ports)) == 5


def test_a_port_is_never_one_to_avoid() -> None:
    # Ask for the very number the kernel just handed out, many times over:
    # without ``avoid`` some of these would repeat it.
    for _ in range(50):
        taken = free_port()
        assert free_port(avoid={taken}) != taken


def test_the_ports_are_free_once_returned() -> None:
    for port in free_ports(3):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind(("127.0.0.1", port))
