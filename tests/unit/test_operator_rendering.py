"""spec -> manifests: ownership, labels, pod hardening, config hash, HPA, and the env contract.

The env contract tests build the real gateway and consumer settings objects
from what the operator renders, so a renamed FLEETCAST_* variable on either
side fails here instead of in a pod.
"""

from __future__ import annotations

import os
import re
from typing import Any

import pytest

from fleetcast.consumer import settings as consumer_settings
from fleetcast.gateway import settings as gateway_settings
from fleetcast.gateway.edge import console
from fleetcast.operator import configs, rendering, workloads
from fleetcast.operator import spec as crd

OWNER = rendering.Owner("dispatch", "fleet", "0b9f6a1c-uid")
BASE: dict[str, Any] = {
    "kafka": {"bootstrapServers": "kafka:9092"},
    "redis": {"url": "redis://redis:6379/0"},
    "auth": {"jwtSecretRef": {"name": "jwt"}},
}


def render(**changes: Any) -> dict[tuple[str, str], dict[str, Any]]:
    manifests = rendering.render(crd.parse({**BASE, **changes}), OWNER)
    return {(m["kind"], m["metadata"]["name"]): m for m in manifests}


def deployment(objects: dict[tuple[str, str], dict[str, Any]], component: str) -> dict[str, Any]:
    return objects["Deployment", f"dispatch-{component}"]


def pod_hash(objects: dict[tuple[str, str], dict[str, Any]], component: str) -> str:
    template = deployment(objects, component)["spec"]["template"]
    digest: str = template["metadata"]["annotations"][rendering.CONFIG_HASH_ANNOTATION]
    return digest


def container(objects: dict[tuple[str, str], dict[str, Any]], component: str) -> dict[str, Any]:
    (found,) = deployment(objects, component)["spec"]["template"]["spec"]["containers"]
    return found  # type: ignore[no-any-return]


def test_every_object_is_owned_labelled_and_namespaced() -> None:
    objects = render()
    assert set(objects) == {
        ("ServiceAccount", "dispatch-gateway"),
        ("ServiceAccount", "dispatch-consumer"),
        ("ConfigMap", "dispatch-gateway-config"),
        ("ConfigMap", "dispatch-consumer-config"),
        ("Service", "dispatch-gateway"),
        ("Deployment", "dispatch-gateway"),
        ("Deployment", "dispatch-consumer"),
        ("PodDisruptionBudget", "dispatch-gateway"),
        ("PodDisruptionBudget", "dispatch-consumer"),
        ("HorizontalPodAutoscaler", "dispatch-gateway"),
    }
    for manifest in objects.values():
        meta = manifest["metadata"]
        assert meta["namespace"] == "fleet"
        assert meta["ownerReferences"] == [rendering.owner_reference(OWNER)]
        assert meta["ownerReferences"][0]["controller"] is True
        assert meta["labels"]["app.kubernetes.io/instance"] == "dispatch"
        assert meta["labels"][rendering.LABEL_MANAGED_BY] == rendering.MANAGER


def test_rendering_is_deterministic() -> None:
    assert rendering.render(crd.parse(BASE), OWNER) == rendering.render(crd.parse(BASE), OWNER)


