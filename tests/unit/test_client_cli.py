"""fleetcast-client's command line: arguments, the token subcommand, its refusals."""

from __future__ import annotations

import io

import jwt
import pytest

from fleetcast.client import cli, tokens
from fleetcast.client.settings import ClientSettings

SECRET = "a-test-secret-that-is-at-least-32-bytes-long"  # noqa: S105 (test key)


def settings(**values: object) -> ClientSettings:
    return ClientSettings.model_validate(values)


def test_token_command_prints_a_token_and_warns_on_stderr() -> None:
    out, err = io.StringIO(), io.StringIO()
    argv = ["--sub", "u-7", "--org", "org-42", "--role", "viewer", "--role", "supervisor"]
    code = cli.token_command(argv, settings(jwt_secret=SECRET, jwt_audience="fc"), out, err)
    assert code == 0
    assert err.getvalue().strip() == tokens.WARNING
    claims = jwt.decode(out.getvalue().strip(), SECRET, algorithms=["HS256"], audience="fc")
    assert claims["sub"] == "u-7"
    assert claims["org_id"] == "org-42"
    assert claims["roles"] == ["viewer", "supervisor"]


def test_minting_without_a_secret_says_what_to_set() -> None:
    with pytest.raises(SystemExit, match="FLEETCAST_JWT_SECRET"):
        cli.token_command(["--org", "org-42"], settings(), io.StringIO(), io.StringIO())


def test_listen_needs_a_token_or_mint() -> None:
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["--room", "fleet"])
    assert exc.value.code == cli.EXIT_USAGE


def test_listen_arguments() -> None:
    args = cli.build_parser().parse_args(
        ["--token", "t", "--room", "fleet", "--room", "channel:ch-3", "--since", "1-0", "--json"]
    )
    assert args.rooms == ["fleet", "channel:ch-3"]
    assert args.since == "1-0"
    assert args.json


def test_since_without_room_is_refused() -> None:
    with pytest.raises(SystemExit, match="--since needs"):
        cli.listen_command(
            ["--token", "t", "--since", "1-0"], settings(), io.StringIO(), io.StringIO()
        )


def test_mint_needs_an_org() -> None:
    with pytest.raises(SystemExit, match="--org"):
        cli.listen_command(["--mint"], settings(jwt_secret=SECRET), io.StringIO(), io.StringIO())
