"""The images `make images` builds, by the names tools/images/images.env gives them.

scripts/images.sh saves each into ``$FLEETCAST_CACHE/images/export/<ref>.tar``
(``/`` and ``:`` replaced by ``_``); the real test node imports those tarballs
into containerd instead of pulling anything.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from fleetcast.devtools.cluster_access import ClusterError

REPO = Path(__file__).resolve().parents[3]
IMAGES_ENV = REPO / "tools" / "images" / "images.env"


@dataclass(frozen=True)
class References:
    """Image references (``repo:tag``) of the e2e suite and the node."""

    fleetcast: str
    redis: str
    kafka: str
    pause: str

    def node_images(self) -> list[str]:
        """What the real node must hold before any pod can start."""
        return [self.fleetcast, self.redis, self.kafka, self.pause]


def read_env(path: Path = IMAGES_ENV) -> dict[str, str]:
    """KEY=VALUE lines of a shell env file (comments and blank lines skipped)."""
    pairs = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, _, value = line.partition("=")
            pairs[key] = value
    return pairs


def references(path: Path = IMAGES_ENV) -> References:
    env = read_env(path)
    return References(
        fleetcast=env["FLEETCAST_IMAGE"],
        redis=env["E2E_REDIS_IMAGE"],
        kafka=env["E2E_KAFKA_IMAGE"],
        pause=env["PAUSE_IMAGE"],
    )


class CacheSettings(BaseSettings):
    """Where the project caches what it downloads and builds (the Makefile's FLEETCAST_CACHE)."""

    model_config = SettingsConfigDict(env_prefix="FLEETCAST_")

    #: Folder outside the clone; scripts/images.sh writes images/export under it.
    cache: Path = Path.home() / ".cache" / "fleetcast"


def export_dir() -> Path:
    return CacheSettings().cache / "images" / "export"


def tarball(ref: str) -> Path:
    """Where scripts/images.sh saved ``ref``."""
    return export_dir() / (ref.replace("/", "_").replace(":", "_") + ".tar")


def exported() -> dict[str, Path]:
    """The node's images and their tarballs."""
    return {ref: tarball(ref) for ref in references().node_images()}


def require_exported() -> None:
    missing = [ref for ref, path in exported().items() if not path.exists()]
    if missing:
        raise ClusterError(f"images not built: {', '.join(missing)}; run make images")
