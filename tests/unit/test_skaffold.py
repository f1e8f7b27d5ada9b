"""skaffold.yaml against the known structure of skaffold/v4beta13, plus its references.

Skaffold itself is not installed here (the Go module proxy refuses
github.com/GoogleContainerTools/skaffold/v2: "This module version is not
available"), so this is a JSON-schema-style check in Python of the part of
the v4beta13 schema fleetcast uses, transcribed from Skaffold's published
schema (docs-v2/content/en/schemas/v4beta13.json): the same property names,
types and required keys, and like Skaffold every object is closed
(``additionalProperties: false``), so a misspelt key fails here as it would in
``skaffold diagnose``. On a machine with Skaffold, ``skaffold diagnose`` is the
real check. The second half checks what a schema cannot: that the files,
charts, images and profiles it names exist and agree with the chart.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from fleetcast.devtools import images

ROOT = Path(__file__).resolve().parents[2]
SKAFFOLD = ROOT / "skaffold.yaml"

# A property spec: a JSON type name, "string|integer", ("ref", Definition),
# ("list", spec) or ("map", spec) (an object whose values all match spec).
Spec = Any
_STRINGS: Spec = ("list", "string")
_DEFINITIONS: dict[str, tuple[dict[str, Spec], tuple[str, ...]]] = {
    "SkaffoldConfig": (
        {
            "apiVersion": "string",
            "kind": "string",
            "metadata": ("ref", "Metadata"),
            "build": ("ref", "BuildConfig"),
            "manifests": ("ref", "RenderConfig"),
            "deploy": ("ref", "DeployConfig"),
            "portForward": ("list", ("ref", "PortForwardResource")),
            "profiles": ("list", ("ref", "Profile")),
        },
        ("apiVersion", "kind"),
    ),
    "Metadata": (
        {"name": "string", "labels": ("map", "string"), "annotations": ("map", "string")},
        (),
    ),
    "BuildConfig": (
        {
            "artifacts": ("list", ("ref", "Artifact")),
            "tagPolicy": ("ref", "TagPolicy"),
            "local": ("ref", "LocalBuild"),
            "platforms": _STRINGS,
            "insecureRegistries": _STRINGS,
        },
        (),
    ),
    "Artifact": (
        {
            "image": "string",
            "context": "string",
            "docker": ("ref", "DockerArtifact"),
            "custom": ("ref", "CustomArtifact"),
            "platforms": _STRINGS,
        },
        ("image",),
    ),
    "CustomArtifact": (
        {"buildCommand": "string", "dependencies": ("ref", "CustomDependencies")},
        (),
    ),
    "CustomDependencies": (
        {"dockerfile": "object", "command": "string", "paths": _STRINGS, "ignore": _STRINGS},
        (),
    ),
    "DockerArtifact": (
        {
            "dockerfile": "string",
            "target": "string",
            "buildArgs": ("map", "string"),
            "cacheFrom": _STRINGS,
            "noCache": "boolean",
            "pullParent": "boolean",
        },
        (),
    ),
    "TagPolicy": (
        {"inputDigest": ("ref", "InputDigest"), "gitCommit": ("ref", "GitTagger")},
        (),
    ),
    "InputDigest": ({}, ()),
    "GitTagger": ({"variant": "string", "prefix": "string", "ignoreChanges": "boolean"}, ()),
    "LocalBuild": (
        {
            "push": "boolean",
            "useBuildkit": "boolean",
            "useDockerCLI": "boolean",
            "concurrency": "integer",
            "tryImportMissing": "boolean",
        },
        (),
    ),
    "RenderConfig": ({"rawYaml": _STRINGS}, ()),
    "DeployConfig": (
        {
            "helm": ("ref", "LegacyHelmDeploy"),
            "kubectl": ("ref", "KubectlDeploy"),
            "kubeContext": "string",
            "statusCheck": "boolean",
            "statusCheckDeadlineSeconds": "integer",
        },
        (),
    ),
    "KubectlDeploy": ({"defaultNamespace": "string", "remoteManifests": _STRINGS}, ()),
    "LegacyHelmDeploy": (
        {"releases": ("list", ("ref", "HelmRelease")), "concurrency": "integer"},
        (),
    ),
    "HelmRelease": (
        {
            "name": "string",
            "chartPath": "string",
            "namespace": "string",
            "createNamespace": "boolean",
            "dependsOn": _STRINGS,
            "valuesFiles": _STRINGS,
            "setValues": ("map", "string|integer|boolean"),
            "setValueTemplates": ("map", "string"),
            "skipBuildDependencies": "boolean",
            "upgradeOnChange": "boolean",
            "wait": "boolean",
            "version": "string",
        },
        ("name",),
    ),
    "PortForwardResource": (
        {
            "resourceType": "string",
            "resourceName": "string",
            "namespace": "string",
            "port": "string|integer",
            "localPort": "integer",
            "address": "string",
        },
        (),
    ),
    "Profile": (
        {
            "name": "string",
            "activation": ("list", ("ref", "Activation")),
            "requiresAllActivations": "boolean",
            "build": ("ref", "BuildConfig"),
            "manifests": ("ref", "RenderConfig"),
            "deploy": ("ref", "DeployConfig"),
            "portForward": ("list", ("ref", "PortForwardResource")),
        },
        ("name",),
    ),
    "Activation": ({"env": "string", "kubeContext": "string", "command": "string"}, ()),
}
_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "boolean": (bool,),
    "object": (dict,),
}
# Skaffold's resource types for port-forward (pkg/skaffold/schema/latest: ResourceType).
_RESOURCE_TYPES = {"pod", "deployment", "service", "replicaset", "statefulset", "daemonset"}


def _type_errors(where: str, value: Any, names: str) -> list[str]:
    for name in names.split("|"):
        if isinstance(value, _JSON_TYPES[name]) and not (
            name == "integer" and isinstance(value, bool)
        ):
            return []
    return [f"{where}: expected {names}, got {type(value).__name__}"]


def validate(where: str, value: Any, spec: Spec) -> list[str]:
    """Every violation of ``spec`` at ``where``; an empty list means valid."""
    if isinstance(spec, str):
        return _type_errors(where, value, spec)
    kind, inner = spec
    if kind == "list":
        if not isinstance(value, list):
            return [f"{where}: expected a list"]
        return [e for i, item in enumerate(value) for e in validate(f"{where}[{i}]", item, inner)]
    if not isinstance(value, dict):
        return [f"{where}: expected an object"]
    if kind == "map":
        return [e for k, v in value.items() for e in validate(f"{where}.{k}", v, inner)]
    properties, required = _DEFINITIONS[inner]
    errors = [f"{where}: unknown key {k!r} ({inner})" for k in value if k not in properties]
    errors += [f"{where}: missing required {k!r}" for k in required if k not in value]
    for key, child in value.items():
        if key in properties:
            errors += validate(f"{where}.{key}", child, properties[key])
    return errors


@pytest.fixture(scope="module")
def config() -> dict[str, Any]:
    loaded = yaml.safe_load(SKAFFOLD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def _all_sections(config: dict[str, Any], section: str) -> list[Any]:
    """A section of the base config and of every profile that has it."""
    found = [config[section]] if section in config else []
    return found + [p[section] for p in config.get("profiles", []) if section in p]


def test_schema_valid(config: dict[str, Any]) -> None:
    assert validate("skaffold.yaml", config, ("ref", "SkaffoldConfig")) == []
    assert re.fullmatch(r"skaffold/v4beta\d+", config["apiVersion"])
    assert config["kind"] == "Config"


def test_validator_rejects_what_skaffold_rejects() -> None:
    bad = {
        "apiVersion": "skaffold/v4beta13",
        "kind": "Config",
        "deploy": {"helm": {"releases": [{"chartPath": "x", "setValues": {"a": ["list"]}}]}},
        "portForward": [{"resourceType": "service", "localport": 8080}],
    }
    errors = validate("bad", bad, ("ref", "SkaffoldConfig"))
    assert "bad.deploy.helm.releases[0]: missing required 'name'" in errors
    assert any("setValues.a: expected" in e for e in errors)
    assert any("unknown key 'localport'" in e for e in errors)


def test_profiles_for_kind_and_a_plain_cluster(config: dict[str, Any]) -> None:
    profiles = {p["name"]: p for p in config["profiles"]}
    assert set(profiles) >= {"kind", "cluster"}
    kind = profiles["kind"]
    assert kind["deploy"]["kubeContext"] == "kind-fleetcast"
    assert kind["build"]["local"]["push"] is False  # kind loads local images
    assert profiles["cluster"]["build"]["local"]["push"] is True
    kind_config = yaml.safe_load((ROOT / "tests/e2e/kind.yaml").read_text())
    assert kind_config["kind"] == "Cluster"  # `make kind-up` names it fleetcast


def test_references_exist(config: dict[str, Any]) -> None:
    for build in _all_sections(config, "build"):
        for artifact in build.get("artifacts", []):
            context = ROOT / artifact.get("context", ".")
            if "docker" in artifact:
                assert (context / artifact["docker"]["dockerfile"]).is_file()
            else:
                assert (context / artifact["custom"]["buildCommand"]).is_file()
    for manifests in _all_sections(config, "manifests"):
        for raw in manifests["rawYaml"]:
            assert (ROOT / raw).is_file(), raw
    for release in config["deploy"]["helm"]["releases"]:
        assert (ROOT / release["chartPath"] / "Chart.yaml").is_file()
        for values in release.get("valuesFiles", []):
            assert (ROOT / values).is_file(), values


def test_images_reach_the_chart(config: dict[str, Any]) -> None:
    """Each release gets the built image through the chart's image.* values."""
    images = {a["image"] for a in config["build"]["artifacts"]}
    chart_values = yaml.safe_load((ROOT / "charts/fleetcast/values.yaml").read_text())
    for release in config["deploy"]["helm"]["releases"]:
        templates = release["setValueTemplates"]
        assert set(templates) == {"image.repository", "image.tag"}
        for key, template in templates.items():
            assert key.split(".")[1] in chart_values["image"]
            named = set(re.findall(r"IMAGE_(?:REPO|TAG)_(\w+)", template))
            assert named, template
            assert named <= images, template