@pytest.mark.parametrize("component", ["gateway", "consumer"])
def test_pods_are_hardened_and_probed(component: str) -> None:
    objects = render()
    pod = deployment(objects, component)["spec"]["template"]["spec"]
    box = container(objects, component)
    port = configs.GATEWAY_PORT if component == "gateway" else configs.CONSUMER_PORT
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["automountServiceAccountToken"] is False
    assert box["securityContext"]["readOnlyRootFilesystem"] is True
    assert box["securityContext"]["allowPrivilegeEscalation"] is False
    assert box["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert box["ports"] == [{"name": "http", "containerPort": port, "protocol": "TCP"}]
    assert box["livenessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert box["readinessProbe"]["httpGet"] == {"path": "/ready", "port": "http"}
    assert box["resources"]["requests"]["cpu"]
    assert box["resources"]["limits"]["memory"]
    assert {"name": "tmp", "mountPath": "/tmp"} in box["volumeMounts"]


def test_gateway_grace_period_covers_the_pre_stop_and_the_drain() -> None:
    pod = deployment(render(gateway={"drainSeconds": 45}), "gateway")["spec"]["template"]["spec"]
    assert pod["terminationGracePeriodSeconds"] == 5 + 45 + configs.TERMINATION_MARGIN_SECONDS
    (box,) = pod["containers"]
    assert box["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}


def test_a_deleted_gateway_serves_until_its_endpoint_is_gone_before_it_drains() -> None:
    """preStop sleeps first: the drain must not send clients back to this pod's endpoint."""
    objects = render()
    (gateway,) = deployment(objects, "gateway")["spec"]["template"]["spec"]["containers"]
    assert gateway["lifecycle"] == {"preStop": {"sleep": {"seconds": 5}}}
    (consumer,) = deployment(objects, "consumer")["spec"]["template"]["spec"]["containers"]
    assert "lifecycle" not in consumer  # it serves no clients


def test_autoscaled_gateway_leaves_replicas_to_the_hpa() -> None:
    objects = render(gateway={"autoscaling": {"minReplicas": 3, "maxReplicas": 7}})
    assert "replicas" not in deployment(objects, "gateway")["spec"]
    hpa = objects["HorizontalPodAutoscaler", "dispatch-gateway"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (3, 7)
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "dispatch-gateway",
    }
    assert hpa["metrics"][0]["resource"]["target"]["averageUtilization"] == 70


def test_extra_hpa_metrics_are_passed_through() -> None:
    extra = {
        "type": "Pods",
        "pods": {
            "metric": {"name": "fleetcast_connections"},
            "target": {"type": "AverageValue", "averageValue": "5k"},
        },
    }
    objects = render(gateway={"autoscaling": {"metrics": [extra]}})
    assert objects["HorizontalPodAutoscaler", "dispatch-gateway"]["spec"]["metrics"][1] == extra


def test_without_autoscaling_replicas_are_set_and_the_hpa_is_obsolete() -> None:
    spec = crd.parse({**BASE, "gateway": {"replicas": 4, "autoscaling": {"enabled": False}}})
    objects = {(m["kind"], m["metadata"]["name"]): m for m in rendering.render(spec, OWNER)}
    assert deployment(objects, "gateway")["spec"]["replicas"] == 4
    assert ("HorizontalPodAutoscaler", "dispatch-gateway") not in objects
    gone = rendering.ObjectRef("autoscaling/v2", "HorizontalPodAutoscaler", "dispatch-gateway")
    assert gone in rendering.obsolete(spec, OWNER)
    assert gone not in rendering.obsolete(crd.parse(BASE), OWNER)


def test_config_change_rolls_only_the_pods_it_concerns() -> None:
    before = render()
    pinged = render(gateway={"ping": {"intervalSeconds": 5}})
    assert pod_hash(pinged, "gateway") != pod_hash(before, "gateway")
    assert pod_hash(pinged, "consumer") == pod_hash(before, "consumer")
    regrouped = render(kafka={"bootstrapServers": "kafka:9092", "groupId": "other"})
    assert pod_hash(regrouped, "consumer") != pod_hash(before, "consumer")


def test_scaling_and_image_changes_do_not_touch_the_config_hash() -> None:
    before = render()
    after = render(image="fleetcast:9.9.9", consumer={"replicas": 5})
    assert pod_hash(after, "gateway") == pod_hash(before, "gateway")
    assert pod_hash(after, "consumer") == pod_hash(before, "consumer")
    assert container(after, "consumer")["image"] == "fleetcast:9.9.9"


def test_a_different_secret_key_rolls_the_pods() -> None:
    moved = render(auth={"jwtSecretRef": {"name": "jwt", "key": "other"}})
    assert pod_hash(moved, "gateway") != pod_hash(render(), "gateway")


def test_secrets_come_by_reference_never_through_the_configmap() -> None:
    objects = render(
        redis={"secretRef": {"name": "redis-conn"}},
        kafka={
            "bootstrapServers": "k:9092",
            "security": {"protocol": "SASL_SSL", "secretRef": {"name": "sasl"}},
        },
    )
    gateway_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects, "gateway")["env"]
    }
    consumer_env = {
        e["name"]: e["valueFrom"]["secretKeyRef"] for e in container(objects, "consumer")["env"]
    }
    assert gateway_env["FLEETCAST_JWT_SECRET"] == {"name": "jwt", "key": "secret"}
    assert gateway_env["FLEETCAST_REDIS_URL"] == {"name": "redis-conn", "key": "url"}
    assert consumer_env["FLEETCAST_KAFKA_SASL_PASSWORD"] == {"name": "sasl", "key": "password"}
    for component in ("gateway", "consumer"):
        data = objects["ConfigMap", f"dispatch-{component}-config"]["data"]
        assert not {
            "FLEETCAST_REDIS_URL",
            "FLEETCAST_JWT_SECRET",
            "FLEETCAST_KAFKA_SASL_PASSWORD",
        } & set(data)


def _settings_from(
    objects: dict[tuple[str, str], dict[str, Any]],
    component: str,
    monkeypatch: pytest.MonkeyPatch,
    secrets: dict[str, str],
) -> dict[str, str]:
    """Put exactly what the pod would see into the environment."""
    for name in list(os.environ):
        if name.startswith("FLEETCAST_"):
            monkeypatch.delenv(name)
    env = dict(objects["ConfigMap", f"dispatch-{component}-config"]["data"])
    for entry in container(objects, component).get("env", []):
        env[entry["name"]] = secrets[entry["valueFrom"]["secretKeyRef"]["key"]]
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return env


def test_the_gateway_reads_every_variable_the_operator_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(
        auth={
            "jwtSecretRef": {"name": "jwt"},
            "issuer": "api",
            "audience": "fleet",
            "leewaySeconds": 5,
        },
        gateway={
            "cors": {"allowedOrigins": ["https://console.example"]},
            "console": {
                "map": {
                    "tileUrl": "https://{s}.tiles.agency.example/{z}/{x}/{y}.png",
                    "attribution": "&copy; Agency",
                    "maxZoom": 18,
                }
            },
            "path": "/socket",
            "drainSeconds": 20,
        },
    )
    env = _settings_from(objects, "gateway", monkeypatch, {"secret": "s" * 40})
    fields = {f"FLEETCAST_{name.upper()}" for name in gateway_settings.Settings.model_fields}
    assert set(env) <= fields
    loaded = gateway_settings.Settings()
    assert (loaded.port, loaded.host, loaded.ws_path) == (
        configs.GATEWAY_PORT,
        configs.BIND_ALL,
        "/socket",
    )
    assert (loaded.jwt_issuer, loaded.jwt_audience, loaded.jwt_leeway_s) == ("api", "fleet", 5)
    assert loaded.cors_origins == ["https://console.example"]
    assert loaded.drain_seconds == 20
    assert loaded.max_connections == 10_000
    assert loaded.map_tile_url == "https://{s}.tiles.agency.example/{z}/{x}/{y}.png"
    assert (loaded.map_tile_attribution, loaded.map_max_zoom) == ("&copy; Agency", 18)


def test_the_console_keeps_the_gateways_defaults_unless_the_spec_says_otherwise() -> None:
    """No FLEETCAST_MAP_* by default: adding the field rolls no existing gateway."""
    plain = crd.parse(BASE)
    assert configs.console_env(plain) == {}
    assert not any(name.startswith("FLEETCAST_MAP_") for name in configs.gateway_env(plain))
    off = crd.parse({**BASE, "gateway": {"console": {"enabled": False}}})
    assert configs.console_env(off) == {"FLEETCAST_CONSOLE_ENABLED": "false"}


@pytest.mark.parametrize(
    "url",
    [
        "https://tile.openstreetmap.org/{z}/{x}/{y}.png",
        "https://{s}.tiles.agency.example/{z}/{x}/{y}{r}.png",
        "http://10.0.0.7:8080/osm/{z}/{x}/{y}.png?key=k",
        "/tiles/{z}/{x}/{y}.png",
        "//tiles.example/{z}/{x}/{y}.png",
        "https://a.{s}.example/{z}/{x}/{y}.png",
        "https://tiles.example/{z}/{x}/{y}.png; script-src *",
        "ftp://tiles.example/{z}/{x}/{y}.png",
    ],
)
def test_the_crd_takes_the_tile_urls_the_gateway_takes(url: str) -> None:
    try:
        console.tile_source(url)
    except ValueError:
        gateway_takes = False
    else:
        gateway_takes = True
    assert bool(re.fullmatch(workloads.TILE_URL_PATTERN, url)) == gateway_takes


def test_the_consumer_reads_every_variable_the_operator_renders(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    objects = render(
        kafka={
            "bootstrapServers": "k1:9092,k2:9092",
            "topics": ["a.events", "b.events"],
            "security": {
                "protocol": "SASL_PLAINTEXT",
                "saslMechanism": "SCRAM-SHA-512",
                "secretRef": {"name": "sasl"},
            },
        },
        routing={"overrides": {"task_updated": ["user", "org"]}},
        logLevel="debug",
    )
    env = _settings_from(objects, "consumer", monkeypatch, {"username": "svc", "password": "pw"})
    fields = {f"FLEETCAST_{name.upper()}" for name in consumer_settings.Settings.model_fields}
    assert set(env) <= fields
    loaded = consumer_settings.Settings()
    assert loaded.consumer_port == configs.CONSUMER_PORT
    assert loaded.kafka_topics == ["a.events", "b.events"]
    assert loaded.kafka_sasl_username == "svc"
    assert loaded.routing_overrides == {"task_updated": ["user", "org"]}
    assert loaded.log_level == "DEBUG"


def test_session_affinity_and_service_annotations() -> None:
    service = render(
        gateway={"service": {"type": "LoadBalancer", "port": 443, "annotations": {"lb": "x"}}}
    )["Service", "dispatch-gateway"]
    assert service["spec"]["sessionAffinity"] == "ClientIP"
    assert service["spec"]["type"] == "LoadBalancer"
    assert service["spec"]["ports"][0]["port"] == 443
    assert service["metadata"]["annotations"] == {"lb": "x"}


def test_disruption_budget_selects_the_gateways() -> None:
    objects = render(gateway={"podDisruptionBudget": {"maxUnavailable": 2}})
    budget = objects["PodDisruptionBudget", "dispatch-gateway"]["spec"]
    assert budget["maxUnavailable"] == 2
    assert budget["selector"]["matchLabels"] == rendering.selector_labels(OWNER, "gateway")


def spread(objects: dict[tuple[str, str], dict[str, Any]], component: str) -> dict[str, Any]:
    constraints = deployment(objects, component)["spec"]["template"]["spec"][
        "topologySpreadConstraints"
    ]
    return {c["topologyKey"]: c for c in constraints}


@pytest.mark.parametrize("component", ["gateway", "consumer"])
def test_pods_spread_hard_over_nodes_and_softly_over_zones_per_rollout(component: str) -> None:
    found = spread(render(), component)
    nodes, zones = found["kubernetes.io/hostname"], found["topology.kubernetes.io/zone"]
    assert nodes["whenUnsatisfiable"] == "DoNotSchedule"
    assert zones["whenUnsatisfiable"] == "ScheduleAnyway"
    for constraint in (nodes, zones):
        assert constraint["matchLabelKeys"] == ["pod-template-hash"]
        assert constraint["labelSelector"]["matchLabels"] == rendering.selector_labels(
            OWNER, component
        )
    relaxed = spread(
        render(gateway={"topologySpread": {"nodes": "preferred", "zones": "off"}}), "gateway"
    )
    assert set(relaxed) == {"kubernetes.io/hostname"}
    assert relaxed["kubernetes.io/hostname"]["whenUnsatisfiable"] == "ScheduleAnyway"


def test_scheduling_fields_and_pod_metadata_come_from_the_spec() -> None:
    pod_spec = {
        "nodeSelector": {"pool": "edge"},
        "tolerations": [
            {"key": "dedicated", "operator": "Equal", "value": "edge", "effect": "NoSchedule"}
        ],
        "affinity": {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {}}},
        "priorityClassName": "fleet-critical",
        "annotations": {"sidecar.istio.io/inject": "false"},
        "labels": {"team": "dispatch"},
    }
    objects = render(gateway={"pod": pod_spec})
    template = deployment(objects, "gateway")["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"pool": "edge"}
    assert pod["tolerations"] == pod_spec["tolerations"]
    assert pod["affinity"] == pod_spec["affinity"]
    assert pod["priorityClassName"] == "fleet-critical"
    assert template["metadata"]["annotations"]["sidecar.istio.io/inject"] == "false"
    assert rendering.CONFIG_HASH_ANNOTATION in template["metadata"]["annotations"]
    assert template["metadata"]["labels"]["team"] == "dispatch"
    assert template["metadata"]["labels"]["app.kubernetes.io/component"] == "gateway"
    consumer_pod = deployment(objects, "consumer")["spec"]["template"]["spec"]
    assert "nodeSelector" not in consumer_pod


def test_rollouts_bring_new_gateways_first_then_hand_over_at_the_set_rate() -> None:
    objects = render(
        gateway={
            "limits": {"maxConnections": 6000},
            "drainSeconds": 30,
            "rollout": {
                "handoverRate": 400,
                "maxSurge": 2,
                "preStopSeconds": 8,
                "minReadySeconds": 20,
            },
        }
    )
    gateway = deployment(objects, "gateway")["spec"]
    assert gateway["strategy"]["rollingUpdate"] == {"maxSurge": 2, "maxUnavailable": 0}
    assert gateway["minReadySeconds"] == 20
    env = objects["ConfigMap", "dispatch-gateway-config"]["data"]
    # 400/s shared by the 2 pods that may leave at once; 6000 connections at 200/s: 30 s + settle.
    assert env["FLEETCAST_DRAIN_RATE"] == "200"
    assert env["FLEETCAST_DRAIN_SECONDS"] == str(30 + configs.DRAIN_SETTLE_SECONDS)
    grace = gateway["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace == 8 + 30 + configs.DRAIN_SETTLE_SECONDS + configs.TERMINATION_MARGIN_SECONDS
    assert "FLEETCAST_DRAIN_RATE" not in render()["ConfigMap", "dispatch-gateway-config"]["data"]


def test_a_sidecar_consumer_runs_in_every_gateway_pod_without_a_readiness_probe() -> None:
    objects = render(consumer={"placement": "sidecar"})
    assert ("Deployment", "dispatch-consumer") not in objects
    assert ("PodDisruptionBudget", "dispatch-consumer") not in objects
    gateway, consumer = deployment(objects, "gateway")["spec"]["template"]["spec"]["containers"]
    assert consumer["command"] == ["fleetcast-consumer"]
    assert consumer["ports"] == [
        {"name": "consumer", "containerPort": configs.CONSUMER_PORT, "protocol": "TCP"}
    ]
    assert consumer["envFrom"] == [{"configMapRef": {"name": "dispatch-consumer-config"}}]
    assert "readinessProbe" not in consumer  # Kafka trouble must not take the gateway out
    assert consumer["livenessProbe"]["httpGet"] == {"path": "/health", "port": "consumer"}
    assert gateway["readinessProbe"]["httpGet"]["port"] == "http"
    spec = crd.parse({**BASE, "consumer": {"placement": "sidecar"}})
    gone = {(r.kind, r.name) for r in rendering.obsolete(spec, OWNER)}
    assert {
        ("Deployment", "dispatch-consumer"),
        ("PodDisruptionBudget", "dispatch-consumer"),
    } <= gone
    changed = render(consumer={"placement": "sidecar"}, kafka={"bootstrapServers": "k2:9092"})
    assert pod_hash(changed, "gateway") != pod_hash(objects, "gateway")


def test_keda_scales_gateways_on_connections_and_consumers_on_lag() -> None:
    objects = render(
        gateway={
            "autoscaling": {
                "engine": "keda",
                "minReplicas": 2,
                "maxReplicas": 12,
                "keda": {"prometheusAddress": "http://prom:9090", "connectionsPerPod": 4000},
            }
        },
        consumer={"autoscaling": {"enabled": True, "maxReplicas": 6, "lagThreshold": 500}},
        kafka={
            "bootstrapServers": "k:9092",
            "security": {
                "protocol": "SASL_SSL",
                "saslMechanism": "SCRAM-SHA-512",
                "secretRef": {"name": "sasl"},
            },
        },
    )
    assert ("HorizontalPodAutoscaler", "dispatch-gateway") not in objects
    gateway = objects["ScaledObject", "dispatch-gateway"]["spec"]
    assert (gateway["minReplicaCount"], gateway["maxReplicaCount"]) == (2, 12)
    prometheus, cpu = gateway["triggers"]
    assert prometheus["metadata"]["threshold"] == "4000"
    assert (
        'fleetcast_gateway_connections{namespace="fleet",pod=~"dispatch-gateway-.*"}'
        in prometheus["metadata"]["query"]
    )
    assert cpu["metadata"]["value"] == "70"
    consumer = objects["ScaledObject", "dispatch-consumer"]["spec"]
    (kafka,) = consumer["triggers"]
    assert kafka["metadata"]["allowIdleConsumers"] == "false"  # never beyond the partitions
    assert kafka["metadata"]["lagThreshold"] == "500"
    assert (kafka["metadata"]["sasl"], kafka["metadata"]["tls"]) == ("scram_sha512", "enable")
    assert kafka["authenticationRef"] == {"name": "dispatch-consumer"}
    auth = objects["TriggerAuthentication", "dispatch-consumer"]["spec"]["secretTargetRef"]
    assert {(r["parameter"], r["name"], r["key"]) for r in auth} == {
        ("username", "sasl", "username"),
        ("password", "sasl", "password"),
    }
    assert "replicas" not in deployment(objects, "consumer")["spec"]


def test_a_pod_monitor_scrapes_every_pod_of_the_fleetbroadcast_when_asked() -> None:
    assert not [k for k in render() if k[0] == "PodMonitor"]
    objects = render(monitoring={"podMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    monitor = objects["PodMonitor", "dispatch-pods"]
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["selector"]["matchLabels"]["app.kubernetes.io/instance"] == "dispatch"
    assert [e["port"] for e in monitor["spec"]["podMetricsEndpoints"]] == ["http"]


def test_a_rotated_secret_value_rolls_only_the_pods_that_read_it() -> None:
    spec = crd.parse({**BASE, "redis": {"secretRef": {"name": "redis"}}})

    def hashes(jwt: str, redis: str) -> tuple[str, str]:
        inputs = rendering.Inputs({("jwt", "secret"): jwt, ("redis", "url"): redis})
        objects = {
            (m["kind"], m["metadata"]["name"]): m for m in rendering.render(spec, OWNER, inputs)
        }
        return pod_hash(objects, "gateway"), pod_hash(objects, "consumer")

    gateway, consumer = hashes("a", "r")
    assert hashes("a", "r") == (gateway, consumer)
    assert hashes("b", "r") == (hashes("b", "r")[0], consumer)
    assert hashes("b", "r")[0] != gateway
    assert hashes("a", "s")[0] != gateway
    assert hashes("a", "s")[1] != consumer


@pytest.mark.parametrize(
    ("component", "settings_class", "service"),
    [
        ("gateway", gateway_settings.Settings, "fleetcast-gateway"),
        ("consumer", consumer_settings.Settings, "fleetcast-consumer"),
    ],
)
def test_tracing_in_the_spec_renders_the_standard_otel_variables(
    component: str, settings_class: Any, service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert not any(name.startswith("OTEL_") for name in configs.consumer_env(crd.parse(BASE)))
    tracing = {"enabled": True, "endpoint": "http://tempo:4318", "positionRatio": 0.05}
    objects = render(monitoring={"tracing": tracing})
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    env = _settings_from(objects, component, monkeypatch, {"secret": "s" * 40})
    assert env["OTEL_SERVICE_NAME"] == service
    loaded = settings_class()
    assert loaded.tracing_enabled
    assert loaded.traces_endpoint() == "http://tempo:4318/v1/traces"
    assert loaded.otel_traces_sampler_arg == 0.05
