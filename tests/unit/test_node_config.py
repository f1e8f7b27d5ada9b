"""The real test node's configuration (fleetcast.devtools.node_config): pure, no node."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from fleetcast.devtools import cluster_flags, node_config
from fleetcast.devtools.node_config import NodeDirs, NodeNetwork


@pytest.mark.parametrize("slot", [0, 7, node_config.SLOTS - 1])
def test_each_slot_has_its_own_names_and_link(slot: int) -> None:
    net = NodeNetwork(slot)
    assert len(net.host_if) <= 15
    assert len(net.node_if) <= 15
    assert net.host_ip.rsplit(".", 1)[0] == net.node_ip.rsplit(".", 1)[0]
    assert net.host_ip != net.node_ip
    others = {NodeNetwork(s).host_ip for s in range(node_config.SLOTS) if s != slot}
    assert net.host_ip not in others
    assert net.netns.startswith(node_config.NETNS_PREFIX)
    assert net.cgroup_root == f"/{net.netns}"


def test_every_rule_and_route_stays_inside_the_node() -> None:
    """The host gets the veth's host end and its address, nothing else."""
    net = NodeNetwork(3)
    host_side = [
        cmd for cmd in node_config.setup_commands(net) if cmd[:3] != ["ip", "netns", "exec"]
    ]
    assert all(cmd[0] == "ip" for cmd in host_side)
    assert not any("route" in cmd or "iptables" in cmd or "sysctl" in cmd for cmd in host_side)
    (masquerade,) = [cmd for cmd in node_config.setup_commands(net) if "MASQUERADE" in cmd]
    assert masquerade[masquerade.index("-s") + 1] == node_config.CLUSTER_CIDR
    assert masquerade[masquerade.index("-o") + 1] == net.node_if


def test_containerd_keeps_all_state_under_the_node_folder(tmp_path: Path) -> None:
    dirs = NodeDirs(tmp_path)
    parsed = tomllib.loads(node_config.containerd_config(dirs, "fleetcast-e2e/pause:v1"))
    assert parsed["root"] == str(dirs.containerd_root)
    assert parsed["state"] == str(dirs.containerd_state)
    assert parsed["grpc"]["address"] == str(dirs.containerd_socket)
    cri = parsed["plugins"]["io.containerd.grpc.v1.cri"]
    assert cri["sandbox_image"] == "fleetcast-e2e/pause:v1"
    assert cri["netns_mounts_under_state_dir"] is True
    assert cri["restrict_oom_score_adj"] is True  # CAP_SYS_RESOURCE may be withheld
    assert cri["cni"]["conf_dir"] == str(dirs.cni_conf)
    assert cri["containerd"]["runtimes"]["runc"]["options"]["SystemdCgroup"] is False


def test_the_pod_network_reaches_nothing_but_the_node(tmp_path: Path) -> None:
    (bridge,) = json.loads(node_config.cni_conflist(NodeDirs(tmp_path)))["plugins"]
    assert bridge["type"] == "bridge"
    assert bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": node_config.POD_SUBNET}]]
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))


def test_kubelet_authenticates_callers_and_uses_only_cluster_dns(tmp_path: Path) -> None:
    net = NodeNetwork(1)
    config = node_config.kubelet_config(net, NodeDirs(tmp_path), tmp_path / "pki")
    assert config["authentication"]["anonymous"]["enabled"] is False
    assert config["authorization"]["mode"] == "Webhook"
    assert config["clusterDNS"] == [net.node_ip]
    assert config["resolvConf"] == ""
    assert config["cgroupDriver"] == "cgroupfs"
    assert config["cgroupRoot"] == net.cgroup_root
    assert config["address"] == net.node_ip
    assert config["readOnlyPort"] == 0
    assert f"--node-ip={net.node_ip}" in node_config.kubelet_args(net, NodeDirs(tmp_path), tmp_path)


def test_kube_proxy_leaves_machine_wide_conntrack_settings_alone(tmp_path: Path) -> None:
    config = node_config.kube_proxy_config(NodeNetwork(0), tmp_path)
    assert config["mode"] == "iptables"
    assert set(config["conntrack"].values()) == {0, "0s"}
    assert config["clusterCIDR"] == node_config.CLUSTER_CIDR


def test_cluster_dns_never_forwards(tmp_path: Path) -> None:
    corefile = node_config.corefile(NodeNetwork(0), tmp_path)
    plugins = {line.split()[0] for line in corefile.splitlines() if line.strip()}
    assert "forward" not in plugins
    assert "kubernetes" in plugins
    role, binding = node_config.coredns_rbac()
    assert {tuple(r["verbs"]) for r in role["rules"]} == {("list", "watch")}
    assert binding["subjects"][0]["name"] == node_config.COREDNS_USER


def test_the_api_server_binds_the_node_link_only_with_a_node(tmp_path: Path) -> None:
    ports = cluster_flags.Ports(1, 2, 3, 4, 5)
    kwok = cluster_flags.apiserver_args(ports, tmp_path)
    assert "--bind-address=127.0.0.1" in kwok
    assert "--endpoint-reconciler-type=none" in kwok
    assert not any(flag.startswith("--kubelet-client") for flag in kwok)
    real = cluster_flags.apiserver_args(ports, tmp_path, address="10.250.0.1")
    assert "--bind-address=10.250.0.1" in real
    assert "--advertise-address=10.250.0.1" in real
    assert "--endpoint-reconciler-type=none" not in real  # the kubernetes Service's endpoint
    assert f"--kubelet-client-certificate={tmp_path / 'apiserver-kubelet-client.crt'}" in real
