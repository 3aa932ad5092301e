#!/usr/bin/env bash
# The demo: sets up the machine, creates the two-namespace topology, attaches exasock to the
# accelerated side, and runs `EXASOCK_DEBUG=1 exasock nc -u -l 1234` there while a kernel peer
# (`nc -u`) sends to it: the datagrams travel AF_PACKET + BPF steering + the user-space stack,
# and the accelerated namespace's kernel counts none of them; then the same with TCP (`exasock nc
# -l 1235`). Ends with the raw-frame latency floor beside the kernel's (bench/pingpong.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p testbed -p ctl -p e2e -p launcher -p preload
export PATH="$PWD/target/release:$PATH"

exasock-testbed run -- bash -c '
  set -euo pipefail
  A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
  out=$(mktemp) err=$(mktemp)
  echo "== topology: accel $EXA_NS_ACCEL ($EXA_IF_ACCEL $EXA_IP_ACCEL)  peer $EXA_NS_PEER ($EXA_IF_PEER $EXA_IP_PEER)"
  echo "== exasock-ctl attach $EXA_IF_ACCEL"
  $A exasock-ctl attach $EXA_IF_ACCEL
  echo "== accel: EXASOCK_DEBUG=1 exasock nc -u -l 1234"
  $A env EXASOCK_DEBUG=1 timeout -s KILL 30 exasock nc -u -l 1234 > "$out" 2> "$err" &
  nc_pid=$!
  until $A exasock-ctl status | grep -q "udp \*:1234"; do sleep 0.01; done
  $A exasock-ctl status
  echo "== peer: three lines through nc -u to $EXA_IP_ACCEL:1234"
  { for w in one two three; do echo "$w"; sleep 0.1; done; } | $P timeout 5 nc -u -q1 $EXA_IP_ACCEL 1234 || true
  sleep 0.2; kill $nc_pid 2>/dev/null || true; wait $nc_pid 2>/dev/null || true
  echo "== what nc printed on stderr:"; cat "$err"
  echo "== what nc received:"; cat "$out"
  echo "== the accelerated namespace kernel saw none of it:"
  $A nstat -az UdpInDatagrams UdpNoPorts IcmpOutDestUnreachs | sed 1d
  echo "== accel: EXASOCK_DEBUG=1 exasock nc -l 1235 (TCP, accelerated by default)"
  $A nstat -n
  $A env EXASOCK_DEBUG=1 timeout -s KILL 30 exasock nc -l 1235 > "$out" 2> "$err" &
  nc_pid=$!
  until $A ss -Hltn "sport = :1235" | grep -q .; do sleep 0.01; done
  echo "== peer: three lines through nc to $EXA_IP_ACCEL:1235"
  { for w in four five six; do echo "$w"; sleep 0.1; done; } | $P timeout 5 nc -q1 $EXA_IP_ACCEL 1235 || true
  wait $nc_pid 2>/dev/null || true
  echo "== what nc printed on stderr:"; cat "$err"
  echo "== what nc received:"; cat "$out"
  echo "== the accelerated namespace kernel accepted nothing; its only TCP segments are the end of"
  echo "   the connection nc had closed when it exited (handed to the kernel to finish, as exit does):"
  $A nstat -az TcpPassiveOpens TcpInSegs TcpOutSegs | sed 1d
  rm -f "$out" "$err"
'
echo "== latency floor: raw frames over AF_PACKET vs kernel sockets (bench/pingpong.sh)"
bench/pingpong.sh -n 20000
