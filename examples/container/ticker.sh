#!/bin/sh
# A cron-like shell loop that starts a background task every 200 ms and never waits for it:
# each `( … & )` leaves an orphan behind, re-parented to the container's init. An init that
# does not reap (a plain program as PID 1) collects one zombie per tick.
i=0
while :; do
  i=$((i + 1))
  echo "tick $i"
  (sleep 0.1 &)
  sleep 0.2
done
