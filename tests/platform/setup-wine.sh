#!/bin/bash
# Opt-in Windows tier (`make test-wine`): Wine (a real service control manager) and mingw to
# build a tiny service exe. ~1.2 GB of packages, so not part of `make test`. Needs root.
set -euo pipefail
[ "$(id -u)" = 0 ] || { echo "setup-wine: needs root" >&2; exit 77; }
need=()
command -v wine >/dev/null || need+=(wine wine64)
command -v x86_64-w64-mingw32-gcc >/dev/null || need+=(gcc-mingw-w64-x86-64-win32)
if [ ${#need[@]} -gt 0 ]; then
  timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  DEBIAN_FRONTEND=noninteractive timeout 900 apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
    --no-install-recommends "${need[@]}" >&2
fi
