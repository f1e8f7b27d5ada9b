"""The shared contract of fleetcast: what the consumer and the gateways agree on.

Event catalog and envelope validation (:mod:`.events`), room names
(:mod:`.rooms`), the routing table (:mod:`.routing`), every Redis key and
channel (:mod:`.keys`) and the Redis wire format (:mod:`.wire`). Pure code:
nothing here does I/O, so all of it is tested without servers.
"""
