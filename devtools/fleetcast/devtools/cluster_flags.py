"""Command lines and seed objects of the test control plane: pure functions, no I/O.

Every component listens on 127.0.0.1 only, each on a port picked at start.
The flags follow a kubeadm cluster where it matters to the tests (default
admission plus NodeRestriction, Node+RBAC authorization, one identity per
component, controllers using their own ServiceAccounts) and are trimmed where
it only costs start-up time or memory (no fsync in etcd, no profiling, no
storage/certificate/cloud controllers, no fake kubelet server).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fleetcast.devtools.ports import free_ports

SERVICE_CIDR = "10.96.0.0/16"
LOOPBACK = "127.0.0.1"
FRONT_PROXY_CLIENT = "front-proxy-client"
ETCD_NAME = "fleetcast"
SERVICE_ACCOUNT_ISSUER = "https://kubernetes.default.svc.cluster.local"
NODE_NAMES = ("kwok-node-0", "kwok-node-1")
#: kwok manages only nodes with this annotation (so a real node is never faked).
KWOK_NODE_ANNOTATION = ("kwok.x-k8s.io/node", "fake")
#: Controllers a Deployment/Service/HPA/PDB workload needs, and the ones that
#: keep RBAC and namespaces working; storage, certificates and cloud are left out.
CONTROLLERS = (
    "serviceaccount-controller",
    "serviceaccount-token-controller",
    "root-ca-certificate-publisher-controller",
    "namespace-controller",
    "garbage-collector-controller",
    "clusterrole-aggregation-controller",
    "deployment-controller",
    "replicaset-controller",
    "statefulset-controller",
    "daemonset-controller",
    "job-controller",
    "horizontal-pod-autoscaler-controller",
    "disruption-controller",
    "endpoints-controller",
    "endpointslice-controller",
    "resourcequota-controller",
    "pod-garbage-collector-controller",
    "node-lifecycle-controller",
    "taint-eviction-controller",
)


@dataclass(frozen=True)
class Ports:
    """Loopback ports of the listening components."""

    etcd: int
    etcd_peer: int
    apiserver: int
    controller_manager: int
    scheduler: int

    @classmethod
    def pick(cls) -> Ports:
        return cls(*free_ports(5))


def etcd_args(ports: Ports, data_dir: Path) -> list[str]:
    peer = f"http://127.0.0.1:{ports.etcd_peer}"
    client = f"http://127.0.0.1:{ports.etcd}"
    return [
        f"--name={ETCD_NAME}",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={client}",
        f"--advertise-client-urls={client}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster={ETCD_NAME}={peer}",
        "--unsafe-no-fsync=true",  # a test cluster's data does not outlive it
        "--log-level=warn",
    ]


#: What the API server's audit log records: every request of a ServiceAccount
#: outside kube-system (the operators under test), at Metadata level (who, verb,
#: resource, response code; no bodies), so a test can prove which verbs of its
#: RBAC rules an operator used. The controllers' own accounts are left out.
AUDIT_POLICY = {
    "apiVersion": "audit.k8s.io/v1",
    "kind": "Policy",
    "omitStages": ["RequestReceived"],
    "rules": [
        {"level": "None", "userGroups": ["system:serviceaccounts:kube-system", "system:nodes"]},
        {"level": "Metadata", "userGroups": ["system:serviceaccounts"]},
        {"level": "None"},
    ],
}
AUDIT_POLICY_FILE = "audit-policy.yaml"
#: The audit log, in the work folder's logs (JSON lines).
AUDIT_LOG = "logs/audit.log"


def apiserver_args(ports: Ports, pki_dir: Path, *, address: str = LOOPBACK) -> list[str]:
    """The API server on ``address``: loopback, or the host end of a real node's link.

    With a real node the address is advertised as the `kubernetes` Service's
    endpoint (pods reach the API there), and the API server reaches kubelets
    (logs, exec, port-forward) with a client certificate of its own.
    """
    work = pki_dir.parent
    return [
        f"--etcd-servers=http://127.0.0.1:{ports.etcd}",
        f"--bind-address={address}",
        f"--advertise-address={address}",
        f"--secure-port={ports.apiserver}",
        f"--cert-dir={pki_dir}",
        f"--tls-cert-file={pki_dir / 'apiserver.crt'}",
        f"--tls-private-key-file={pki_dir / 'apiserver.key'}",
        f"--client-ca-file={pki_dir / 'ca.crt'}",
        f"--service-account-issuer={SERVICE_ACCOUNT_ISSUER}",
        f"--service-account-key-file={pki_dir / 'sa.pub'}",
        f"--service-account-signing-key-file={pki_dir / 'sa.key'}",
        f"--service-cluster-ip-range={SERVICE_CIDR}",
        "--authorization-mode=Node,RBAC",
        "--enable-admission-plugins=NodeRestriction",  # on top of the default set, as kubeadm
        # The aggregation layer's front proxy, as kubeadm sets it up; the controller
        # manager and scheduler read this CA to authenticate proxied requests.
        f"--requestheader-client-ca-file={pki_dir / 'front-proxy-ca.crt'}",
        f"--requestheader-allowed-names={FRONT_PROXY_CLIENT}",
        "--requestheader-username-headers=X-Remote-User",
        "--requestheader-group-headers=X-Remote-Group",
        "--requestheader-extra-headers-prefix=X-Remote-Extra-",
        f"--proxy-client-cert-file={pki_dir / 'front-proxy-client.crt'}",
        f"--proxy-client-key-file={pki_dir / 'front-proxy-client.key'}",
        "--allow-privileged=true",
        "--profiling=false",
        f"--audit-policy-file={work / AUDIT_POLICY_FILE}",
        f"--audit-log-path={work / AUDIT_LOG}",
        "--audit-log-format=json",
        "--audit-log-maxsize=100",
        "--audit-log-maxbackup=1",
        *(_node_flags(pki_dir) if address != LOOPBACK else _KWOK_ONLY),
    ]


#: Endpoints may not hold a loopback address: with no node, no endpoint reconciling.
_KWOK_ONLY = ["--endpoint-reconciler-type=none"]


def _node_flags(pki_dir: Path) -> list[str]:
    return [
        f"--kubelet-client-certificate={pki_dir / 'apiserver-kubelet-client.crt'}",
        f"--kubelet-client-key={pki_dir / 'apiserver-kubelet-client.key'}",
        "--kubelet-preferred-address-types=InternalIP",
    ]


def _client_component(name: str, port: int, work: Path) -> list[str]:
    """Flags kube-controller-manager and kube-scheduler share.

    Each reaches the API with its own identity (``<name>.kubeconfig``), which
    also authenticates and authorizes callers of its loopback HTTPS port; the
    serving certificate comes from the test CA so probes can verify it.
    """
    kubeconfig = work / f"{name}.kubeconfig"
    return [
        f"--kubeconfig={kubeconfig}",
        f"--authentication-kubeconfig={kubeconfig}",
        f"--authorization-kubeconfig={kubeconfig}",
        "--bind-address=127.0.0.1",
        f"--secure-port={port}",
        f"--tls-cert-file={work / 'pki' / f'{name}-serving.crt'}",
        f"--tls-private-key-file={work / 'pki' / f'{name}-serving.key'}",
        "--leader-elect=false",
        "--profiling=false",
    ]


def controller_manager_args(ports: Ports, work: Path) -> list[str]:
    return [
        *_client_component("controller-manager", ports.controller_manager, work),
        "--use-service-account-credentials=true",  # one RBAC identity per controller
        f"--root-ca-file={work / 'pki' / 'ca.crt'}",
        f"--service-account-private-key-file={work / 'pki' / 'sa.key'}",
        f"--controllers={','.join(CONTROLLERS)}",
    ]


def scheduler_args(ports: Ports, work: Path) -> list[str]:
    return _client_component("scheduler", ports.scheduler, work)


def kwok_args(work: Path) -> list[str]:
    key, value = KWOK_NODE_ANNOTATION
    return [
        f"--kubeconfig={work / 'admin.kubeconfig'}",
        f"--config={work / 'kwok.yaml'}",
        "--manage-all-nodes=false",
        f"--manage-nodes-with-annotation-selector={key}={value}",
        "--node-ip=127.0.0.1",
        "--node-port=0",  # serve no fake kubelet API (logs/exec are not needed)
        "--node-lease-duration-seconds=40",
    ]


def fake_node(name: str) -> dict[str, object]:
    """A Node kwok manages: no taint, so ordinary pods (and Helm charts) land on it."""
    key, value = KWOK_NODE_ANNOTATION
    resources = {"cpu": "32", "memory": "256Gi", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "annotations": {key: value},
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "type": "kwok",
            },
        },
        "status": {"allocatable": resources, "capacity": resources},
    }
