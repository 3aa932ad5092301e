#!/usr/bin/env bash
# The demo: sets up the machine, creates the two-namespace topology, attaches exasock to the
# accelerated side, and has a kernel peer (socat) talk UDP to a program served over the
# AF_PACKET datapath with BPF steering, while the kernel's own counters stay still. Ends with
# the raw-frame latency floor beside the kernel's. Grows with each layer (stack, preload).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q -p testbed -p ctl -p e2e
export PATH="$PWD/target/release:$PATH"

exasock-testbed run -- bash -c '
  set -euo pipefail
  A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
  echo "== topology: accel $EXA_NS_ACCEL ($EXA_IF_ACCEL $EXA_IP_ACCEL)  peer $EXA_NS_PEER ($EXA_IF_PEER $EXA_IP_PEER)"
  echo "== exasock-ctl attach $EXA_IF_ACCEL"
  $A exasock-ctl attach $EXA_IF_ACCEL
  $A timeout -s KILL 30 raw-echo $EXA_IF_ACCEL 1234 --count 3 > /tmp/exasock-demo.$$ &
  until grep -q ready /tmp/exasock-demo.$$ 2>/dev/null; do sleep 0.01; done
  echo "== exasock-ctl status"
  $A exasock-ctl status
  echo "== a kernel peer (socat) sends three datagrams to $EXA_IP_ACCEL:1234, served by raw-echo over AF_PACKET"
  for word in one two three; do
    reply=$(printf "%s" "$word" | $P timeout 5 socat -T1 - UDP:$EXA_IP_ACCEL:1234)
    echo "   sent \"$word\", got back \"$reply\""
  done
  wait
  echo "== raw-echo: $(tail -1 /tmp/exasock-demo.$$)"; rm -f /tmp/exasock-demo.$$
  echo "== the accelerated namespace kernel saw none of it:"
  $A nstat -az UdpInDatagrams UdpNoPorts IcmpOutDestUnreachs | sed 1d
'
echo "== latency floor: raw frames over AF_PACKET vs kernel sockets (bench/pingpong.sh)"
bench/pingpong.sh -n 20000
