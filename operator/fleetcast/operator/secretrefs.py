"""Secrets a spec names: what is wrong with them, and a digest of what the pods will read.

A pod whose ``secretKeyRef`` points at a missing Secret or key never starts
(CreateContainerConfigError), so the operator checks every reference before
saying Ready, and reports a missing one as a condition with a reason instead
of failing the handler over and over.

A pod reads Secret values once, at start (environment variables), so a
rotated key (a new JWT secret) reaches only new pods. The config hash on the
pod template therefore covers a digest of each used value (:func:`digests`),
and a rotation rolls exactly the pods that read it. Only that digest (SHA-256
of the stored bytes, never the value) leaves this module, and only into the
hash; no value is read into a log, a condition or an event. Secrets are read
by name (get), never listed or watched.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fleetcast.operator import conditions
from fleetcast.operator.spec import FleetBroadcastSpec

# Condition reasons (not secrets).
SECRET_MISSING = "SecretMissing"  # noqa: S105
SECRET_KEY_MISSING = "SecretKeyMissing"  # noqa: S105


@dataclass(frozen=True, slots=True)
class SecretRef:
    #: Where the spec names it, for messages (``auth.jwtSecretRef``).
    field: str
    name: str
    keys: tuple[str, ...]


def referenced(spec: FleetBroadcastSpec) -> list[SecretRef]:
    """Every Secret key the pods will read, as the rendering uses them."""
    refs: list[SecretRef] = []
    auth, redis, security = spec.auth, spec.redis, spec.kafka.security
    if auth.jwt_secret_ref is not None:
        jwt = auth.jwt_secret_ref
        refs.append(SecretRef("auth.jwtSecretRef", jwt.name, (jwt.key,)))
    if auth.public_key_secret_ref is not None:
        public = auth.public_key_secret_ref
        refs.append(SecretRef("auth.publicKeySecretRef", public.name, (public.key,)))
    if redis.secret_ref is not None:
        refs.append(SecretRef("redis.secretRef", redis.secret_ref.name, (redis.secret_ref.key,)))
    if security.secret_ref is not None and security.protocol.startswith("SASL"):
        sasl = security.secret_ref
        keys = (sasl.username_key, sasl.password_key)
        refs.append(SecretRef("kafka.security.secretRef", sasl.name, keys))
    return refs


def problems(
    refs: list[SecretRef], fetch: Callable[[str], Mapping[str, Any] | None]
) -> list[tuple[str, str]]:
    """(reason, message) for each reference that a pod could not resolve."""
    found: list[tuple[str, str]] = []
    for ref in refs:
        secret = fetch(ref.name)
        if secret is None:
            found.append((SECRET_MISSING, f"Secret {ref.name!r} ({ref.field}) does not exist"))
            continue
        present = set(secret.get("data") or {}) | set(secret.get("stringData") or {})
        for key in ref.keys:
            if key not in present:
                message = f"Secret {ref.name!r} ({ref.field}) has no key {key!r}"
                found.append((SECRET_KEY_MISSING, message))
    return found


def digests(
    refs: Sequence[SecretRef], fetch: Callable[[str], Mapping[str, Any] | None]
) -> dict[tuple[str, str], str]:
    """(Secret name, key) -> a digest of that key's stored value, for every key that exists."""
    found: dict[tuple[str, str], str] = {}
    for name in sorted({ref.name for ref in refs}):
        secret = fetch(name)
        data = (secret or {}).get("data") or {}
        for key in sorted({k for ref in refs if ref.name == name for k in ref.keys}):
            if key in data:
                digest = hashlib.sha256(str(data[key]).encode()).hexdigest()[:32]
                found[name, key] = digest
    return found


def failure(found: list[tuple[str, str]], generation: int) -> conditions.Condition | None:
    """Reconciled=False for the problems found (the first one's reason), or None."""
    if not found:
        return None
    message = "; ".join(text for _, text in found)
    return conditions.Condition(conditions.RECONCILED, "False", found[0][0], message, generation)
