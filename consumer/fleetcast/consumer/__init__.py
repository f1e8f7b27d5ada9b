"""The fleetcast consumer: Kafka event topics -> validated, routed events -> Redis.

``python -m fleetcast.consumer`` (or ``fleetcast-consumer``) runs one process
of the consumer group; :mod:`.app` is its composition root, :mod:`.processing`
the pure core, :mod:`.publishing` and :mod:`.deadletter` its two outputs.
"""
