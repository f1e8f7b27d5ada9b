"""Image names: one list (tools/images/images.env), read by the scripts, the node and
the e2e manifests alike."""

from __future__ import annotations

from pathlib import Path

import yaml

from fleetcast.devtools import images

ROOT = Path(__file__).resolve().parents[2]


def test_the_e2e_backing_services_run_the_images_make_images_builds() -> None:
    refs = images.references()
    docs = yaml.safe_load_all((ROOT / "tests/e2e/backing-services.yaml").read_text())
    used = {
        container["image"]
        for doc in docs
        if doc["kind"] == "Deployment"
        for container in doc["spec"]["template"]["spec"]["containers"]
    }
    assert used == {refs.redis, refs.kafka}


def test_every_node_image_has_a_tarball_name_of_its_own() -> None:
    refs = images.references()
    names = {images.tarball(ref).name for ref in refs.node_images()}
    assert len(names) == len(refs.node_images())
    assert images.tarball("fleetcast-e2e/kafka:4.1.1").name == "fleetcast-e2e_kafka_4.1.1.tar"


def test_the_pause_image_is_the_pinned_release() -> None:
    versions = images.read_env(ROOT / "tools/k8s/versions.env")
    assert images.references().pause.endswith(f":{versions['KUBERNETES_VERSION']}")


def test_read_env_skips_comments(tmp_path: Path) -> None:
    env = tmp_path / "x.env"
    env.write_text("# a comment\n\nA=1\nB=x=y\n")
    assert images.read_env(env) == {"A": "1", "B": "x=y"}
