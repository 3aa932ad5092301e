#!/usr/bin/env bash
# Soak (issue 22; not CI): one exasock process serves mixed traffic for a long time while the
# peer namespace opens and closes TCP connections (echo of random sizes) and sends UDP
# datagrams; every 10 s one line: the server's RSS, descriptors, threads, the interface's
# flows-map entries, and the clients' totals. Ends with the first and last samples after
# warm-up side by side and FLAT or GREW: what leaks shows here.
# Usage: bench/soak.sh [SECONDS, default 1200] [--datapath xdp]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-1200}
datapath=${3:-af_packet}
[ "${2:-}" = "--datapath" ] || datapath=af_packet
cargo build --release -q -p testbed -p ctl -p launcher -p preload
export PATH="$PWD/target/release:$PATH" SECS=$secs DATAPATH=$datapath
exec exasock-testbed run -- bash -c '
set -euo pipefail
A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
$A exasock-ctl attach $EXA_IF_ACCEL --datapath $DATAPATH >/dev/null
$P ping -c1 -W1 $EXA_IP_ACCEL >/dev/null
# The clients close first, so their kernel keeps each port in TIME_WAIT for 60 s: at this rate
# the default ephemeral range runs out in half a minute (connect fails with EADDRNOTAVAIL).
$P sysctl -qw net.ipv4.tcp_tw_reuse=1 net.ipv4.ip_local_port_range="1024 65000"
work=$(mktemp -d)
trap "kill 0 2>/dev/null; rm -rf $work" EXIT
# The server: TCP echo (asyncio: many connections, each closed by the client) and UDP echo.
cat > $work/server.py <<EOF
import asyncio, socket, sys
async def tcp(r, w):
    try:
        while d := await r.read(65536):
            w.write(d)
            await w.drain()
    except ConnectionError:
        pass
    w.close()
class Udp(asyncio.DatagramProtocol):
    def connection_made(self, t): self.t = t
    def datagram_received(self, d, a): self.t.sendto(d, a)
async def main():
    srv = await asyncio.start_server(tcp, sys.argv[1], 9100, backlog=512)
    await asyncio.get_running_loop().create_datagram_endpoint(Udp, local_addr=(sys.argv[1], 9101))
    print("ready", flush=True)
    async with srv:
        await srv.serve_forever()
asyncio.run(main())
EOF
# The clients: N threads each opening a connection, echoing a random size, closing; one UDP
# pinger. Totals go to a file every second.
cat > $work/client.py <<EOF
import os, random, socket, sys, threading, time
host, until, out = sys.argv[1], time.time() + float(sys.argv[2]), sys.argv[3]
stats = {"conns": 0, "bytes": 0, "errors": 0, "udp": 0, "udp_lost": 0}
def tcp_worker(seed):
    rnd = random.Random(seed)
    while time.time() < until:
        try:
            s = socket.create_connection((host, 9100), timeout=10)
            data = os.urandom(rnd.choice((1, 100, 1400, 20000, 300000)))
            s.sendall(data)
            got = b""
            while len(got) < len(data):
                chunk = s.recv(65536)
                if not chunk:
                    break
                got += chunk
            if got != data:
                stats["errors"] += 1
            s.close()
            stats["conns"] += 1
            stats["bytes"] += len(data)
        except OSError:
            stats["errors"] += 1
def udp_worker():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(0.5)
    while time.time() < until:
        s.sendto(b"x" * 200, (host, 9101))
        try:
            s.recv(2048)
            stats["udp"] += 1
        except OSError:
            stats["udp_lost"] += 1
threads = [threading.Thread(target=tcp_worker, args=(i,)) for i in range(8)] + [threading.Thread(target=udp_worker)]
for t in threads:
    t.start()
while any(t.is_alive() for t in threads):
    with open(out + ".tmp", "w") as f:
        f.write(" ".join("%s=%d" % kv for kv in stats.items()))
    os.replace(out + ".tmp", out)
    time.sleep(1)
EOF
$A env EXASOCK_SPIN_USEC=0 exasock python3 $work/server.py $EXA_IP_ACCEL > $work/server.out 2>&1 &
until grep -q ready $work/server.out; do sleep 0.1; done
pid=$($A ss -Hltnp "sport = :9100" | grep -o "pid=[0-9]*" | head -1 | cut -d= -f2)
$P python3 $work/client.py $EXA_IP_ACCEL $SECS $work/client.stats &
client=$!
sample() {
  local rss fds thr flows
  rss=$(awk "/VmRSS/ {print \$2}" /proc/$pid/status)
  fds=$(ls /proc/$pid/fd | wc -l)
  thr=$(awk "/Threads/ {print \$2}" /proc/$pid/status)
  flows=$($A exasock-ctl status | grep -o "[0-9]* flow(s)" | head -1 | cut -d" " -f1)
  echo "$rss $fds $thr $flows"
}
printf "%6s %10s %5s %7s %6s  %s\n" secs rss_kib fds threads flows clients
t=0
first=""
while kill -0 $client 2>/dev/null; do
  sleep 10
  t=$((t + 10))
  kill -0 $pid 2>/dev/null || { echo "the server died"; cat $work/server.out; exit 1; }
  read -r rss fds thr flows <<< "$(sample)"
  printf "%6d %10d %5d %7d %6d  %s\n" $t $rss $fds $thr $flows "$(cat $work/client.stats 2>/dev/null)"
  # The first sample after a minute of warm-up is the baseline.
  [ -z "$first" ] && [ $t -ge 60 ] && first="$rss $fds $thr $flows"
  last="$rss $fds $thr $flows"
done
wait $client || true
echo "baseline (60 s): rss ${first:-?} | last: $last   (rss_kib fds threads flows)"
read -r r0 f0 t0 l0 <<< "${first:-$last}"
read -r r1 f1 t1 l1 <<< "$last"
if [ $r1 -le $((r0 + r0 / 10 + 1024)) ] && [ $f1 -le $((f0 + 8)) ] && [ $t1 -le $t0 ] && [ $l1 -le $((l0 + 16)) ]; then
  echo FLAT
else
  echo GREW
fi
'
