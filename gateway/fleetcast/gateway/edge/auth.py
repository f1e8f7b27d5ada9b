"""JWT verification: a token string in, :class:`Claims` or :class:`AuthError` out.

Pure apart from reading the clock. The key is chosen by the family of the
algorithm the token's header names, and only among the configured ones: an
HS token is checked with the shared secret only and an RS/ES token with the
public key only, so a public key can never be used as an HMAC secret
(algorithm confusion), and ``none`` is never on the list.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes

from fleetcast.protocol import rooms

#: Longest token accepted (bytes); real ones are under 2 KB.
MAX_TOKEN_LENGTH: Final = 8192
CODES: Final = frozenset({"token_expired", "invalid_token", "forbidden"})


class AuthError(Exception):
    """A refused token; ``code`` is sent to the client, ``message`` says why."""

    def __init__(self, code: str, message: str) -> None:
        assert code in CODES, code
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Claims:
    """What the gateway needs from a verified token."""

    user: str
    org: str
    roles: tuple[str, ...]
    exp: float
    channels: frozenset[str] = frozenset()
    assets: frozenset[str] = frozenset()
    #: The token's id and issue time, when it has them (revocation: protocol/control.py).
    jti: str | None = None
    iat: float | None = None


@dataclass(frozen=True, slots=True)
class Verifier:
    """Checks tokens against the configured keys, algorithms, issuer and audience."""

    algorithms: frozenset[str]
    secret: bytes | None = None
    public_key: PublicKeyTypes | None = None
    issuer: str | None = None
    audience: str | None = None
    leeway_s: float = 10.0
    #: Longest a token may be valid for, from now (seconds): ``exp`` 100 years
    #: ahead is refused, not honoured for a century.
    max_lifetime_s: float = 24 * 3600

    @classmethod
    def create(
        cls,
        algorithms: Iterable[str],
        *,
        secret: str | None = None,
        public_key_pem: str | None = None,
        issuer: str | None = None,
        audience: str | None = None,
        leeway_s: float = 10.0,
        max_lifetime_s: float = 24 * 3600,
    ) -> Verifier:
        key = serialization.load_pem_public_key(public_key_pem.encode()) if public_key_pem else None
        return cls(
            frozenset(algorithms) - {"none"},
            secret.encode() if secret else None,
            key,
            issuer,
            audience,
            leeway_s,
            max_lifetime_s,
        )

    def verify(self, token: object) -> Claims:
        """Verify a token; raises :class:`AuthError` with the code a client is told."""
        if not isinstance(token, str) or not token:
            raise AuthError(
                "invalid_token", "no token: send auth {token}, a Bearer header or ?token="
            )
        if len(token) > MAX_TOKEN_LENGTH:
            raise AuthError("invalid_token", "token too long")
        alg = self._algorithm(token)
        key = self._key_for(alg)
        try:
            payload = jwt.decode(
                token,
                key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=self.leeway_s,
                options={"require": ["exp", "sub"], "verify_aud": self.audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token_expired", "token has expired") from None
        except jwt.PyJWTError as exc:
            raise AuthError("invalid_token", f"token rejected: {_short(exc)}") from None
        claims = claims_from_payload(payload)
        if claims.exp - time.time() > self.max_lifetime_s:
            raise AuthError(
                "invalid_token",
                f"token valid for longer than {self.max_lifetime_s:.0f} s: issue shorter ones",
            )
        return claims

    def _algorithm(self, token: str) -> str:
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise AuthError("invalid_token", "token is not a JWT") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg not in self.algorithms:
            raise AuthError("invalid_token", "token algorithm not accepted")
        return alg

    def _key_for(self, alg: str) -> Any:
        key = self.secret if alg.startswith("HS") else self.public_key
        if key is None:  # settings refuse this; kept so a bad wiring fails closed
            raise AuthError("invalid_token", "token algorithm not accepted")
        return key


def claims_from_payload(payload: Mapping[str, Any]) -> Claims:
    """Turn a verified payload into :class:`Claims`; malformed claims are invalid_token."""
    user, org = payload.get("sub"), payload.get("org_id")
    if not isinstance(user, str) or not rooms.is_valid_id(user):
        raise AuthError("invalid_token", "sub is not a valid user id")
    if not isinstance(org, str) or not rooms.is_valid_id(org):
        raise AuthError("invalid_token", "org_id missing or not a valid id")
    exp = payload.get("exp")
    if not isinstance(exp, int | float) or isinstance(exp, bool):
        raise AuthError("invalid_token", "exp must be a number")
    jti, iat = payload.get("jti"), payload.get("iat")
    return Claims(
        user=user,
        org=org,
        roles=tuple(_strings(payload, "roles")),
        exp=float(exp),
        channels=frozenset(_strings(payload, "channels")),
        assets=frozenset(_strings(payload, "assets")),
        jti=jti if isinstance(jti, str) and jti else None,
        iat=float(iat) if isinstance(iat, int | float) and not isinstance(iat, bool) else None,
    )


def _strings(payload: Mapping[str, Any], name: str) -> list[str]:
    value = payload.get(name, [])
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise AuthError("invalid_token", f"{name} must be a list of strings")
    return value


def _short(exc: Exception) -> str:
    return str(exc)[:120] or type(exc).__name__


def extract_token(auth: object, environ: Mapping[str, Any]) -> str | None:
    """The token from the Socket.IO auth payload, the Authorization header or ?token=.

    The auth payload wins, then the header, then the query string (the last
    is for clients that cannot set either, and is the most likely to be
    logged by proxies, so it comes last).
    """
    if isinstance(auth, Mapping):
        token = auth.get("token")
        if isinstance(token, str) and token:
            return token
    header = environ.get("HTTP_AUTHORIZATION", "")
    if isinstance(header, str) and header[:7].lower() == "bearer ":
        return header[7:].strip() or None
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    values = query.get("token")
    return values[0] if values else None
