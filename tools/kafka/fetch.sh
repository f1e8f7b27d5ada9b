#!/usr/bin/env bash
# Fetch the Apache Kafka broker jars (version pinned in pom.xml) from Maven Central
# into $FLEETCAST_CACHE/kafka/<version>/libs, once, and print that folder.
# A second run is a no-op: the folder is complete when its .complete marker exists.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
cache="${FLEETCAST_CACHE:-$HOME/.cache/fleetcast}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")"
libs="$cache/kafka/$version/libs"

if [[ ! -f "$libs/.complete" ]]; then
  command -v mvn >/dev/null || { echo "fetch.sh: mvn not found (apt-get install maven)" >&2; exit 1; }
  command -v java >/dev/null || { echo "fetch.sh: java not found (Java 17+ needed)" >&2; exit 1; }
  echo "fetch.sh: fetching Kafka $version jars into $libs" >&2
  tmp="$libs.partial.$$"
  rm -rf "$tmp"
  mvn -q -B -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$tmp" >&2
  rm -rf "$libs"
  mv "$tmp" "$libs"
  touch "$libs/.complete"
fi
echo "$libs"
