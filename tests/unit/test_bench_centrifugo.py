"""Centrifugo in the benchmark: its client protocol, the API commands, the config we write."""

from __future__ import annotations

import orjson

from bench import events, publish, servers, tokens
from bench.loadgen import centrifugo_codec as cf
from bench.loadgen import recorder


def test_rooms_are_channels_of_one_namespace() -> None:
    assert cf.channel("channel:ch-1:org:o") == "rooms:channel:ch-1:org:o"
    assert cf.channel("x").split(":", 1)[0] == cf.NAMESPACE


def test_connect_and_batched_subscribes() -> None:
    assert orjson.loads(cf.connect_command("tok")) == {"id": 1, "connect": {"token": "tok"}}
    frame, ids = cf.subscribe_commands(["rooms:a", "rooms:b"])
    assert ids == [2, 3]
    assert [orjson.loads(line) for line in frame.split(b"\n")] == [
        {"id": 2, "subscribe": {"channel": "rooms:a"}},
        {"id": 3, "subscribe": {"channel": "rooms:b"}},
    ]


def test_upgrade_request_has_no_query() -> None:
    request = cf.upgrade_request("127.0.0.1", 8000)
    assert request.startswith(b"GET /connection/websocket HTTP/1.1\r\n")
    assert request.endswith(b"\r\n\r\n")


def test_replies_pushes_and_pings() -> None:
    ok = cf.parse(b'{"id":2,"subscribe":{}}')
    assert (ok.command_id, ok.error, ok.is_ping) == (2, None, False)
    refused = cf.parse(b'{"id":3,"error":{"code":103,"message":"permission denied"}}')
    assert refused.error == {"code": 103, "message": "permission denied"}
    assert cf.parse(b"{}").is_ping
    assert not cf.parse(b'{"push":{"channel":"rooms:a","pub":{"data":{}}}}').is_ping


def test_a_batched_frame_counts_every_publication() -> None:
    """Centrifugo may put several pushes in one frame, one per line: each one counts."""
    rec = recorder.Recorder()
    rec.size(1)
    rec.arm(3, phase=7)
    pushes = [
        b'{"push":{"channel":"rooms:a","pub":{"data":{"x":1,"bph":7,"bseq":%d,"bt":5}}}}' % seq
        for seq in range(3)
    ]
    frame = b"\n".join(pushes)
    rec.receive(0, [(1, True, line) for line in cf.lines(frame)], now_ns=10)
    assert list(rec.counts[0]) == [1, 1, 1]
    assert cf.lines(b"{}") == [b"{}"]


def test_publish_one_room_broadcast_several() -> None:
    one = events.transmission(0, "org-a", "ch-1")
    command = publish.centrifugo_command(one, now_ns=123)
    assert command["publish"]["channel"] == cf.channel(one.rooms[0])
    assert command["publish"]["data"]["data"]["bt"] == 123
    many = events.incident_update(1, "org-a", "inc-1", "ch-1")
    assert len(many.rooms) > 1
    command = publish.centrifugo_command(many, now_ns=5)
    assert command["broadcast"]["channels"] == [cf.channel(r) for r in many.rooms]


def test_config_verifies_our_tokens_and_opens_the_namespace() -> None:
    config = servers.centrifugo_config(25001, "redis://127.0.0.1:25002")
    assert config["client"] == {"token": {"hmac_secret_key": tokens.SECRET}}
    assert config["engine"] == {"type": "redis", "redis": {"address": ["redis://127.0.0.1:25002"]}}
    assert config["channel"] == {
        "namespaces": [{"name": cf.NAMESPACE, "allow_subscribe_for_client": True}]
    }
    assert servers.centrifugo_config(25001, None)["engine"] == {"type": "memory"}
