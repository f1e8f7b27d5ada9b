"""One module per benchmark scenario, each exposing ``SCENARIO`` (see :mod:`bench.registry`)."""
