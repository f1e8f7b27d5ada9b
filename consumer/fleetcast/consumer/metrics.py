"""Prometheus metrics of one consumer process, in a registry of its own.

Names follow ``fleetcast_consumer_*``. Consumed/published/dead-lettered are
counted per event; lag is per assigned partition: its high watermark minus
the next offset to deliver (records polled but not yet in Redis count as
lag), sampled every second and after each batch, so it is true while the
loop is wedged too.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

BATCH_BUCKETS = (1, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10_000)
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0)


class Metrics:
    """Every metric the consumer exports."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.consumed = Counter(
            "fleetcast_consumer_consumed", "Records read from Kafka", ["topic"], registry=r
        )
        self.published = Counter(
            "fleetcast_consumer_published", "Events published to Redis", registry=r
        )
        self.duplicates = Counter(
            "fleetcast_consumer_duplicates",
            "Redelivered events dropped because their id was already published",
            registry=r,
        )
        self.unrouted = Counter(
            "fleetcast_consumer_unrouted", "Valid events that target no room", registry=r
        )
        self.dead_lettered = Counter(
            "fleetcast_consumer_dead_lettered",
            "Records sent to the dead-letter topic",
            ["reason"],
            registry=r,
        )
        self.dead_letters_truncated = Counter(
            "fleetcast_consumer_dead_letters_truncated",
            "Dead letters sent truncated: the copy exceeded KAFKA_DLQ_MAX_RECORD_BYTES",
            registry=r,
        )
        self.dead_letters_dropped = Counter(
            "fleetcast_consumer_dead_letters_dropped",
            "Bad records skipped (logged): the dead-letter topic could not take them",
            ["cause"],
            registry=r,
        )
        self.dead_letter_unwritable = Gauge(
            "fleetcast_consumer_dead_letter_unwritable",
            "1 while the dead-letter topic cannot take records (missing, forbidden, too small)",
            registry=r,
        )
        self.stalled = Gauge(
            "fleetcast_consumer_stalled",
            "1 while a partition has lag and nothing of it was delivered for STALL_AFTER_S",
            registry=r,
        )
        self.batch_size = Histogram(
            "fleetcast_consumer_batch_size", "Records per batch", buckets=BATCH_BUCKETS, registry=r
        )
        self.publish_latency = Histogram(
            "fleetcast_consumer_publish_seconds",
            "Time for Redis to accept one batch (the script call)",
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.lag = Gauge(
            "fleetcast_consumer_lag",
            "Records behind the high watermark",
            ["topic", "partition"],
            registry=r,
        )
        self.errors = Counter(
            "fleetcast_consumer_errors",
            "Failed attempts, retried with backoff",
            ["stage"],
            registry=r,
        )
        self.controls = Counter(
            "fleetcast_consumer_controls",
            "Control messages (revocations, withdrawals) recorded and fanned out",
            registry=r,
        )
        self.commits = Counter(
            "fleetcast_consumer_commits", "Offset commits accepted by Kafka", registry=r
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
