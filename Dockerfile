# syntax=docker/dockerfile:1.7
#
# One image, three entry points: fleetcast-gateway, fleetcast-consumer and
# fleetcast-operator. The three share one lock file and almost every
# dependency, so one image means one build, one layer set pulled per node, one
# tag to bump and one digest for the FleetBroadcast's spec.image; the operator
# picks the process with the container's command. Build: `make images`.

# Pinned base. The tag names the exact CPython patch and Debian release; pin
# the digest too (python:3.11.14-slim-bookworm@sha256:...) where your
# registry policy asks for it: the tag is what could be checked from here.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm
# uv at the version scripts/bootstrap.sh uses, so the image resolves exactly
# what `make install` resolves: the same uv.lock, read by the same uv.
ARG UV_VERSION=0.13.8

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/fleetcast \
    PIP_DISABLE_PIP_VERSION_CHECK=1
RUN python -m pip install --no-cache-dir "uv==${UV_VERSION}"
WORKDIR /src

# Dependencies first, from the lock only: this layer is rebuilt when uv.lock
# changes, not on every source edit. Every dependency ships wheels for
# CPython 3.11 on amd64/arm64, so no compiler is needed even here.
COPY pyproject.toml uv.lock README.md ./
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-project --python /usr/local/bin/python

# Then fleetcast itself, as a regular (non-editable) install, so the final
# stage needs nothing from /src. The dev tools (local servers for tests) are
# part of the wheel's namespace but never shipped code: drop them.
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable --python /usr/local/bin/python \
 && rm -rf /opt/fleetcast/lib/python3.11/site-packages/fleetcast/devtools

# ---------------------------------------------------------------- final stage
FROM ${PYTHON_IMAGE} AS final
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="fleetcast" \
      org.opencontainers.image.description="Real-time event edge for radio fleet dispatch: Kafka -> Redis -> Socket.IO; gateway, consumer and Kubernetes operator in one image." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11.14-slim-bookworm"

# No pip, setuptools or wheel at run time: nothing installs anything here.
# A fixed numeric uid/gid so runAsNonRoot can be checked by the kubelet.
RUN python -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true; \
    groupadd --system --gid 10001 fleetcast \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
            --shell /usr/sbin/nologin fleetcast

COPY --from=build --chown=0:0 /opt/fleetcast /opt/fleetcast
ENV PATH=/opt/fleetcast/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HEALTHCHECK_URL=http://127.0.0.1:8080/health

USER 10001:10001
WORKDIR /tmp
# 8080: the gateway's Socket.IO and health port; 8081: the consumer's health
# and metrics port (DESIGN.md defaults; both are settings).
EXPOSE 8080 8081

# For `docker run` (Kubernetes uses the pod's probes instead). The gateway
# answers on the default URL; set HEALTHCHECK_URL for the consumer
# (http://127.0.0.1:8081/health) or the operator (its liveness endpoint).
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
  CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]

# The gateway by default; the operator sets the command of each Deployment.
CMD ["fleetcast-gateway"]
