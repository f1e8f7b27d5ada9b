"""What clients talk to: Socket.IO handlers, handshake checks, subscriptions, closes, HTTP.

May import rooms/ and transport/; never redis/ (the Redis side reaches the
edge only through the small protocols the handlers name, wired in app.py).
"""
