"""Local infrastructure for `make run`, the tests and the benchmarks.

Starts real servers (redis-server, a KRaft Kafka broker from Maven jars, the
Kubernetes control plane built from Go modules) on loopback ports, and the
demo fleet that produces realistic dispatch traffic. Never imported by the
gateway, consumer or operator.
"""
