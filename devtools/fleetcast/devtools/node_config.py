"""Configuration of the real test node: pure functions, no I/O.

The node is a network namespace of its own (one of the project's test hosts),
joined to the host by a veth pair: the host end carries the API server's
address, the node end the node's InternalIP. Inside it run containerd (CRI),
the kubelet, kube-proxy (iptables, in that namespace only) and CoreDNS; pods
get their own namespaces on a CNI bridge behind it. Nothing is routed from the
node to anywhere but the host end of the link, and nothing on the host changes
but the veth's host end: iptables rules, the bridge and the pods' addresses
all live inside the node's namespace, so several nodes (several `make test`
runs) can share one machine, each in its own slot.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

NODE_NAME = "fleetcast-node"
#: Network namespaces are named ``fleetcast-node-<slot>``; a slot is taken by creating it.
NETNS_PREFIX = "fleetcast-node-"
SLOTS = 64
#: Pods' addresses on the node's bridge; the same in every slot (never seen by the host).
POD_SUBNET = "10.244.0.0/24"
CLUSTER_CIDR = "10.244.0.0/16"
CLUSTER_DOMAIN = "cluster.local"
BRIDGE = "cni0"
KUBELET_PORT = 10250
KUBE_PROXY_HEALTH_PORT = 10256
COREDNS_READY_PORT = 8181
#: The CNI plugins of Debian's containernetworking-plugins.
CNI_BIN_DIR = Path("/usr/lib/cni")
#: Client identities on the node (certificate CN, groups), as kubeadm names them.
KUBELET_USER = f"system:node:{NODE_NAME}"
KUBELET_GROUPS = ("system:nodes",)
KUBE_PROXY_USER = "system:kube-proxy"  # bound to system:node-proxier by RBAC's bootstrap
COREDNS_USER = "system:coredns"
#: The API server's identity towards kubelets (logs, exec, port-forward).
APISERVER_KUBELET_CLIENT = "kube-apiserver-kubelet-client"


@dataclass(frozen=True)
class NodeNetwork:
    """The addresses and names of one slot's link between host and node."""

    slot: int

    @property
    def netns(self) -> str:
        return f"{NETNS_PREFIX}{self.slot}"

    @property
    def netns_path(self) -> Path:
        return Path("/run/netns") / self.netns

    @property
    def host_if(self) -> str:
        return f"fcn{self.slot}h"

    @property
    def node_if(self) -> str:
        return f"fcn{self.slot}n"

    @property
    def host_ip(self) -> str:
        """Where the API server listens, as the node and the tests see it."""
        return f"10.250.{self.slot}.1"

    @property
    def node_ip(self) -> str:
        """The node's InternalIP: kubelet, NodePorts and cluster DNS answer here."""
        return f"10.250.{self.slot}.2"

    @property
    def prefix(self) -> int:
        return 24

    @property
    def cgroup_root(self) -> str:
        """The kubelet's --cgroup-root: every pod's cgroup is under it."""
        return f"/{self.netns}"


