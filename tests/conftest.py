"""Root of the test suite: the real-server fixtures live in tests/harness.

Every server a test needs (redis-server, a KRaft Kafka broker, the Kubernetes
control plane) is started by these fixtures on loopback ports and torn down
afterwards. A missing binary is an error, never a skip: `make test` installs
everything first, so a missing piece means a broken install step.
"""

pytest_plugins = [
    "tests.harness.redis",
    "tests.harness.gateway",
    "tests.harness.kafka",
    "tests.harness.cluster",
    "tests.harness.jaeger",
]
