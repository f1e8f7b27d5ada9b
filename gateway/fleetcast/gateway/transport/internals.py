"""Every library internal the gateway's fast path relies on, in one list, checked by a test.

The fast path (half of Node.js socket.io's CPU per delivery, a fifth of its
memory per connection) replaces pieces of python-engineio, python-socketio,
aiohttp and redis-py from the inside. That is a fair price only while an
upgrade that changes one of those pieces fails loudly. So each one is named
here, with the module of ours that uses it and why; :func:`missing` checks
them against the installed libraries and tests/unit/test_gateway_internals.py
fails with these names when one is gone or its signature changed. pyproject.toml
bounds each library to the minor versions this list was checked against.

Nothing outside transport/ touches a library internal.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any, Final


@dataclass(frozen=True, slots=True)
class Internal:
    """One private (or undocumented) symbol, where we use it and why."""

    #: ``module:Qualified.name`` (a class attribute) or ``module:Class().attribute``
    #: (an attribute of an instance, checked on a fresh instance).
    path: str
    #: Our module that relies on it.
    user: str
    why: str
    #: For callables: the parameter names, in order (``self`` included).
    params: tuple[str, ...] | None = None


RELIED_ON: Final = (
    Internal(
        "engineio.async_socket:AsyncSocket._upgrade_websocket",
        "engine.py",
        "LeanSocket overrides it: aiohttp answers the upgrade, then a WebSocketLink owns it",
        ("self", "environ"),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket.schedule_ping",
        "engine.py",
        "LeanSocket overrides it: one Heartbeat serves every socket",
        ("self",),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket.close",
        "engine.py, writer.py",
        "closing without a CLOSE packet (abort=True) so clients reconnect by themselves",
        ("self", "wait", "abort", "reason"),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket.receive",
        "wslink.py",
        "the link hands each Engine.IO packet of a websocket to its socket",
        ("self", "pkt"),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket.__init__",
        "engine.py",
        "sockets are made as AsyncSocket(server, sid) and re-classed to LeanSocket when stored",
        ("self", "server", "sid"),
    ),
    Internal(
        "engineio.async_server:AsyncServer().sockets",
        "engine.py",
        "the server's sid -> socket dict: replaced by _SocketTable, which re-classes sockets",
    ),
    Internal(
        "engineio.async_server:AsyncServer.create_queue",
        "engine.py",
        "each socket's queue is an Outlet (writes websocket frames, no writer task)",
    ),
    Internal(
        "engineio.async_server:AsyncServer.start_background_task",
        "engine.py",
        "every task the library starts is owned by the gateway's Supervisor",
        ("self", "target", "args", "kwargs"),
    ),
    Internal(
        "engineio.async_socket:AsyncSocket().queue",
        "engine.py, heartbeat.py",
        "the socket's outgoing packets (an Outlet here); PINGs are put into it",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket().last_ping",
        "heartbeat.py",
        "when the last PING went out; a PONG clears it",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket().upgrading",
        "wslink.py",
        "set while the polling-to-websocket probe runs",
    ),
    Internal(
        "engineio.async_socket:AsyncSocket().upgraded",
        "wslink.py",
        "set once the socket is on a websocket",
    ),
    Internal(
        "aiohttp.web_protocol:RequestHandler.finish_response",
        "engine.py",
        "an upgrade whose client is gone returns the half-prepared response: finish_response "
        "prepares it again (a no-op) and only a ConnectionError there is quiet",
        ("self", "request", "resp", "start_time"),
    ),
    Internal(
        "aiohttp.web_response:StreamResponse()._payload_writer",
        "engine.py",
        "set before the headers are written, so a response whose header write failed counts "
        "as prepared and is not prepared (and logged) twice",
    ),
    Internal(
        "socketio.async_server:AsyncServer._engineio_server_class",
        "engine.py",
        "LeanSocketIO runs on LeanEngineIO",
        ("self",),
    ),
    Internal(
        "socketio.async_server:AsyncServer._handle_eio_connect",
        "engine.py",
        "LeanSocketIO keeps a small copy of the environ, not the aiohttp request",
        ("self", "eio_sid", "environ"),
    ),
    Internal(
        "socketio.async_server:AsyncServer._handle_eio_message",
        "engine.py",
        "every client packet passes the guard (rate, binary, malformed) before python-socketio",
        ("self", "eio_sid", "data"),
    ),
    Internal(
        "socketio.async_server:AsyncServer._handle_event",
        "engine.py",
        "LeanSocketIO runs a request in the packet's own task (python-socketio starts another)",
        ("self", "eio_sid", "namespace", "id", "data"),
    ),
    Internal(
        "socketio.async_server:AsyncServer._handle_event_internal",
        "engine.py",
        "LeanSocketIO runs a request's handler in the packet's task, counted per connection",
        ("self", "server", "sid", "eio_sid", "data", "namespace", "id"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager.sid_from_eio_sid",
        "engine.py, edge/server.py",
        "the Socket.IO sid of an Engine.IO session (a guard names the latter)",
        ("self", "eio_sid", "namespace"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager.is_connected",
        "engine.py",
        "LeanSocketIO._handle_event handles requests of connected clients only, as python-socketio",
        ("self", "sid", "namespace"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager.basic_enter_room",
        "engine.py",
        "LeanManager refuses python-socketio rooms (fleetcast keeps its own)",
        ("self", "sid", "namespace", "room", "eio_sid"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager.basic_disconnect",
        "engine.py",
        "LeanManager leaves two rooms instead of scanning all of them (O(n^2) in a storm)",
        ("self", "sid", "namespace", "kwargs"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager.basic_leave_room",
        "engine.py",
        "LeanManager.basic_disconnect leaves the client's own rooms with it",
        ("self", "sid", "namespace", "room"),
    ),
    Internal(
        "socketio.async_manager:AsyncManager().rooms",
        "engine.py",
        "namespace -> room -> members, read by LeanManager.basic_disconnect",
    ),
    Internal(
        "socketio.async_manager:AsyncManager().callbacks",
        "engine.py",
        "per-sid ack callbacks, dropped by LeanManager.basic_disconnect",
    ),
    Internal(
        "socketio.async_manager:AsyncManager().pending_disconnect",
        "engine.py",
        "namespace -> sids being disconnected, cleaned by LeanManager.basic_disconnect",
    ),
    Internal(
        "socketio.async_manager:AsyncManager().pending_connect",
        "engine.py",
        "namespace -> sids being connected, cleaned by LeanManager.basic_disconnect",
    ),
    Internal(
        "aiohttp.web_protocol:RequestHandler.connection_lost",
        "wslink.py",
        "hand_over() has aiohttp forget a connection whose transport a WebSocketLink now owns",
        ("self", "exc"),
    ),
    Internal(
        "aiohttp.web_protocol:RequestHandler.transport",
        "wslink.py",
        "set to None before connection_lost so aiohttp leaves the transport open",
    ),
    Internal(
        "redis.asyncio.connection:Connection()._reader",
        "pushes.py",
        "the pub/sub connection's stream reader, read in bulk by PushReader",
    ),
    Internal(
        "redis.asyncio.client:PubSub.handle_message",
        "redis/listener.py (through pushes.py's replies)",
        "(un)subscribe confirmations read by PushReader still update redis-py's channel book",
        ("self", "response", "ignore_subscribe_messages"),
    ),
)


def missing() -> list[str]:
    """What of :data:`RELIED_ON` the installed libraries lack, one line each (empty: all there)."""
    problems = []
    for internal in RELIED_ON:
        problem = _check(internal)
        if problem:
            problems.append(f"{internal.path} (used by {internal.user}: {internal.why}): {problem}")
    return problems


def _check(internal: Internal) -> str | None:
    module_name, _, rest = internal.path.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
    except ImportError as exc:
        return f"module not importable ({exc})"
    owner_name, _, attribute = rest.rpartition(".")
    instance = owner_name.endswith("()")
    owner_name = owner_name.removesuffix("()")
    for part in owner_name.split("."):
        target = getattr(target, part, None)
        if target is None:
            return f"{part} is gone"
    if instance:
        target = _instance(target)
        if target is None:
            return "could not make an instance to look at"
    if not hasattr(target, attribute):
        return f"attribute {attribute} is gone"
    if internal.params is not None:
        return _params(getattr(target, attribute), internal.params)
    return None


def _params(function: Any, expected: tuple[str, ...]) -> str | None:
    try:
        names = tuple(inspect.signature(function).parameters)
    except (TypeError, ValueError):
        return "not a callable with a signature"
    return None if names == expected else f"parameters are {names}, expected {expected}"


def _instance(cls: Any) -> Any:
    """A throwaway instance of a library class, made the way the library itself makes one."""
    name = f"{cls.__module__}.{cls.__qualname__}"
    if name == "engineio.async_socket.AsyncSocket":
        from engineio import async_server

        return cls(async_server.AsyncServer(), "probe")
    if name == "redis.asyncio.connection.Connection":
        return cls()
    try:
        return cls()
    except TypeError:
        return None