def test_port_forward_reaches_the_gateway(config: dict[str, Any]) -> None:
    (forward,) = config["portForward"]
    assert forward["resourceType"] in _RESOURCE_TYPES
    assert forward["localPort"] == 8080
    instance = yaml.safe_load(
        (ROOT / "charts/fleetcast/ci/05-dev-instance-values.yaml").read_text()
    )
    assert forward["resourceName"] == f"{instance['fleetBroadcast']['name']}-gateway"
    assert forward["namespace"] == config["deploy"]["helm"]["releases"][1]["namespace"]


def test_the_image_it_builds_follows_the_rules(config: dict[str, Any]) -> None:
    """The Dockerfile skaffold (and `make images`) builds, read as text."""
    (artifact,) = config["build"]["artifacts"]
    assert artifact["custom"]["buildCommand"] == "scripts/skaffold-build.sh"
    assert "scripts/images.sh" in (ROOT / "scripts/skaffold-build.sh").read_text()
    text = (ROOT / "Dockerfile").read_text()
    assert not text.startswith("# syntax"), "a frontend image would be pulled"
    stages = re.split(r"(?m)^FROM ", text)[1:]
    assert len(stages) == 2, "multi-stage: build, then a clean final stage"
    base = images.read_env()["PYTHON_BASE_IMAGE"]
    assert re.search(rf"(?m)^ARG PYTHON_IMAGE={re.escape(base)}$", text), "the Debian-made base"
    final = stages[-1]
    assert "uv " not in final
    assert "pip uninstall" in final  # no installer left at run time
    assert re.search(r"(?m)^USER 10001:10001$", final)
    assert re.search(r"(?m)^HEALTHCHECK ", final)
    for label in ("title", "description", "version", "revision", "created", "licenses"):
        assert f"org.opencontainers.image.{label}=" in final, label
    # From the lock (hash-checked, without dev tools), offline.
    assert "--require-hashes" in stages[0]
    assert "--offline --no-index" in stages[0]
    rules = [
        line for line in (ROOT / ".dockerignore").read_text().splitlines() if line[:1] not in "#"
    ]
    assert rules[0] == "*"  # an allow-list: only what is named below reaches the daemon


def test_make_images_says_plainly_when_there_is_no_engine(tmp_path: Path) -> None:
    """An engine named by DOCKER_HOST that does not answer: `make images` fails at once,
    saying so, and starts no local engine in its place."""
    env = {
        "PATH": "/usr/bin:/bin:/usr/local/bin",
        "HOME": str(tmp_path),
        "FLEETCAST_CACHE": str(tmp_path / "cache"),
        "DOCKER_HOST": f"unix://{tmp_path}/none.sock",
    }
    done = subprocess.run(
        [ROOT / "scripts/images.sh"], env=env, capture_output=True, text=True, check=False
    )
    assert done.returncode == 1
    assert "does not answer" in done.stderr or "no 'docker' command" in done.stderr, done.stderr
    assert re.search(r"(?m)^images: no Docker engine to build with$", done.stderr), done.stderr
    assert not (tmp_path / "cache" / "docker" / "dockerd.pid").exists()
