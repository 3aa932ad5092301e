#!/usr/bin/env bash
# The demo: sets up the machine, creates the two-namespace topology, shows real kernel traffic
# crossing it, and runs the tests that exercise it. Grows with each datapath and layer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -p testbed
tb=target/release/exasock-testbed

echo "== topology: an accelerated namespace and a kernel peer joined by veth"
"$tb" run -- bash -c '
  set -euo pipefail
  echo "accel: $EXA_NS_ACCEL $EXA_IF_ACCEL $EXA_IP_ACCEL    peer: $EXA_NS_PEER $EXA_IF_PEER $EXA_IP_PEER"
  ip netns exec "$EXA_NS_ACCEL" timeout -s KILL 10 socat -u UDP-RECVFROM:1234 STDOUT > /tmp/exasock-demo.$$ &
  until ip netns exec "$EXA_NS_ACCEL" ss -Hlun "sport = :1234" | grep -q .; do sleep 0.01; done
  echo "hello from the peer" | ip netns exec "$EXA_NS_PEER" socat -u STDIN UDP:$EXA_IP_ACCEL:1234
  wait
  echo "accel received over UDP: $(cat /tmp/exasock-demo.$$)"; rm -f /tmp/exasock-demo.$$
'
echo "== topology tests (create, traffic, teardown after failure, sweep of killed runs)"
cargo test --release -p testbed
