"""Client-side access to a test cluster: kubectl and helm runners, ServiceAccount
kubeconfigs, and a tiny HTTPS client for start-up probes.

Kept apart from the process management in `cluster` because the e2e suite uses
it on clusters this project did not start (kind, via FLEETCAST_TEST_KUBECONFIG).
"""

from __future__ import annotations

import base64
import http.client
import json
import shutil
import ssl
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import kubernetes
import yaml

from fleetcast.devtools import pki

DEFAULT_SA_PATH = "/api/v1/namespaces/default/serviceaccounts/default"
Probe = Callable[[], bool]


class ClusterError(RuntimeError):
    """The control plane did not start or a command against it failed."""


@dataclass(frozen=True)
class ClusterAccess:
    """A cluster as the tests see it: an admin kubeconfig and the client binaries.

    ``bin_dir`` holds kubectl and helm of the pinned versions; with no bin_dir,
    or a tool missing there, the tool is looked up on PATH (kind machines may
    bring their own).
    ``scratch`` is where ServiceAccount kubeconfigs are written.
    """

    kubeconfig: Path
    bin_dir: Path | None
    scratch: Path

    def tool(self, name: str) -> str:
        if self.bin_dir is not None and (self.bin_dir / name).exists():
            return str(self.bin_dir / name)
        found = shutil.which(name)
        if found is None:
            raise ClusterError(f"{name} is neither in {self.bin_dir} nor on PATH")
        return found

    def kubectl(
        self,
        *args: str,
        input: str | None = None,
        kubeconfig: Path | None = None,
        check: bool = True,
        timeout: float = 120,
    ) -> subprocess.CompletedProcess[str]:
        """Run kubectl as admin (or as ``kubeconfig``); ``check`` raises with its stderr."""
        argv = [self.tool("kubectl"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        return _run(argv, input=input, check=check, timeout=timeout)

    def helm(
        self, *args: str, kubeconfig: Path | None = None, check: bool = True, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """Run helm as admin (or as ``kubeconfig``)."""
        argv = [self.tool("helm"), f"--kubeconfig={kubeconfig or self.kubeconfig}", *args]
        return _run(argv, input=None, check=check, timeout=timeout)

    def api_client(self, kubeconfig: Path | None = None) -> Any:
        """A `kubernetes.client.ApiClient` as admin (or as ``kubeconfig``)."""
        path = str(kubeconfig or self.kubeconfig)
        return kubernetes.config.new_client_from_config(config_file=path)  # type: ignore[no-untyped-call]

    def sa_kubeconfig(self, namespace: str, name: str, *, duration_seconds: int = 3600) -> Path:
        """A kubeconfig that authenticates as ServiceAccount ``namespace/name``.

        The ServiceAccount is created if missing; its token is a bound token from
        the TokenRequest API (what a pod gets), so RBAC decides what it may do.
        """
        account = {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": name, "namespace": namespace},
        }
        self.kubectl("apply", "-f", "-", input=json.dumps(account))
        token = self.kubectl(
            "create", "token", name, f"--namespace={namespace}", f"--duration={duration_seconds}s"
        ).stdout.strip()
        server, ca_pem = cluster_endpoint(self.kubeconfig)
        user = f"system:serviceaccount:{namespace}:{name}"
        config = pki.kubeconfig(server, ca_pem, user=user, token=token, namespace=namespace)
        path = self.scratch / f"sa-{namespace}-{name}.kubeconfig"
        path.write_text(yaml.safe_dump(config, sort_keys=False))
        path.chmod(0o600)
        return path


def _run(
    argv: list[str],
    *,
    input: str | None,
    check: bool,
    timeout: float,
) -> subprocess.CompletedProcess[str]:
    out = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and out.returncode != 0:
        shown = " ".join(argv[:1] + argv[2:])  # the kubeconfig path is noise
        raise ClusterError(f"{shown} exited with {out.returncode}: {out.stderr.strip()}")
    return out


def cluster_endpoint(kubeconfig: Path) -> tuple[str, bytes]:
    """Server URL and CA bundle (PEM) of the kubeconfig's current context."""
    config: dict[str, Any] = yaml.safe_load(kubeconfig.read_text())
    context = _named(config["contexts"], config["current-context"])["context"]
    cluster = _named(config["clusters"], context["cluster"])["cluster"]
    if "certificate-authority-data" in cluster:
        ca_pem = base64.b64decode(cluster["certificate-authority-data"])
    elif "certificate-authority" in cluster:
        ca_pem = (kubeconfig.parent / cluster["certificate-authority"]).read_bytes()
    else:
        raise ClusterError(f"{kubeconfig}: the current cluster has no CA to trust")
    return str(cluster["server"]), ca_pem


def _named(entries: list[dict[str, Any]], name: str) -> dict[str, Any]:
    for entry in entries:
        if entry["name"] == name:
            return entry
    raise ClusterError(f"kubeconfig has no entry named {name!r}")


@dataclass(frozen=True)
class AdminApi:
    """Just enough of an HTTPS client to probe and seed a cluster during start-up.

    Importing and configuring the full kubernetes client costs more than the
    handful of requests start-up makes, so this speaks JSON over http.client.
    """

    host: str
    port: int
    context: ssl.SSLContext

    @classmethod
    def on_port(
        cls, port: int, ca: Path, client: pki.KeyPair, *, host: str = "127.0.0.1"
    ) -> AdminApi:
        context = ssl.create_default_context(cafile=str(ca))
        context.load_cert_chain(str(client.cert), str(client.key))
        return cls(host, port, context)

    def request(self, method: str, path: str, body: object = None) -> tuple[int, dict[str, Any]]:
        """(status, JSON body); status 0 when nothing answers yet."""
        conn = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=5)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            return 0, {}
        finally:
            conn.close()
        try:
            parsed = json.loads(data) if data else {}
        except ValueError:
            parsed = {}
        return response.status, parsed if isinstance(parsed, dict) else {}

    def get(self, path: str) -> tuple[int, dict[str, Any]]:
        return self.request("GET", path)

    def exists(self, path: str) -> bool:
        return self.get(path)[0] == 200

    def ensure(self, path: str, body: object) -> None:
        """POST ``body``; an object that already exists counts as created."""
        status, answer = self.request("POST", path, body)
        if status not in (200, 201, 409):
            raise ClusterError(f"POST {path} -> {status}: {answer.get('message', answer)}")
