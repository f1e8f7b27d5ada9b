"""fleetcast.gateway: the Socket.IO edge of fleetcast (python-socketio on aiohttp).

Four layers, each a folder; a module may import the layers below its own
(checked by import-linter, see pyproject.toml):

- ``edge/``: what clients talk to: Socket.IO handlers, the handshake and its
  checks (JWT, role policy, limits, admission), subscriptions, server-side
  closes, the HTTP endpoints and the console.
- ``redis/``: what the gateway asks of Redis: the pub/sub listener and its
  canary, history and snapshot reads, session records.
- ``rooms/``: pure state and logic: the room table, delivery once per
  connection, the bounded outbox, gap recovery, the fleet room.
- ``transport/``: bytes to and from sockets: frames written once and shared,
  the Engine.IO plumbing, and every library internal the fast path relies on.

``app.py`` is the composition root; ``settings.py`` and ``metrics.py`` serve
every layer.
"""
