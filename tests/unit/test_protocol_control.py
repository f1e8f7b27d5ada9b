"""Control messages (protocol/control.py): what is accepted, and the revocation list's rules."""

from __future__ import annotations

from typing import Any

import pytest

from fleetcast.protocol import control

NOW = 1_800_000_000.0


def doc(**fields: Any) -> dict[str, Any]:
    return {"v": 1, "action": "revoke", "org": "o1", **fields}


def test_a_revoke_names_someone_and_defaults_its_times() -> None:
    message = control.parse(doc(user="u1", reason="device stolen"), now=NOW)
    assert (message.user, message.at, message.until) == ("u1", NOW, NOW + control.DEFAULT_HOLD_S)
    assert control.decode(control.encode(message), now=0) == message


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({}, "names a user, a session or a jti"),
        ({"org": "bad:org", "user": "u"}, "org is not a valid id"),
        ({"user": "bad user"}, "user is not a valid id"),
        ({"action": "explode", "user": "u"}, "action must be"),
        ({"action": "withdraw"}, "withdraw names a room"),
        ({"action": "withdraw", "room": "incident:i1:org:o2"}, "room:"),
        ({"user": "u", "until": "tomorrow"}, "until must be epoch seconds"),
        ({"user": "u", "v": 2}, "version 1"),
    ],
)
def test_what_cannot_be_acted_on_is_refused_with_why(fields: dict[str, Any], error: str) -> None:
    with pytest.raises(control.ControlError, match=error):
        control.parse(doc(**fields), now=NOW)


def test_the_list_refuses_the_jti_and_the_users_older_tokens_until_it_lapses() -> None:
    revoked = control.Revoked.empty()
    message = control.parse(doc(user="u1", jti="t-9", at=NOW, until=NOW + 100), now=NOW)
    for member in control.members(message):
        revoked.add(member, message.until)
    assert revoked.refuses("o1", "someone", "t-9", None, NOW + 1)  # that token, whoever holds it
    assert revoked.refuses("o1", "u1", None, NOW - 60, NOW + 1)  # issued before: refused
    assert revoked.refuses("o1", "u1", None, None, NOW + 1)  # no iat: cannot tell, refused
    assert not revoked.refuses("o1", "u1", None, NOW + 5, NOW + 6)  # issued after: fine
    assert not revoked.refuses("o2", "u1", None, None, NOW + 1)  # another org's u1
    assert not revoked.refuses("o1", "u1", "t-9", None, NOW + 101)  # lapsed
    revoked.prune(NOW + 101)
    assert revoked.tokens == {} and revoked.users == {}  # noqa: PT018


def test_a_session_revoke_or_a_withdraw_adds_nothing_to_the_list() -> None:
    assert control.members(control.parse(doc(session="sid-1"), now=NOW)) == []
    withdraw = control.parse(doc(action="withdraw", room="incident:i1"), now=NOW)
    assert control.members(withdraw) == []
    assert withdraw.target() is not None
    assert withdraw.target().name == "incident:i1:org:o1"  # type: ignore[union-attr]
