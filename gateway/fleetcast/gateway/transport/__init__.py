"""Bytes to and from sockets, and every library internal the fast path relies on.

Frames are encoded once and the same bytes written to every recipient;
Engine.IO sockets have no writer task and share one heartbeat; the Redis
pub/sub socket is read in bulk. The internals this leans on are listed and
checked in internals.py. Imports no other layer.
"""
