"""A lean Socket.IO load generator: raw Engine.IO v4 / Socket.IO v5 over WebSocket.

Runs in its own process (:mod:`bench.loadgen.__main__`), on the core the
server under test does not use, driven by :mod:`bench.loadgen.control`.
"""
