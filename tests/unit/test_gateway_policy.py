"""Role policy (fleetcast.gateway.edge.policy): every role's allowed and refused rooms."""

from __future__ import annotations

import pytest

from fleetcast.gateway.edge.auth import Claims
from fleetcast.gateway.edge.policy import Policy, automatic_rooms, is_automatic
from fleetcast.protocol.rooms import Room, RoomKind, parse_client_room

POLICY = Policy.default()


def holder(*roles: str, channels: tuple[str, ...] = (), assets: tuple[str, ...] = ()) -> Claims:
    return Claims(
        "me", "o1", roles, exp=0.0, channels=frozenset(channels), assets=frozenset(assets)
    )


def allowed(claims: Claims, text: str) -> bool:
    return POLICY.allows(claims, parse_client_room(text, claims.org))


EVERY_KIND = ["org", "fleet", "user:me", "user:other", "channel:c1", "incident:i1", "asset:a1"]


@pytest.mark.parametrize("role", ["admin", "supervisor", "dispatcher"])
def test_staff_roles_reach_every_room_of_their_org(role: str) -> None:
    assert all(allowed(holder(role), text) for text in EVERY_KIND)


def test_field_unit_gets_own_user_room_and_listed_channels_and_assets() -> None:
    unit = holder("field_unit", channels=("c1",), assets=("a1",))
    expected = {
        "org": True, "fleet": False, "user:me": True, "user:other": False,
        "channel:c1": True, "channel:c2": False, "incident:i1": False,
        "asset:a1": True, "asset:a2": False,
    }  # fmt: skip
    assert {text: allowed(unit, text) for text in expected} == expected


def test_viewer_gets_org_and_fleet_only() -> None:
    viewer = holder("viewer")
    expected = {
        "org": True, "fleet": True, "user:me": True, "user:other": False,
        "channel:c1": False, "incident:i1": False, "asset:a1": False,
    }  # fmt: skip
    assert {text: allowed(viewer, text) for text in expected} == expected


def test_roles_add_up_and_unknown_roles_grant_nothing() -> None:
    both = holder("viewer", "field_unit", channels=("c1",))
    assert allowed(both, "fleet")
    assert allowed(both, "channel:c1")
    assert not allowed(both, "incident:i1")
    assert POLICY.known_roles(holder("janitor", "viewer")) == ("viewer",)
    assert not allowed(holder("janitor"), "fleet")


@pytest.mark.parametrize("role", ["admin", "supervisor", "dispatcher", "field_unit", "viewer"])
def test_no_role_reaches_another_org(role: str) -> None:
    claims = holder(role, channels=("c1",), assets=("a1",))
    for kind, entity in [
        (RoomKind.ORG, None), (RoomKind.FLEET, None), (RoomKind.USER, "me"),
        (RoomKind.CHANNEL, "c1"), (RoomKind.INCIDENT, "i1"), (RoomKind.ASSET, "a1"),
    ]:  # fmt: skip
        assert not POLICY.allows(claims, Room(kind, "o2", entity))
        assert not is_automatic(claims, Room(kind, "o2", entity))


def test_automatic_rooms() -> None:
    org, user = automatic_rooms(holder("viewer"))
    assert (org.name, user.name) == ("org:o1", "user:me:org:o1")


def test_configured_grants() -> None:
    custom = Policy.from_grants({"radio": ["channel"], "mapper": ["fleet", "asset:listed"]})
    radio = holder("radio")
    assert custom.allows(radio, parse_client_room("channel:any", "o1"))
    assert not custom.allows(radio, parse_client_room("fleet", "o1"))
    mapper = holder("mapper", assets=("a9",))
    assert custom.allows(mapper, parse_client_room("asset:a9", "o1"))
    assert not custom.allows(mapper, parse_client_room("asset:a1", "o1"))
    assert custom.known_roles(holder("dispatcher")) == ()


def test_unknown_grant_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown grant"):
        Policy.from_grants({"x": ["everything"]})
