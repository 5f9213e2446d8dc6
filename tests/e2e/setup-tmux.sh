#!/bin/bash
# `herder top`'s end-to-end test drives it through a real terminal multiplexer: Debian's tmux.
# `make test` runs this as root on a machine without tmux (CI's fresh machine); idempotent,
# safe to run concurrently (apt's own lock, waited for), bounded by timeouts. Exit 77: cannot.
set -euo pipefail
command -v tmux >/dev/null && exit 0
[ "$(id -u)" = 0 ] || { echo "setup-tmux: needs root to install tmux" >&2; exit 77; }
command -v apt-get >/dev/null || { echo "setup-tmux: no apt-get on this machine" >&2; exit 77; }
echo "setup-tmux: apt-get install tmux" >&2
export DEBIAN_FRONTEND=noninteractive
if ! timeout 580 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends tmux >&2; then
  timeout 300 apt-get -o DPkg::Lock::Timeout=300 update -qq >&2 || true
  timeout 580 apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends tmux >&2
fi
command -v tmux >/dev/null
