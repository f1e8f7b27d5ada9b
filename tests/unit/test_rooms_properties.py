"""Property tests: no generated input ever yields a room of another org.

Covers protocol.rooms.parse_client_room (what clients send) and the gateway
policy (what a token may enter), with arbitrary text, injected ``:org:``
parts, unicode, very long strings and values of the wrong type.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.policy import Policy
from fleetcast.protocol.rooms import (
    ID_PATTERN,
    Room,
    RoomError,
    RoomKind,
    parse_client_room,
    parse_room,
)

ids = st.from_regex(ID_PATTERN, fullmatch=True)
kinds = st.sampled_from([kind.value for kind in RoomKind])
# Strings built to look like rooms, with org parts smuggled in.
crafted = st.one_of(
    st.builds(lambda k, i: f"{k}:{i}", kinds, ids),
    st.builds(lambda k, i, o: f"{k}:{i}:org:{o}", kinds, ids, ids),
    st.builds(lambda k, o: f"{k}:org:{o}", kinds, ids),
    st.builds(lambda k, i, junk: f"{k}:{i}{junk}", kinds, ids, st.text(max_size=20)),
    st.text(max_size=400),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=290, max_size=600),
)
anything = st.one_of(
    crafted, st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text(max_size=5)),
    st.dictionaries(st.text(max_size=5), st.text(max_size=5)),
)  # fmt: skip
roles = st.lists(
    st.sampled_from(["admin", "supervisor", "dispatcher", "field_unit", "viewer", "other"])
)
POLICY = Policy.default()


@settings(max_examples=400, deadline=None)
@given(anything, ids)
def test_parse_client_room_stays_in_the_token_org(text: object, org: str) -> None:
    try:
        room = parse_client_room(text, org)
    except RoomError as exc:
        code: str | None = exc.code
        room = None
    if room is None:
        assert code in {"invalid_room", "unknown_room"}
        return
    assert room.org == org
    assert room.name == "org:" + org or room.name.endswith(":org:" + org)
    assert parse_room(room.name) == room
    assert parse_client_room(room.client_name, org) == room
    assert room.name.count(":org:") + room.name.startswith("org:") == 1


@settings(max_examples=300, deadline=None)
@given(anything, ids, ids, roles, st.lists(ids, max_size=3), st.lists(ids, max_size=3))
def test_policy_never_allows_another_org(
    text: object, org: str, other: str, role_list: list[str], chans: list[str], assets: list[str]
) -> None:
    claims = Claims("u", org, tuple(role_list), 0.0, frozenset(chans), frozenset(assets))
    try:
        room = parse_client_room(text, org)
    except RoomError:
        return
    if other != org:
        moved = Room(room.kind, other, room.entity)
        assert not POLICY.allows(claims, moved)
    if POLICY.allows(claims, room):
        assert room.org == org


@settings(max_examples=200, deadline=None)
@given(kinds, ids, ids)
def test_full_names_round_trip(kind: str, entity: str, org: str) -> None:
    room_kind = RoomKind(kind)
    needs_id = room_kind not in (RoomKind.ORG, RoomKind.FLEET)
    room = Room(room_kind, org, entity if needs_id else None)
    assert parse_room(room.name) == room
