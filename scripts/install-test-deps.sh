#!/usr/bin/env bash
# Installs what the test suite needs on a Debian machine, then the npm dependencies. Idempotent:
# when every package is already there it skips apt entirely, so a rerun takes seconds.
#
# Debian packages:
#   redis-server                              Redis for the commit index
#   radosgw ceph-mon ceph-osd ceph-common     a throw-away Ceph cluster as the real S3 server
#   bazel-bootstrap bazel-rules-java          Bazel as a real remote cache client
#   openjdk-17-jdk-headless                   the JDK that Bazel builds with
#   buildstream                               BuildStream 1.6.8, a Remote Asset API client
#   openssl                                   throw-away certificates for the TLS tests
#   g++ make python3                          node-gyp builds zstd-napi from its bundled sources
#   docker-compose                            compose 1.x: `config` validates docker-compose.yml
#                                             without a Docker engine (test/deploy)
#   prometheus                                for promtool: checks and unit-tests the alert rules
#                                             and dashboard queries in infra/ (test/observability)
#
# Runs as root (CI does); elsewhere it uses sudo for apt when sudo exists.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

packages=(
  redis-server
  radosgw
  ceph-mon
  ceph-osd
  ceph-common
  bazel-bootstrap
  bazel-rules-java
  openjdk-17-jdk-headless
  buildstream
  openssl
  g++
  make
  python3
  docker-compose
  prometheus
)
binaries=(redis-server radosgw radosgw-admin ceph-mon ceph-osd ceph monmaptool bazel javac bst bwrap openssl docker-compose promtool)
# Packages whose postinst starts a daemon the tests do not want (they start their own, or none).
services=(redis-server prometheus)

is_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
for package in "${packages[@]}"; do
  is_installed "$package" || missing+=("$package")
done
for binary in "${binaries[@]}"; do
  if ! command -v "$binary" >/dev/null 2>&1; then
    # A package can be marked installed with its files gone; reinstalling them all is simplest.
    [ "${#missing[@]}" -gt 0 ] || missing=("${packages[@]}")
    break
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  sudo=()
  if [ "$(id -u)" -ne 0 ]; then
    if ! command -v sudo >/dev/null 2>&1; then
      echo "install-test-deps.sh: need root (or sudo) to install: ${missing[*]}" >&2
      exit 1
    fi
    sudo=(sudo)
  fi
  fresh_services=()
  for service in "${services[@]}"; do
    is_installed "$service" || fresh_services+=("$service")
  done

  echo "install-test-deps.sh: installing ${missing[*]}"
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y --no-install-recommends "${missing[@]}"

  # The tests start their own redis-server on free ports, and need only promtool from the
  # prometheus package. A Redis on 6379 or a Prometheus on 9090 that a postinst just started would
  # only waste memory (and the port), so stop each and keep it from coming back at boot.
  for service in "${fresh_services[@]}"; do
    if command -v service >/dev/null 2>&1; then
      "${sudo[@]}" service "$service" stop >/dev/null 2>&1 || true
    fi
    if command -v update-rc.d >/dev/null 2>&1; then
      "${sudo[@]}" update-rc.d "$service" disable >/dev/null 2>&1 || true
    fi
    if command -v systemctl >/dev/null 2>&1; then
      "${sudo[@]}" systemctl disable --now "$service" >/dev/null 2>&1 || true
    fi
  done
else
  echo "install-test-deps.sh: Debian packages already installed"
fi

if [ -f package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  npm install --no-audit --no-fund
fi
