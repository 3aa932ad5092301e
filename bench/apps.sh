#!/usr/bin/env bash
# Real programs on the kernel and under exasock, side by side in one run on one topology: the
# server runs in the accelerated namespace (attached), plain or under `exasock`, and a kernel
# client in the peer namespace drives it. One table: kernel, exasock, exasock/kernel.
#   iperf3 (Gbit/s, both directions), redis-benchmark SET/GET (requests/s, 20 clients),
#   nginx (sendfile on, one process) with wrk on a small file (requests/s, 20 connections) and
#   curl on 50 MB (MB/s), sockperf TCP ping-pong with the server accelerated (one-way p50/p99, us),
#   whose percentiles it also plots into bench/latency.svg (kernel against exasock).
# Usage: bench/apps.sh [-q]    (-q: shorter runs)
set -euo pipefail
cd "$(dirname "$0")/.."
secs=5
while getopts q o; do case $o in q) secs=2;; *) exit 2;; esac; done
cargo build --release -q -p testbed -p ctl -p launcher -p preload
export PATH="$PWD/target/release:$PATH" SECS=$secs
exec exasock-testbed run -- bash -c '
set -euo pipefail
A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
$A exasock-ctl attach $EXA_IF_ACCEL >/dev/null
$P ping -c1 -W1 $EXA_IP_ACCEL >/dev/null
work=$(mktemp -d)
trap "rm -rf $work" EXIT
head -c 50000000 /dev/urandom > $work/big.bin
printf "<html><body>%0500d</body></html>\n" 0 > $work/small.html
wait_tcp() { until $A ss -Hltn "sport = :$1" | grep -q .; do sleep 0.01; done; }
# start MODE PORT CMD...: runs CMD in the accel namespace, plain (kernel) or under exasock.
start() {
  local mode=$1 port=$2; shift 2
  if [ "$mode" = exasock ]; then
    $A env EXASOCK_SPIN_USEC=${EXASOCK_SPIN_USEC:-10000000} timeout -s KILL 300 exasock "$@" >/dev/null 2>&1 &
  else
    $A timeout -s KILL 300 "$@" >/dev/null 2>&1 &
  fi
  server=$!
  wait_tcp $port
}
stop() { kill -TERM $server 2>/dev/null || true; sleep 0.2; kill -9 $server 2>/dev/null || true; wait $server 2>/dev/null || true; }
port=9200
row() { echo "$1 $2 $3"; }   # metric mode value
for mode in kernel exasock; do
  port=$((port + 10))
  start $mode $port iperf3 -s -p $port
  for dir in "" "-R"; do
    bps=$($P iperf3 -c $EXA_IP_ACCEL -p $port -t $SECS $dir -J | python3 -c "import json,sys; print(json.load(sys.stdin)[\"end\"][\"sum_received\"][\"bits_per_second\"] / 1e9)")
    row "iperf3${dir:+_reverse}_Gbit/s" $mode $bps
  done
  stop

  start $mode $((port + 1)) redis-server --port $((port + 1)) --save "" --appendonly no --protected-mode no
  $P redis-benchmark -h $EXA_IP_ACCEL -p $((port + 1)) -t set,get -n $((SECS * 40000)) -c 20 --csv \
    | sed -n "s/^\"\(SET\|GET\)\",\"\([0-9.]*\)\".*/redis_\1_req\/s $mode \2/p"
  stop

  cat > $work/nginx.conf <<EOF
daemon off; master_process off; pid $work/nginx-$mode.pid; error_log stderr crit;
events { worker_connections 1024; }
http { access_log off; sendfile on; tcp_nopush on; client_body_temp_path $work/b; proxy_temp_path $work/p;
       fastcgi_temp_path $work/f; uwsgi_temp_path $work/u; scgi_temp_path $work/s;
       server { listen $EXA_IP_ACCEL:$((port + 2)); root $work; } }
EOF
  start $mode $((port + 2)) nginx -p $work -c $work/nginx.conf
  rps=$($P wrk -t 2 -c 20 -d ${SECS}s http://$EXA_IP_ACCEL:$((port + 2))/small.html | sed -n "s/^Requests\/sec: *//p")
  row nginx_wrk_small_req/s $mode $rps
  mbs=$($P curl -s -o /dev/null -w "%{speed_download}" http://$EXA_IP_ACCEL:$((port + 2))/big.bin)
  row nginx_curl_50MB_MB/s $mode $(python3 -c "print($mbs / 1e6)")
  stop

  start $mode $((port + 3)) sockperf sr --tcp -i $EXA_IP_ACCEL -p $((port + 3))
  $P sockperf pp --tcp -i $EXA_IP_ACCEL -p $((port + 3)) -t $SECS -m 32 --full-log $work/sockperf-$mode.csv \
    | sed -n "s/.*<MAX> observation.*//; s/.*percentile 50.000 = *\([0-9.]*\).*/sockperf_tcp_p50_us $mode \1/p; s/.*percentile 99.000 = *\([0-9.]*\).*/sockperf_tcp_p99_us $mode \1/p"
  stop
done | awk "
  { v[\$1, \$2] = \$3; if (!(\$1 in seen)) { seen[\$1] = 1; order[n++] = \$1 } }
  END {
    printf \"%-26s %12s %12s %8s\n\", \"program, metric\", \"kernel\", \"exasock\", \"ratio\"
    for (i = 0; i < n; i++) { m = order[i]; k = v[m, \"kernel\"]; e = v[m, \"exasock\"]
      printf \"%-26s %12.2f %12.2f %8.2f\n\", m, k, e, (k > 0 ? e / k : 0) }
    print \"(ratio: exasock / kernel; for the sockperf latencies lower is better)\"
  }"
python3 bench/percentiles.py bench/latency.svg \
  "sockperf TCP ping-pong, 32 B, server in the accelerated namespace, kernel client" \
  "kernel=$work/sockperf-kernel.csv" "exasock=$work/sockperf-exasock.csv" \
  && echo "latency percentiles: bench/latency.svg"
'
