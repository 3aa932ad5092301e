#!/usr/bin/env bash
# Bulk TCP through an impaired link (issue 22; not CI): an echo server in the accel namespace,
# on the kernel and then under exasock, and a kernel client in the peer namespace that streams
# SIZE bytes of a seeded pattern while it reads the echo back, checking every byte (SHA-256 of
# both streams). Each row runs on a fresh topology whose veth drops, duplicates and reorders
# frames in both directions (bpf/impair.bpf.c); one line per run: seconds, MB/s each way, and
# whether the echo was byte-exact. Compare rows of one run, never figures from two machines.
# Usage: bench/impaired.sh [SIZE_MIB, default 1024] [--datapath xdp]
set -euo pipefail
cd "$(dirname "$0")/.."
mib=${1:-1024}
datapath=af_packet
[ "${2:-}" = "--datapath" ] && datapath=${3:-xdp}
cargo build --release -q -p testbed -p ctl -p launcher -p preload
export PATH="$PWD/target/release:$PATH" MIB=$mib DATAPATH=$datapath
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat > "$work/server.py" <<'EOF'
import socket, sys
l = socket.socket()
l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
l.bind((sys.argv[1], 9200))
l.listen(1)
print("ready", flush=True)
c, _ = l.accept()
while d := c.recv(1 << 20):
    c.sendall(d)
c.close()
EOF
cat > "$work/client.py" <<'EOF'
import hashlib, socket, sys, threading, time
host, size = sys.argv[1], int(sys.argv[2]) << 20
chunk = bytes((i * 13 + 7) % 251 for i in range(1 << 20))
s = socket.create_connection((host, 9200), timeout=120)
sent_hash = hashlib.sha256()
def write():
    left = size
    while left:
        piece = chunk[: min(left, len(chunk))]
        s.sendall(piece)
        sent_hash.update(piece)
        left -= len(piece)
    s.shutdown(socket.SHUT_WR)
start = time.time()
w = threading.Thread(target=write)
w.start()
got, got_hash = 0, hashlib.sha256()
while d := s.recv(1 << 20):
    got += len(d)
    got_hash.update(d)
w.join()
secs = time.time() - start
exact = got == size and got_hash.digest() == sent_hash.digest()
print(f"{secs:7.2f} s  {size / secs / 1e6:8.1f} MB/s each way  {'byte-exact' if exact else 'DIFFERS after %d of %d bytes' % (got, size)}", flush=True)
sys.exit(0 if exact else 1)
EOF
export WORK=$work
printf '%-34s %-9s %s\n' "link" "server" "result ($mib MiB each way)"
for link in "--loss 1%" "--loss 5% --dup 2% --reorder 5%"; do
  for server in kernel exasock; do
    # shellcheck disable=SC2086
    row=$(LINK="$link" SERVER=$server exasock-testbed run $link --seed 7 -- bash -c '
set -euo pipefail
A="ip netns exec $EXA_NS_ACCEL" P="ip netns exec $EXA_NS_PEER"
$A exasock-ctl attach $EXA_IF_ACCEL --datapath $DATAPATH >/dev/null
$P ping -c1 -W1 $EXA_IP_ACCEL >/dev/null
if [ "$SERVER" = exasock ]; then run="exasock python3"; else run=python3; fi
$A $run $WORK/server.py $EXA_IP_ACCEL > $WORK/ready &
for _ in $(seq 100); do grep -q ready $WORK/ready 2>/dev/null && break; sleep 0.1; done
$P python3 $WORK/client.py $EXA_IP_ACCEL $MIB || true
wait || true
' 2>&1 | grep -E 'each way|DIFFERS|Error|error' | tail -1)
    printf '%-34s %-9s %s\n' "$link" "$server" "$row"
  done
done
