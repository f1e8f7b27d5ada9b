# One image, three entry points: fleetcast-gateway, fleetcast-consumer and
# fleetcast-operator. The three share one lock file and almost every
# dependency, so one image means one build, one layer set pulled per node, one
# tag to bump and one digest for the FleetBroadcast's spec.image; the operator
# picks the process with the container's command.
#
# Build it with `make images` (scripts/images.sh), not with a bare `docker build`:
# the script first puts the wheels into .artifacts/wheels (every locked dependency,
# downloaded on the host and checked against uv.lock's hashes, plus fleetcast's own
# wheel), so this build installs offline and reaches no package index; and it makes
# the default base image from Debian's packages (scripts/base-image.sh). The classic
# builder and BuildKit both build it (no `# syntax` line: that would pull a frontend).

# The base: any image with CPython 3.11 as `python3`. `make images` passes Debian's
# (tools/images/python, on the debootstrap-made base); the official image works too:
# PYTHON_IMAGE=python:3.11.14-slim-bookworm make images.
ARG PYTHON_IMAGE=fleetcast-base/python:3.11-bookworm

# ---------------------------------------------------------------- build stage
FROM ${PYTHON_IMAGE} AS build
ENV UV_PYTHON_DOWNLOADS=never UV_NO_CACHE=1 UV_LINK_MODE=copy
# uv itself comes from its wheel (the version scripts/bootstrap.sh pins).
COPY .artifacts/wheels/tools/ /wheels/tools/
RUN python3 -m zipfile -e /wheels/tools/uv-*.whl /opt/uv \
 && mv /opt/uv/uv-*.data/scripts/uv /usr/local/bin/uv && chmod 0755 /usr/local/bin/uv \
 && rm -rf /opt/uv \
 && uv venv --quiet --python "$(command -v python3)" /opt/fleetcast

# Dependencies first: this layer is rebuilt when uv.lock changes, not on every
# source edit. --require-hashes: each wheel must be the one uv.lock names.
COPY .artifacts/wheels/deps/ /wheels/deps/
RUN uv pip install --quiet --python /opt/fleetcast/bin/python --offline --no-index \
      --find-links /wheels/deps --require-hashes --compile-bytecode \
      -r /wheels/deps/requirements.txt

# Then fleetcast itself. The dev tools (local servers for tests) are part of the
# wheel's namespace but never shipped code: drop them.
COPY .artifacts/wheels/project/ /wheels/project/
RUN uv pip install --quiet --python /opt/fleetcast/bin/python --offline --no-index --no-deps \
      --compile-bytecode /wheels/project/fleetcast-*.whl \
 && rm -rf /opt/fleetcast/lib/python3.11/site-packages/fleetcast/devtools

# ---------------------------------------------------------------- final stage
FROM ${PYTHON_IMAGE} AS final
ARG PYTHON_IMAGE
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=1970-01-01T00:00:00Z
LABEL org.opencontainers.image.title="fleetcast" \
      org.opencontainers.image.description="Real-time event edge for radio fleet dispatch: Kafka -> Redis -> Socket.IO; gateway, consumer and Kubernetes operator in one image." \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="${PYTHON_IMAGE}"

# No pip, setuptools or wheel at run time (the official image has them, Debian's
# python3 does not): nothing installs anything here. A fixed numeric uid/gid so
# runAsNonRoot can be checked by the kubelet.
RUN (python3 -m pip uninstall --yes --quiet pip setuptools wheel 2>/dev/null || true) \
 && groupadd --system --gid 10001 fleetcast \
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
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen(os.environ['HEALTHCHECK_URL'], timeout=2)"]

# The gateway by default; the operator sets the command of each Deployment.
CMD ["fleetcast-gateway"]
