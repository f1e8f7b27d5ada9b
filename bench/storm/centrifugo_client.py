"""A resuming Centrifugo client: the storm's field client, in Centrifugo's JSON protocol.

The counterpart of :class:`bench.storm.client.ResumingClient` (same callbacks,
same accounting: event ids received, duplicates, ``recovered`` per room), so
the same :class:`bench.storm.run.Storm` drives it. It subscribes to its org
and user channels; after a lost connection it subscribes again with
``recover``, the last ``offset`` it saw and the channel's ``epoch``, as
centrifuge-js does, and the server answers with the publications it missed
(from the channel's history) and ``recovered``. Ready once both subscriptions
are answered.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from bench.loadgen import centrifugo_codec as cf
from bench.storm.client import ResumingClient

CONNECT_ID = 1


class CentrifugoResumingClient(ResumingClient):
    """One field client of Centrifugo: ``channels`` are its org and user channels."""

    def __init__(self, index: int, token: str, channels: Sequence[str]) -> None:
        super().__init__(index, token, path=cf.WS_PATH)
        self.channels = list(channels)
        #: Per channel: (offset, epoch) of the last publication seen: what it recovers from.
        self.positions: dict[str, tuple[int, str]] = {}
        self._pending: dict[int, str] = {}
        self._pong = False

    def _upgrade_request(self, host: str, port: int) -> bytes:
        return cf.upgrade_request(host, port, cf.WS_PATH)

    def _on_upgraded(self) -> None:
        self._send(cf.connect_command(self.token, CONNECT_ID))

    def _text(self, payload: bytes) -> None:
        for line in cf.lines(payload):
            self._line(orjson.loads(line))

    def _line(self, doc: dict[str, Any]) -> None:
        command_id = doc.get("id")
        if not doc:
            if self._pong:
                self._send(cf.PONG)
        elif "push" in doc:
            self._push(doc["push"])
        elif command_id == CONNECT_ID:
            self._connected(doc)
        elif command_id in self._pending:
            self._subscribe_reply(self._pending.pop(command_id), doc)

    def _connected(self, doc: dict[str, Any]) -> None:
        if "error" in doc:
            self._fail(f"connect_error:{doc['error'].get('code', 'unknown')}")
            return
        self._pong = bool(doc.get("connect", {}).get("pong"))
        self.recovered = {}
        lines = []
        for command_id, channel in enumerate(self.channels, start=CONNECT_ID + 1):
            self._pending[command_id] = channel
            lines.append(orjson.dumps({"id": command_id, "subscribe": self._ask(channel)}))
        self._send(b"\n".join(lines))

    def _ask(self, channel: str) -> dict[str, Any]:
        """A subscribe; with recovery from the last position when it had one."""
        known = self.positions.get(channel)
        if known is None:
            return {"channel": channel}
        return {"channel": channel, "recover": True, "offset": known[0], "epoch": known[1]}

    def _subscribe_reply(self, channel: str, doc: dict[str, Any]) -> None:
        if "error" in doc:
            self._fail(f"subscribe:{doc['error'].get('code', 'refused')}")
            return
        reply = doc.get("subscribe", {})
        epoch = str(reply.get("epoch", ""))
        if channel in self.positions:
            self.recovered[channel] = bool(reply.get("recovered"))
        for pub in reply.get("publications", ()):
            self._publication(channel, pub, epoch)
        if channel not in self.positions and epoch:
            # A channel's position; JSON leaves a zero offset out (nothing published yet)
            self.positions[channel] = (int(reply.get("offset", 0)), epoch)
        if not self._pending:
            self._in_session()

    def _push(self, push: dict[str, Any]) -> None:
        channel = push.get("channel", "")
        if "pub" in push:
            epoch = self.positions.get(channel, (0, ""))[1]
            self._publication(channel, push["pub"], epoch)
        elif "disconnect" in push:
            self.abort()

    def _publication(self, channel: str, pub: dict[str, Any], epoch: str) -> None:
        data = pub.get("data")
        if isinstance(data, dict):
            self._record(data.get("event_id"))
        if "offset" in pub:
            self.positions[channel] = (int(pub["offset"]), epoch)
            self.offsets[channel] = str(pub["offset"])
