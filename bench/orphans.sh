#!/bin/sh
# A service that leaves two processes behind when its main process dies: one in a new
# session (`setsid sleep`), one plain background job (`sleep &`). Their pids go to $1 so the
# benchmark can tell, per tool, which survive a stop (and kill them itself afterwards).
setsid sleep 86401 &
echo "setsid $!" >> "$1"
sleep 86402 &
echo "background $!" >> "$1"
wait
