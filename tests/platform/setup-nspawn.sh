#!/bin/bash
# Prepare the systemd-nspawn integration tier: install systemd-container + mmdebstrap and build
# a minimal Debian rootfs that boots a real systemd, ONCE per machine (cached under
# $HERDER_IT_CACHE, default /var/cache/herder-it). Prints the rootfs path on the last line.
# Needs root. Idempotent and safe to run concurrently (flock). Bounded by timeouts.
set -euo pipefail
CACHE=${HERDER_IT_CACHE:-/var/cache/herder-it}
# The package list is part of the cache key: change it and the rootfs is rebuilt.
PKGS=systemd,systemd-sysv,dbus,libpam-systemd,python3
KEY=$(echo "bookworm $PKGS v1" | sha1sum | cut -c1-10)
ROOT=$CACHE/rootfs-$KEY
[ "$(id -u)" = 0 ] || { echo "setup-nspawn: needs root" >&2; exit 77; }
mkdir -p "$CACHE"
exec 9>"$CACHE/.lock"
timeout 900 flock 9
need=()
command -v systemd-nspawn >/dev/null || need+=(systemd-container)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
command -v nsenter >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  echo "setup-nspawn: apt-get install ${need[*]}" >&2
  timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive timeout 580 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need[@]}" >&2
fi
if [ ! -f "$ROOT/.herder-it-complete" ]; then
  echo "setup-nspawn: building rootfs $ROOT (about a minute, once per machine)" >&2
  MIRROR=$(awk '/^URIs:/{print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
  MIRROR=${MIRROR:-http://deb.debian.org/debian}
  TMP=$ROOT.tmp-$$
  rm -rf "$TMP"
  timeout 500 mmdebstrap --quiet --variant=apt --include="$PKGS" \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/locale/*' \
    --dpkgopt='path-include=/usr/share/locale/locale.alias' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*' \
    --customize-hook='echo herder-it > "$1/etc/hostname"' \
    --customize-hook='mkdir -p "$1/opt/herder-src"' \
    bookworm "$TMP" "$MIRROR" >&2
  touch "$TMP/.herder-it-complete"
  rm -rf "$ROOT"; mv "$TMP" "$ROOT"
fi
echo "$ROOT"
