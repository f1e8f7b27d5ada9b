"""The library internals the fast path relies on (transport/internals.py) are all there.

When a python-engineio, python-socketio, aiohttp or redis-py upgrade removes
or reshapes one, this fails naming the symbol, the module of ours that uses
it and why, instead of the gateway misbehaving in some later test or in use.
"""

from __future__ import annotations

from engineio import async_socket

from fleetcast.gateway.transport import engine, internals


def test_every_internal_the_fast_path_relies_on_is_there() -> None:
    problems = internals.missing()
    assert not problems, "library internals changed:\n  " + "\n  ".join(problems)


def test_the_check_names_what_is_gone() -> None:
    gone = internals.Internal("engineio.async_socket:AsyncSocket.nope", "x.py", "because")
    assert internals._check(gone) == "attribute nope is gone"
    moved = internals.Internal(
        "engineio.async_socket:AsyncSocket.receive", "x.py", "because", ("self", "packet")
    )
    assert "parameters are ('self', 'pkt')" in (internals._check(moved) or "")


def test_a_socket_stored_by_the_server_becomes_a_lean_socket() -> None:
    """engineio stores new sockets with ``self.sockets[sid] = s``; the table re-classes them."""
    server = engine.LeanEngineIO(async_mode="aiohttp")
    sock = async_socket.AsyncSocket(server, "s1")
    server.sockets["s1"] = sock
    assert type(server.sockets["s1"]) is engine.LeanSocket
    assert server.outlet("s1") is sock.queue
