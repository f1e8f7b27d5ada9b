"""A rotated Secret rolls the pods that read it, and only those.

The pods take Secret values as environment variables, which a running
container never sees change: only new pods get the new key. So the config
hash on the pod template covers the content of every referenced key (a
digest of it; no value is ever written anywhere), and the operator notices a
change within its secret-check period without watching Secrets.
"""

from __future__ import annotations

import pytest

from fleetcast.devtools import cluster_access
from fleetcast.operator import rendering
from tests.operator import operator_support as support

pytestmark = pytest.mark.operator


def template_hash(cluster: cluster_access.ClusterAccess, namespace: str, name: str) -> str:
    found = support.get(cluster, namespace, "deployment", name)
    value: str = found["spec"]["template"]["metadata"]["annotations"][
        rendering.CONFIG_HASH_ANNOTATION
    ]
    return value


def test_rotating_the_jwt_secret_rolls_the_gateways_only(
    operators: support.Operators, namespace: str
) -> None:
    cluster = operators.cluster
    operator = support.start_ready(operators)
    gateway, consumer = (
        template_hash(cluster, namespace, f"fleet-{c}") for c in ("gateway", "consumer")
    )

    rotated = support.jwt_secret(namespace)
    rotated["stringData"] = {"secret": "y" * 48}
    support.apply(cluster, rotated)

    support.eventually(
        "a new gateway config hash",
        lambda: template_hash(cluster, namespace, "fleet-gateway") != gateway,
        logs=operator.tail,
    )
    support.eventually(
        "Ready with the new pods",
        lambda: support.ready(cluster, namespace, "fleet"),
        logs=operator.tail,
    )
    assert template_hash(cluster, namespace, "fleet-consumer") == consumer
    secret_value = "y" * 48
    assert not [line for line in operator.messages() if secret_value in line]
