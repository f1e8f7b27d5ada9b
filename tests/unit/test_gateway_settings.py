"""Gateway settings: defaults, list parsing, refusals, and exit code 2 at start-up."""

from __future__ import annotations

import os
import subprocess
import sys
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from pydantic import ValidationError

from fleetcast.gateway.settings import Settings

SECRET = "s" * 32


def public_pem(key: Any) -> str:
    encoded = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return str(encoded.decode())


def settings(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    for name in list(os.environ):
        if name.startswith("FLEETCAST_"):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(f"FLEETCAST_{name}", value)
    return Settings()


def test_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, JWT_SECRET=SECRET)
    assert (s.host, s.port, s.ws_path) == ("127.0.0.1", 8080, "/ws")
    assert s.jwt_algorithms == ["HS256"]
    assert s.redis_url == "redis://127.0.0.1:6379/0"
    assert "viewer" in s.role_policy
    assert s.gateway_id.endswith(f"-{os.getpid()}")
    assert s.map_tile_url == "https://tile.openstreetmap.org/{z}/{x}/{y}.png"
    assert "OpenStreetMap" in s.map_tile_attribution


def test_lists_from_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    s = settings(monkeypatch, JWT_SECRET="s" * 64, JWT_ALGORITHMS="HS256, HS512",
                 CORS_ORIGINS='["https://a.example"]')  # fmt: skip
    assert s.jwt_algorithms == ["HS256", "HS512"]
    assert s.cors_origins == ["https://a.example"]


def test_secret_is_not_in_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    assert SECRET not in repr(settings(monkeypatch, JWT_SECRET=SECRET))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "JWT_SECRET is required"),
        ({"JWT_SECRET": "short"}, "at least 32 bytes"),
        ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "HS512"}, "at least 64 bytes"),
        ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "none"}, "unsupported"),
        ({"JWT_SECRET": SECRET, "JWT_ALGORITHMS": "HS256,RS256"}, "JWT_PUBLIC_KEY is required"),
        ({"JWT_ALGORITHMS": "RS256", "JWT_PUBLIC_KEY": "-----BEGIN nonsense"}, "not a PEM"),
        ({"JWT_SECRET": SECRET, "PORT": "http"}, "port"),
        ({"JWT_SECRET": SECRET, "WS_PATH": "ws"}, "must start with"),
        ({"JWT_SECRET": SECRET, "ROLE_POLICY": '{"x": ["all"]}'}, "unknown grant"),
        ({"JWT_SECRET": SECRET, "MAX_CONNECTIONS": "0"}, "max_connections"),
        ({"JWT_SECRET": SECRET, "MAP_TILE_URL": "https://tiles.example/{z}/{x}.png"}, "lacks"),
        ({"JWT_SECRET": SECRET, "MAP_MAX_ZOOM": "30"}, "map_max_zoom"),
    ],
)
def test_invalid(monkeypatch: pytest.MonkeyPatch, env: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        settings(monkeypatch, **env)


def test_public_key_family_must_match(monkeypatch: pytest.MonkeyPatch) -> None:
    ec_pem = public_pem(ec.generate_private_key(ec.SECP256R1()))
    with pytest.raises(ValidationError, match="RSA public key"):
        settings(monkeypatch, JWT_ALGORITHMS="RS256", JWT_PUBLIC_KEY=ec_pem)
    assert settings(monkeypatch, JWT_ALGORITHMS="ES256", JWT_PUBLIC_KEY=ec_pem).jwt_public_key


def test_public_key_from_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> None:
    path = tmp_path / "key.pem"
    path.write_text(public_pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    s = settings(monkeypatch, JWT_ALGORITHMS="RS256", JWT_PUBLIC_KEY=str(path))
    assert s.jwt_public_key is not None
    assert s.jwt_public_key.startswith("-----BEGIN PUBLIC KEY")


def test_main_exits_2_with_one_clear_message() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FLEETCAST_")}
    env["FLEETCAST_PORT"] = "nope"
    command = [sys.executable, "-m", "fleetcast.gateway"]
    result = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "FLEETCAST_JWT_SECRET is required" in result.stderr or "FLEETCAST_PORT" in result.stderr
    assert result.stderr.startswith("fleetcast-gateway: invalid configuration")
