"""Dev tokens minted by fleetcast-client carry exactly the protocol's claims."""

from __future__ import annotations

import jwt

from fleetcast.client import tokens

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"  # noqa: S105 (test key)


def test_claims_follow_the_client_protocol() -> None:
    grant = tokens.Grant("u-1", "org-42", ("field_unit",), channels=("ch-3",), assets=("a-1",))
    body = tokens.claims(grant, now=1000.0, ttl_s=60, issuer="api", audience="fleetcast")
    assert body == {
        "sub": "u-1",
        "org_id": "org-42",
        "roles": ["field_unit"],
        "iat": 1000,
        "exp": 1060,
        "channels": ["ch-3"],
        "assets": ["a-1"],
        "iss": "api",
        "aud": "fleetcast",
    }


def test_optional_claims_are_left_out() -> None:
    body = tokens.claims(tokens.Grant("u-1", "org-42"), now=0.0)
    assert set(body) == {"sub", "org_id", "roles", "iat", "exp"}
    assert body["roles"] == ["dispatcher"]


def test_signed_token_verifies_with_the_secret_and_reports_its_expiry() -> None:
    body = tokens.claims(tokens.Grant("u-1", "org-42"), now=2_000_000_000.0, ttl_s=30)
    token = tokens.sign(body, SECRET)
    decoded = jwt.decode(token, SECRET, algorithms=["HS256"], options={"verify_iat": False})
    assert decoded["org_id"] == "org-42"
    assert tokens.expiry(token) == 2_000_000_030.0


def test_expiry_of_garbage_is_none() -> None:
    assert tokens.expiry("not-a-jwt") is None
