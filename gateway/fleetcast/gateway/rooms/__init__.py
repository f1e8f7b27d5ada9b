"""Pure state and logic: who is in which room, what each connection is owed, in what order.

No I/O: history and snapshot reads come in through small protocols (their
Redis side is in redis/), frames leave through the outbox's Transport
protocol. May import transport/ (for the packets it hands over), nothing above.
"""
