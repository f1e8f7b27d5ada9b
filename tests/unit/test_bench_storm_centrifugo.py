"""The resuming Centrifugo client of the storm: subscribe, remember positions, recover."""

from __future__ import annotations

from bench.storm.centrifugo_client import CentrifugoResumingClient

CHANNELS = ["rooms:org:o", "rooms:user:u-1:org:o"]


def pub(offset: int, event_id: str) -> dict[str, object]:
    return {"offset": offset, "data": {"event_id": event_id}}


def subscribed_client() -> CentrifugoResumingClient:
    client = CentrifugoResumingClient(0, "tok", CHANNELS)
    client._line({"id": 1, "connect": {"pong": True}})
    assert sorted(client._pending.values()) == sorted(CHANNELS)
    for command_id in (2, 3):
        client._line({"id": command_id, "subscribe": {"epoch": "ep", "offset": 4}})
    return client


def test_ready_once_both_channels_answer_and_positions_follow_publications() -> None:
    client = subscribed_client()
    assert client.ready
    assert client.session.is_set()
    client._line({"push": {"channel": CHANNELS[0], "pub": pub(5, "e-5")}})
    client._line({"push": {"channel": CHANNELS[0], "pub": pub(5, "e-5")}})
    assert client.received == {"e-5"}
    assert client.duplicates == 1
    assert client.positions == {CHANNELS[0]: (5, "ep"), CHANNELS[1]: (4, "ep")}
    assert client._ask(CHANNELS[0]) == {
        "channel": CHANNELS[0],
        "recover": True,
        "offset": 5,
        "epoch": "ep",
    }


def test_a_resume_takes_the_missed_publications_from_the_subscribe_reply() -> None:
    client = subscribed_client()
    client._line({"id": 1, "connect": {}})  # a new connection: both channels again
    recovered = {"epoch": "ep", "offset": 7, "recovered": True, "publications": [pub(6, "e-6")]}
    client._line({"id": 2, "subscribe": recovered})
    client._line({"id": 3, "subscribe": {"epoch": "ep", "offset": 4, "recovered": False}})
    assert client.received == {"e-6"}
    assert client.recovered == {CHANNELS[0]: True, CHANNELS[1]: False}
    assert client.positions[CHANNELS[0]] == (6, "ep")


def test_a_refused_connect_fails_the_attempt() -> None:
    client = CentrifugoResumingClient(0, "tok", CHANNELS)
    failed: list[str] = []
    client.on_failed = lambda _client, error: failed.append(error)
    client._line({"id": 1, "error": {"code": 109, "message": "token expired"}})
    assert failed == ["connect_error:109"]


def test_a_channel_with_nothing_published_yet_is_recovered_from_offset_zero() -> None:
    client = CentrifugoResumingClient(0, "tok", CHANNELS)
    client._line({"id": 1, "connect": {}})
    client._line({"id": 2, "subscribe": {"epoch": "ep", "offset": 4}})
    client._line({"id": 3, "subscribe": {"epoch": "ep"}})  # offset 0 is left out of the JSON
    assert client.positions[CHANNELS[1]] == (0, "ep")
    assert client._ask(CHANNELS[1])["offset"] == 0
