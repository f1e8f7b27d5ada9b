"""Pytest fixture for a real Jaeger (see fleetcast.devtools.jaeger).

``jaeger``: one Jaeger for the session, its OTLP/HTTP receiver and query API
on free loopback ports. A missing binary (``make deps`` builds it with
tools/observe/build.sh) fails the test, never skips. Traces of different
tests never mix: each test finds its own by trace id.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fleetcast.devtools.jaeger import JaegerServer


@pytest.fixture(scope="session")
def jaeger() -> Iterator[JaegerServer]:
    server = JaegerServer().start()
    try:
        yield server
    finally:
        server.cleanup()
