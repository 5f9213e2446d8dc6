#!/bin/bash
# Usage: nspawn-boot.sh NAME ROOTFS UPPER [extra systemd-nspawn args…]
# Boots ROOTFS with a real systemd under systemd-nspawn, copy-on-write into UPPER (--overlay,
# so the cached base stays clean), in its own cgroup (name=systemd v1 + unified v2) so that
# parallel --keep-unit containers do not collide. A reboot inside the container makes nspawn
# exit 133: boot again (like RestartForceExitStatus=133), at most 3 times. No machined and
# no host systemd are needed; drive the container with nsenter.
set -u
NAME=$1 R=$2 UPPER=$3; shift 3
CG=herder-it-ns-$NAME
if [ -f /sys/fs/cgroup/cgroup.controllers ]; then HIER=.; else HIER="systemd unified"; fi  # pure v2 or hybrid
rc=0
for _ in 1 2 3 4; do
  for h in $HIER; do
    [ -d /sys/fs/cgroup/$h ] || continue
    mkdir -p /sys/fs/cgroup/$h/$CG && echo $$ > /sys/fs/cgroup/$h/$CG/cgroup.procs
  done
  timeout 600 systemd-nspawn -D "$R" --boot --register=no --keep-unit --console=pipe \
    --overlay="$R:$UPPER:/" --machine="$NAME" "$@"
  rc=$?
  echo "herder-it: nspawn exited rc=$rc"
  for h in $HIER; do
    [ -d /sys/fs/cgroup/$h ] || continue
    echo $$ > /sys/fs/cgroup/$h/cgroup.procs
    find /sys/fs/cgroup/$h/$CG -depth -type d -exec rmdir {} \; 2>/dev/null
  done
  [ $rc = 133 ] || break
done
exit $rc
