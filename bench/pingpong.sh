#!/usr/bin/env bash
# UDP (or, with -t, TCP) ping-pong between the two namespaces, 32-byte payloads, one-way
# latency (RTT/2):
#   raw AF_PACKET frames, no stack, both ends attached (the floor the stack is held to)
#   exasock on both ends: the same kernel-socket programs under libexasock_preload.so
#   kernel sockets, busy-polling (non-blocking recv in a spin loop) on both ends
#   kernel sockets, blocking on both ends
#   then, both interfaces attached again with --datapath xdp: raw AF_XDP frames (the AF_XDP
#   floor) and exasock over AF_XDP (EXASOCK_DATAPATH=xdp: fails rather than falls back)
# All in one run on one topology, printed side by side with ratios to the raw floors (AF_XDP
# rows against raw_af_xdp as well).
# With -t the rows are TCP (TCP_NODELAY, one connection); the raw floor stays the raw frames of
# the same datapath.
# Usage: bench/pingpong.sh [-t] [-n COUNT] [-s SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
count=50000 size=32 proto=udp
while getopts tn:s: o; do case $o in t) proto=tcp;; n) count=$OPTARG;; s) size=$OPTARG;; *) exit 2;; esac; done
nice -n 10 cargo build --release -q -p e2e -p ctl -p testbed -p launcher -p preload
export PATH="$(realpath "${CARGO_TARGET_DIR:-target}")/release:$PATH" COUNT=$count SIZE=$size PROTO=$proto
exec exasock-testbed run -- bash -c '
set -euo pipefail
A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
$A exasock-ctl attach $EXA_IF_ACCEL >/dev/null
# Both ends accelerated: the accel side, now a sender to an attached interface too, sends real
# checksums and no TSO, like the peer (and the kernel runs below use the same offloads).
$A ethtool -K $EXA_IF_ACCEL tx off >/dev/null
$P exasock-ctl attach $EXA_IF_PEER >/dev/null
mac=$(ip -n $EXA_NS_ACCEL -o link show $EXA_IF_ACCEL | sed "s/.*link\/ether \([0-9a-f:]*\).*/\1/")
# Resolve neighbours once so the kernel runs see no ARP.
$P ping -c1 -W1 $EXA_IP_ACCEL >/dev/null
wait_udp() { until $A ss -Hlun "sport = :$1" | grep -q .; do sleep 0.01; done; }
wait_tcp() { until $A ss -Hltn "sport = :$1" | grep -q .; do sleep 0.01; done; }
tree() { local c; for c in $(pgrep -P $1); do echo $c; tree $c; done; }
run() { # name server-cmd client-cmd port
  $A timeout -s KILL 120 $2 >/dev/null & local pid=$!
  if [ "$PROTO" = tcp ] && [ "${1#raw_}" = "$1" ]; then wait_tcp $4; else wait_udp $4; fi
  local r; r=$($P timeout -s KILL 120 $3 | sed -n "s/^RESULT //p")
  # The server runs under timeout: kill the program too (it would spin on, and an AF_XDP one
  # would keep the queues from the next row), and wait until it is gone.
  local kids; kids=$(tree $pid)
  kill -9 $pid $kids 2>/dev/null; wait $pid 2>/dev/null || true
  for k in $kids; do while [ -d /proc/$k ] && ! grep -q "^State:.*Z" /proc/$k/status 2>/dev/null; do sleep 0.01; done; done
  echo "$1 $r"
}
{
run raw_af_packet "raw-echo $EXA_IF_ACCEL 9000 --spin" "pingpong raw $EXA_IF_PEER $EXA_IP_PEER:9001 $EXA_IP_ACCEL:9000 $mac -n $COUNT -s $SIZE" 9000
# TCP is accelerated by default (EXASOCK_TCP=0 would leave it on the kernel).
if [ "$PROTO" = tcp ]; then S=serve-tcp C=tcp; else S=serve C=kernel; fi
run exasock_both "exasock pingpong $S $EXA_IP_ACCEL:9004" "exasock pingpong $C $EXA_IP_ACCEL:9004 -n $COUNT -s $SIZE" 9004
run exasock_sleeping "env EXASOCK_SPIN_USEC=0 exasock pingpong $S $EXA_IP_ACCEL:9005" "env EXASOCK_SPIN_USEC=0 exasock pingpong $C $EXA_IP_ACCEL:9005 -n $COUNT -s $SIZE" 9005
run kernel_busy_poll "pingpong $S $EXA_IP_ACCEL:9002 --spin" "pingpong $C $EXA_IP_ACCEL:9002 --spin -n $COUNT -s $SIZE" 9002
run kernel_blocking "pingpong $S $EXA_IP_ACCEL:9003" "pingpong $C $EXA_IP_ACCEL:9003 -n $COUNT -s $SIZE" 9003
# AF_XDP: the XDP program beside tc on both ends (SKB mode on veth); both processes of each row
# are the first on their interface, so each binds AF_XDP sockets to every RX queue.
$A exasock-ctl attach $EXA_IF_ACCEL --datapath xdp >/dev/null
$P exasock-ctl attach $EXA_IF_PEER --datapath xdp >/dev/null
export EXASOCK_DATAPATH=xdp
run raw_af_xdp "raw-echo $EXA_IF_ACCEL 9010 --spin" "pingpong raw $EXA_IF_PEER $EXA_IP_PEER:9011 $EXA_IP_ACCEL:9010 $mac -n $COUNT -s $SIZE" 9010
run exasock_xdp "exasock pingpong $S $EXA_IP_ACCEL:9014" "exasock pingpong $C $EXA_IP_ACCEL:9014 -n $COUNT -s $SIZE" 9014
unset EXASOCK_DATAPATH
} | awk -v n="$COUNT" -v s="$SIZE" -v p="$PROTO" "
  BEGIN { printf \"one-way latency, %d x %d-byte %s ping-pong over veth (ns)\n\", n, s, toupper(p);
          printf \"%-18s %8s %8s %8s %10s %10s\n\", \"datapath\", \"p50\", \"p99\", \"p99.9\", \"p50/floor\", \"/xdp floor\" }
  NR==1 { floor=\$2 }
  \$1==\"raw_af_xdp\" { xfloor=\$2 }
  { x = xfloor ? sprintf(\"%10.2f\", \$2/xfloor) : sprintf(\"%10s\", \"-\");
    printf \"%-18s %8d %8d %8d %10.2f %s\n\", \$1, \$2, \$3, \$4, \$2/floor, x }"
# Idle cost: an accelerated server with nothing to do, spinning (the default) and sleeping
# (EXASOCK_SPIN_USEC=0): CPU time over 3 s, in percent of one core.
idle() { # name env...
  $A env "${@:2}" timeout -s KILL 20 exasock pingpong serve $EXA_IP_ACCEL:$((9100 + RANDOM % 800)) >/dev/null & local pid=$!
  sleep 1
  local child; child=$(pgrep -P $pid -n || echo $pid); child=$(pgrep -P $child -n || echo $child)
  local t0; t0=$(awk "{print \$14 + \$15}" /proc/$child/stat)
  sleep 3
  local t1; t1=$(awk "{print \$14 + \$15}" /proc/$child/stat)
  kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null || true
  echo "idle CPU, $1: $(( (t1 - t0) * 100 / 3 / $(getconf CLK_TCK) ))% of a core"
}
idle sleeping EXASOCK_SPIN_USEC=0
'
