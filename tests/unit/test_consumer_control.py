"""The control script's arguments (consumer/control.py): each message, its until, its entries."""

from __future__ import annotations

from fleetcast.consumer import control as consumer_control
from fleetcast.protocol import control, keys


def test_each_message_carries_its_until_and_revocation_entries() -> None:
    revoke = control.parse(
        {"v": 1, "action": "revoke", "org": "o1", "user": "u1", "jti": "t", "at": 10}, now=0
    )
    withdraw = control.parse({"v": 1, "action": "withdraw", "org": "o1", "room": "org"}, now=5)
    argv = consumer_control.arguments([revoke, withdraw], now=20.0)
    assert argv[:3] == ["PUBLISH", keys.CONTROL_LOG_MAXLEN, "20.000"]
    assert consumer_control.KEYS[2] == keys.control_channel()
    assert argv[3:9] == [
        control.encode(revoke), f"{revoke.until:.3f}", 2, "jti:t", "user:o1:u1:10.000",
        control.encode(withdraw),
    ]  # fmt: skip
    assert argv[9:] == [f"{withdraw.until:.3f}", 0]
