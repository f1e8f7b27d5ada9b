"""What the gateway asks of Redis: the pub/sub listener, its canary, history, snapshots, sessions.

May import rooms/ and transport/; never edge/.
"""
