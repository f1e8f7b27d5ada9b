#!/usr/bin/env bash
# A Docker engine for `make images`, started here when none answers.
#
#   docker-engine.sh up     make `docker info` answer; prints "started" when this call
#                           started dockerd, "running" when an engine already answered
#   docker-engine.sh down   stop the dockerd that `up` started (its pid file says so);
#                           an engine that was running before `up` is never touched
#
# The engine is Debian's docker.io (scripts/system-deps.sh docker installs it); its
# log and pid file live in $FLEETCAST_CACHE/docker, outside the clone. Callers hold
# the lock $FLEETCAST_CACHE/docker/.lock from `up` to `down` (scripts/images.sh
# does), so no other build of this project is using an engine `down` stops.
set -euo pipefail
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}/docker"
pidfile="$cache/dockerd.pid"
START_TIMEOUT=60

answers() { docker info >/dev/null 2>&1; }

case "${1:-}" in
  up)
    if answers; then echo running; exit 0; fi
    if [[ -n "${DOCKER_HOST:-}" ]]; then
      # An engine chosen by the caller: never start a local one in its place.
      echo "docker-engine: the engine at DOCKER_HOST=$DOCKER_HOST does not answer ('docker info' failed)" >&2
      exit 1
    fi
    command -v dockerd >/dev/null || "$(dirname "$0")/system-deps.sh" docker
    command -v dockerd >/dev/null || { echo "docker-engine: no dockerd after installing docker.io" >&2; exit 1; }
    [[ $(id -u) -eq 0 ]] || { echo "docker-engine: no engine answers, and starting dockerd needs root" >&2; exit 1; }
    mkdir -p "$cache"
    # Its own session, so a Ctrl-C in the terminal that ran make does not reach it.
    setsid dockerd --pidfile "$pidfile.dockerd" >"$cache/dockerd.log" 2>&1 </dev/null &
    echo $! >"$pidfile"
    for _ in $(seq $((START_TIMEOUT * 4))); do
      if answers; then echo started; exit 0; fi
      kill -0 "$(cat "$pidfile")" 2>/dev/null || break
      sleep 0.25
    done
    echo "docker-engine: dockerd did not answer within ${START_TIMEOUT} s; log tail:" >&2
    tail -n 20 "$cache/dockerd.log" >&2
    kill "$(cat "$pidfile")" 2>/dev/null || true
    rm -f "$pidfile"
    exit 1
    ;;
  down)
    [[ -f "$pidfile" ]] || exit 0
    pid="$(cat "$pidfile")"
    rm -f "$pidfile"
    # Only the dockerd we started: the pid must still run dockerd.
    [[ "$(cat "/proc/$pid/comm" 2>/dev/null)" == dockerd ]] || exit 0
    kill -TERM "$pid"
    for _ in $(seq 120); do kill -0 "$pid" 2>/dev/null || exit 0; sleep 0.25; done
    echo "docker-engine: dockerd $pid did not stop within 30 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
    ;;
  *)
    echo "usage: $0 up|down" >&2
    exit 2
    ;;
esac
