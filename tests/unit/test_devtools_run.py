"""`make run`'s settings and console output, without starting anything."""

from __future__ import annotations

import errno
import io
from pathlib import Path

import pytest

from fleetcast.devtools import run
from fleetcast.devtools.stack import Console


def test_bad_settings_exit_2_naming_each_variable(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("FLEETCAST_PORT", "abc")
    monkeypatch.setenv("FLEETCAST_STOP_GRACE_S", "-1")
    with pytest.raises(SystemExit) as stopped:
        run.load_settings()
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "FLEETCAST_PORT:" in err
    assert "FLEETCAST_STOP_GRACE_S:" in err


class HungUp(io.StringIO):
    """A terminal after its window closed: every write fails with EIO."""

    def write(self, text: str) -> int:
        raise OSError(errno.EIO, "Input/output error")


def test_a_closed_terminal_never_stops_the_runner_and_the_log_keeps_everything(
    tmp_path: Path,
) -> None:
    console = Console(tmp_path / "runner.log", out=HungUp())
    console.show("fleetcast is running\n  token eyJ...")  # the banner: terminal only
    console.say("SIGHUP: stopping everything")
    console.say("stopped in 0.9s")
    console.close()
    assert console.out is None
    assert (tmp_path / "runner.log").read_text().splitlines() == [
        "run: SIGHUP: stopping everything",
        "run: stopped in 0.9s",
    ]