@dataclass(frozen=True)
class NodeDirs:
    """Where one node keeps its state, under the cluster's work folder."""

    base: Path

    @property
    def containerd_root(self) -> Path:
        return self.base / "containerd" / "root"

    @property
    def containerd_state(self) -> Path:
        return self.base / "containerd" / "state"

    @property
    def containerd_socket(self) -> Path:
        return self.base / "containerd" / "containerd.sock"

    @property
    def cni_conf(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def cni_ipam(self) -> Path:
        return self.base / "cni" / "ipam"

    @property
    def kubelet_root(self) -> Path:
        return self.base / "kubelet"

    @property
    def pod_logs(self) -> Path:
        return self.base / "pod-logs"


def setup_commands(net: NodeNetwork) -> list[list[str]]:
    """`ip`/`sysctl`/`iptables` commands that build the slot's link (netns already added)."""
    inside = ["ip", "netns", "exec", net.netns]
    return [
        ["ip", "link", "add", net.host_if, "type", "veth", "peer", "name", net.node_if],
        ["ip", "link", "set", net.node_if, "netns", net.netns],
        ["ip", "addr", "add", f"{net.host_ip}/{net.prefix}", "dev", net.host_if],
        ["ip", "link", "set", net.host_if, "up"],
        [*inside, "ip", "addr", "add", f"{net.node_ip}/{net.prefix}", "dev", net.node_if],
        [*inside, "ip", "link", "set", net.node_if, "up"],
        [*inside, "ip", "link", "set", "lo", "up"],
        # Routing between pods, Services and the link happens in the node's namespace.
        [*inside, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1"],
        [*inside, "sysctl", "-q", "-w", "net.bridge.bridge-nf-call-iptables=1"],
        # Pods reach the API server as the node's address, so the host needs no
        # route back to the pod subnet (and slots may all use the same one).
        [*inside, "iptables", "-t", "nat", "-A", "POSTROUTING", "-s", CLUSTER_CIDR,
         "-o", net.node_if, "-j", "MASQUERADE"],
    ]  # fmt: skip


def containerd_config(dirs: NodeDirs, sandbox_image: str) -> str:
    """containerd 1.6 (config version 2) with its CRI plugin, all state under ``dirs``."""
    cri = 'plugins."io.containerd.grpc.v1.cri"'
    return "\n".join(
        [
            "version = 2",
            f'root = "{dirs.containerd_root}"',
            f'state = "{dirs.containerd_state}"',
            'disabled_plugins = ["io.containerd.snapshotter.v1.aufs",'
            ' "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",'
            ' "io.containerd.snapshotter.v1.devmapper"]',
            "[grpc]",
            f'  address = "{dirs.containerd_socket}"',
            "[ttrpc]",
            f'  address = "{dirs.containerd_socket}.ttrpc"',
            "[debug]",
            '  level = "warn"',
            f"[{cri}]",
            f'  sandbox_image = "{sandbox_image}"',
            # Pod network namespaces under the state folder, so teardown finds them.
            "  netns_mounts_under_state_dir = true",
            # The kubelet asks for oom_score_adj -998 for sandboxes; a machine that
            # withholds CAP_SYS_RESOURCE refuses any value below containerd's own.
            "  restrict_oom_score_adj = true",
            f"[{cri}.containerd]",
            '  snapshotter = "overlayfs"',
            '  default_runtime_name = "runc"',
            f"[{cri}.containerd.runtimes.runc]",
            '  runtime_type = "io.containerd.runc.v2"',
            f"[{cri}.containerd.runtimes.runc.options]",
            "  SystemdCgroup = false",
            f"[{cri}.cni]",
            f'  bin_dir = "{CNI_BIN_DIR}"',
            f'  conf_dir = "{dirs.cni_conf}"',
            "  max_conf_num = 1",
            "",
        ]
    )


def cni_conflist(dirs: NodeDirs) -> str:
    """A bridge with host-local addresses; no masquerade: pods reach only the host end."""
    bridge = {
        "type": "bridge",
        "bridge": BRIDGE,
        "isGateway": True,
        "ipMasq": False,
        "hairpinMode": True,  # a pod reaches itself through its own Service
        "ipam": {
            "type": "host-local",
            "ranges": [[{"subnet": POD_SUBNET}]],
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": str(dirs.cni_ipam),
        },
    }
    return json.dumps({"cniVersion": "0.4.0", "name": "fleetcast", "plugins": [bridge]}, indent=2)


def kubelet_config(net: NodeNetwork, dirs: NodeDirs, pki_dir: Path) -> dict[str, Any]:
    """KubeletConfiguration: webhook authn/z, cgroupfs under the slot's root, our DNS."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "address": net.node_ip,
        "port": KUBELET_PORT,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "tlsCertFile": str(pki_dir / "kubelet-serving.crt"),
        "tlsPrivateKeyFile": str(pki_dir / "kubelet-serving.key"),
        "authentication": {
            "anonymous": {"enabled": False},
            "webhook": {"enabled": True},
            "x509": {"clientCAFile": str(pki_dir / "ca.crt")},
        },
        "authorization": {"mode": "Webhook"},
        "containerRuntimeEndpoint": f"unix://{dirs.containerd_socket}",
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": net.cgroup_root,
        "cgroupsPerQOS": True,
        "clusterDNS": [net.node_ip],
        "clusterDomain": CLUSTER_DOMAIN,
        # No host resolver: a name outside the cluster is never looked up anywhere.
        "resolvConf": "",
        "podLogsDir": str(dirs.pod_logs),
        "failSwapOn": False,
        "rotateCertificates": False,
        "serverTLSBootstrap": False,
        "registerNode": True,
        "maxPods": 110,
        "serializeImagePulls": False,
        # Images are imported, never pulled: they must not be collected either.
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        # A shared test machine's disk may be fuller than a node's would be.
        "evictionHard": {
            "memory.available": "100Mi",
            "nodefs.available": "1%",
            "nodefs.inodesFree": "1%",
            "imagefs.available": "1%",
        },
        "nodeStatusUpdateFrequency": "5s",
        "syncFrequency": "10s",
    }


def kubelet_args(net: NodeNetwork, dirs: NodeDirs, work: Path) -> list[str]:
    return [
        f"--config={dirs.base / 'kubelet.yaml'}",
        f"--kubeconfig={work / 'kubelet.kubeconfig'}",
        f"--root-dir={dirs.kubelet_root}",
        f"--cert-dir={dirs.kubelet_root / 'pki'}",
        f"--node-ip={net.node_ip}",
        f"--hostname-override={NODE_NAME}",
        "--v=1",
    ]


def kube_proxy_config(net: NodeNetwork, work: Path) -> dict[str, Any]:
    """iptables mode in the node's namespace; global conntrack sysctls left alone."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(work / "kube-proxy.kubeconfig")},
        "hostnameOverride": NODE_NAME,
        "bindAddress": net.node_ip,
        "healthzBindAddress": f"{net.node_ip}:{KUBE_PROXY_HEALTH_PORT}",
        "metricsBindAddress": "127.0.0.1:10249",
        "mode": "iptables",
        "clusterCIDR": CLUSTER_CIDR,
        # Zero leaves nf_conntrack_max and the TCP timeouts as they are (machine-wide).
        "conntrack": {
            "maxPerCore": 0,
            "min": 0,
            "tcpEstablishedTimeout": "0s",
            "tcpCloseWaitTimeout": "0s",
        },
        "iptables": {"localhostNodePorts": False, "minSyncPeriod": "0s", "syncPeriod": "30s"},
    }


def corefile(net: NodeNetwork, work: Path) -> str:
    """Cluster names only; every other name is refused (no forward plugin, no upstream)."""
    kubeconfig = work / "coredns.kubeconfig"
    return f"""\
{CLUSTER_DOMAIN}:53 in-addr.arpa:53 {{
    errors
    ready {net.node_ip}:{COREDNS_READY_PORT}
    kubernetes {CLUSTER_DOMAIN} in-addr.arpa {{
        kubeconfig {kubeconfig}
        pods insecure
        ttl 5
    }}
    cache 5
}}
.:53 {{
    errors
}}
"""


def coredns_rbac() -> list[dict[str, Any]]:
    """What CoreDNS's kubernetes plugin reads, bound to its certificate's user."""
    name = COREDNS_USER
    rules = [
        {
            "apiGroups": [""],
            "resources": ["endpoints", "services", "pods", "namespaces"],
            "verbs": ["list", "watch"],
        },
        {
            "apiGroups": ["discovery.k8s.io"],
            "resources": ["endpointslices"],
            "verbs": ["list", "watch"],
        },
    ]
    role = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name},
        "rules": rules,
    }
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": name}],
    }
    return [role, binding]
