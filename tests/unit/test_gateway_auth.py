"""JWT verification (fleetcast.gateway.edge.auth): codes, keys and algorithm confusion."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from fleetcast.gateway.edge import auth

SECRET = "unit-test-secret-that-is-long-enough!!"  # noqa: S105 (tests only)
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
EC_KEY = ec.generate_private_key(ec.SECP256R1())


def pem(key: Any) -> str:
    encoded = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(encoded.decode())


#: Far enough ahead that claims built at collection time are still valid when
#: a long suite reaches the test.
VALID_FOR_S = 24 * 3600


def claims(**extra: Any) -> dict[str, Any]:
    exp = time.time() + VALID_FOR_S
    return {"sub": "u1", "org_id": "o1", "roles": ["dispatcher"], "exp": exp, **extra}


def verifier(*algorithms: str, **kwargs: Any) -> auth.Verifier:
    return auth.Verifier.create(algorithms or ("HS256",), secret=SECRET, **kwargs)


def code_of(v: auth.Verifier, token: object) -> str:
    with pytest.raises(auth.AuthError) as info:
        v.verify(token)
    return info.value.code


def hand_signed_hs256(key: bytes, payload: dict[str, Any], alg: str = "HS256") -> str:
    def part(doc: dict[str, Any]) -> bytes:
        return base64.urlsafe_b64encode(json.dumps(doc).encode()).rstrip(b"=")

    signing_input = part({"alg": alg, "typ": "JWT"}) + b"." + part(payload)
    signature = hmac.new(key, signing_input, hashlib.sha256).digest()
    return (signing_input + b"." + base64.urlsafe_b64encode(signature).rstrip(b"=")).decode()


def test_valid_hs256_token() -> None:
    got = verifier().verify(jwt.encode(claims(channels=["c1"], assets=["a1"]), SECRET))
    assert (got.user, got.org, got.roles) == ("u1", "o1", ("dispatcher",))
    assert got.channels == frozenset({"c1"})
    assert got.assets == frozenset({"a1"})


def test_expired_and_leeway() -> None:
    token = jwt.encode(claims(exp=time.time() - 5), SECRET)
    assert code_of(verifier(leeway_s=0), token) == "token_expired"
    assert verifier(leeway_s=30).verify(token).user == "u1"


@pytest.mark.parametrize(
    "token",
    [None, "", 42, ["a"], "a.b", "x" * (auth.MAX_TOKEN_LENGTH + 1)],
    ids=["none", "empty", "int", "list", "two-parts", "too-long"],
)
def test_malformed_tokens(token: object) -> None:
    assert code_of(verifier(), token) == "invalid_token"


@pytest.mark.parametrize(
    ("payload", "why"),
    [
        ({"sub": "u1", "org_id": "o1", "roles": []}, "no exp"),
        ({"org_id": "o1", "roles": [], "exp": time.time() + VALID_FOR_S}, "no sub"),
        (claims(org_id=None), "no org"),
        (claims(org_id="o1:org:o2"), "org with colon"),
        (claims(sub="u" * 129), "sub too long"),
        (claims(roles="admin"), "roles not a list"),
        (claims(channels=[1]), "channels not strings"),
        (claims(exp="tomorrow"), "exp not a number"),
    ],
)
def test_bad_claims(payload: dict[str, Any], why: str) -> None:
    assert code_of(verifier(), jwt.encode(payload, SECRET)) == "invalid_token", why


def test_wrong_secret() -> None:
    assert code_of(verifier(), jwt.encode(claims(), SECRET + "x")) == "invalid_token"


def test_alg_none_refused_even_if_configured() -> None:
    token = jwt.encode(claims(), "", algorithm="none")
    assert code_of(verifier("HS256", "none"), token) == "invalid_token"


def test_algorithm_not_in_list() -> None:
    token = jwt.encode(claims(), SECRET * 2, algorithm="HS512")
    assert code_of(verifier("HS256"), token) == "invalid_token"


def test_rs256_and_es256() -> None:
    rs = verifier("RS256", public_key_pem=pem(RSA_KEY))
    assert rs.verify(jwt.encode(claims(), RSA_KEY, algorithm="RS256")).user == "u1"
    es = verifier("ES256", public_key_pem=pem(EC_KEY))
    assert es.verify(jwt.encode(claims(), EC_KEY, algorithm="ES256")).user == "u1"


def test_algorithm_confusion_public_key_as_hmac_secret() -> None:
    """An HS256 token keyed with the RSA public key PEM never passes."""
    public = pem(RSA_KEY).encode()
    token = hand_signed_hs256(public, claims())
    assert (
        code_of(verifier("RS256", "HS256", public_key_pem=pem(RSA_KEY)), token) == "invalid_token"
    )
    only_rs = auth.Verifier.create(["RS256"], public_key_pem=pem(RSA_KEY))
    assert code_of(only_rs, token) == "invalid_token"


def test_rs_token_with_hs_only_verifier() -> None:
    token = jwt.encode(claims(), RSA_KEY, algorithm="RS256")
    assert code_of(verifier("HS256"), token) == "invalid_token"


def test_issuer_and_audience() -> None:
    v = verifier(issuer="api", audience="fleetcast")
    assert v.verify(jwt.encode(claims(iss="api", aud="fleetcast"), SECRET)).user == "u1"
    assert code_of(v, jwt.encode(claims(iss="other", aud="fleetcast"), SECRET)) == "invalid_token"
    assert code_of(v, jwt.encode(claims(iss="api", aud="other"), SECRET)) == "invalid_token"
    assert code_of(v, jwt.encode(claims(), SECRET)) == "invalid_token"
    # not configured: an aud in the token is not checked
    assert verifier().verify(jwt.encode(claims(aud="anything"), SECRET)).user == "u1"


def test_extract_token_precedence() -> None:
    environ = {"HTTP_AUTHORIZATION": "Bearer from-header", "QUERY_STRING": "token=from-query"}
    assert auth.extract_token({"token": "from-auth"}, environ) == "from-auth"
    assert auth.extract_token({"token": 5}, environ) == "from-header"
    assert auth.extract_token(None, {"QUERY_STRING": "a=1&token=q"}) == "q"
    assert auth.extract_token("token", {"HTTP_AUTHORIZATION": "Basic abc"}) is None
    assert auth.extract_token(None, {}) is None
