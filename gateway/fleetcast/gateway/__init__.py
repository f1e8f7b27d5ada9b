"""The fleetcast gateway: Socket.IO edge on aiohttp (see docs/gateway.md).

``python -m fleetcast.gateway`` (or ``fleetcast-gateway``) runs it; tests and
benchmarks build one in process with :func:`fleetcast.gateway.app.create_app`.
"""
