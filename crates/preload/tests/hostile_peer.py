# A kernel client in the peer namespace that, in the middle of an echo connection to an
# accelerated server, injects what a blind attacker would (RFC 5961) and what a broken peer
# would (malformed options and headers), then checks that the stream carried on byte for byte.
#
# argv: HOST PORT IFACE. Prints "injected N" then "ok BYTES" on success; exits non-zero with the
# reason otherwise.
import random
import socket
import struct
import sys

host, port, iface = sys.argv[1], int(sys.argv[2]), sys.argv[3]
rng = random.Random(22)


def checksum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return ~s & 0xFFFF


def segment(src, dst, sport, dport, seq, ack, flags, payload=b"", options=b"", doff=None, bad_sum=False, window=65535):
    """An IPv4 packet carrying one TCP segment, checksums right unless told otherwise."""
    options += b"\0" * (-len(options) % 4)
    words = doff if doff is not None else 5 + len(options) // 4
    tcp = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, words << 4, flags, window, 0, 0)
    tcp += options + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(tcp))
    csum = checksum(pseudo + tcp)
    if bad_sum:
        csum ^= 0x5A5A
    tcp = tcp[:16] + struct.pack("!H", csum) + tcp[18:]
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), rng.randrange(65536), 0x4000, 64, 6, 0,
                     socket.inet_aton(src), socket.inet_aton(dst))
    ip = ip[:10] + struct.pack("!H", checksum(ip)) + ip[12:]
    return ip + tcp


FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10

sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
sniff.bind((iface, 0))
sniff.settimeout(5)
s = socket.create_connection((host, port))
s.settimeout(20)
me, my_port = s.getsockname()


def exchange(data):
    s.sendall(data)
    got = b""
    while len(got) < len(data):
        chunk = s.recv(65536)
        if not chunk:
            sys.exit("the server closed the connection")
        got += chunk
    if got != data:
        sys.exit("the echo differs")


def their_numbers(marker):
    """(seq after, ack) of the server's segment that carries `marker`: its SND.NXT then, and
    its RCV.NXT (our SND.NXT)."""
    while True:
        frame = sniff.recv(65536)
        ip = frame[14:]
        ihl = (ip[0] & 15) * 4
        if ip[9] != 6 or socket.inet_ntoa(ip[12:16]) != host:
            continue
        tcp = ip[ihl:]
        sport, dport, seq, ack, off = struct.unpack("!HHIIB", tcp[:13])
        if (sport, dport) != (port, my_port):
            continue
        payload = tcp[(off >> 4) * 4:struct.unpack("!H", ip[2:4])[0] - ihl]
        if payload.endswith(marker):
            return (seq + len(payload)) & 0xFFFFFFFF, ack


marker = b"marker-%d" % rng.randrange(1 << 30)
exchange(marker)
snd_nxt, rcv_nxt = their_numbers(marker)
sniff.close()

raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)
evil = b"EVIL" * 64
attacks = []


def inject(seq, ack, flags, **kw):
    attacks.append(segment(me, host, my_port, port, seq, ack, flags, **kw))


W = 1 << 30
# Blind resets: in the window but not at RCV.NXT (challenge ACK), far outside, old.
for off in (1, 100, 5000, 30000):
    inject(rcv_nxt + off, 0, RST)
    inject(rcv_nxt + off, snd_nxt, RST | ACK)
inject(rcv_nxt + 2 * W, 0, RST)
inject(rcv_nxt - 100000, 0, RST)
# SYNs on the established connection, in and out of the window.
inject(rcv_nxt + 10, 0, SYN)
inject(rcv_nxt + 2 * W, 0, SYN)
inject(rcv_nxt, snd_nxt, SYN | ACK)
# Data that must never reach the stream: acknowledging what was never sent, or too old to be
# acknowledged (RFC 5961 5.2), or outside the window.
inject(rcv_nxt, snd_nxt + W, ACK | PSH, payload=evil)
inject(rcv_nxt, snd_nxt - 2 * W, ACK | PSH, payload=evil)
inject(rcv_nxt + 50, snd_nxt + W, ACK | PSH, payload=evil)
inject(rcv_nxt + 2 * W, snd_nxt, ACK | PSH, payload=evil)
inject(rcv_nxt - 3000, snd_nxt, ACK | PSH, payload=evil)
# A checksum that does not match, at the very next sequence number.
inject(rcv_nxt, snd_nxt, ACK | PSH, payload=evil, bad_sum=True)
# Headers that lie about their length.
inject(rcv_nxt, snd_nxt, ACK | PSH, payload=b"EVIL", doff=15)
inject(rcv_nxt, snd_nxt, ACK | PSH, payload=b"", doff=4)
# Malformed options on segments outside the window (length 0, 1, past the header, wrong
# lengths for MSS, window scale, SACK-permitted, timestamps and SACK) and junk.
bad_options = [
    b"\x02\x00", b"\x02\x01", b"\x08\x28", b"\x02\x03\x05", b"\x03\x02", b"\x04\x03", b"\x08\x05\x00\x00\x00",
    b"\x05\x03\x00", b"\x05\x0b" + b"\x00" * 9, b"\x13\x12" + b"\x00" * 16, b"\xff\xff",
    bytes(rng.randrange(256) for _ in range(40)),
]
for opt in bad_options:
    inject(rcv_nxt + 2 * W, snd_nxt, ACK, options=opt)
    inject(rcv_nxt + 2 * W, snd_nxt, ACK | PSH, options=opt, payload=evil)
# SACK blocks for data never sent and for data long acknowledged, on pure ACKs in the window.
for left, right in ((snd_nxt + 1000, snd_nxt + 5000), (snd_nxt - 50000, snd_nxt - 40000), (snd_nxt + W, snd_nxt + W + 10)):
    opt = b"\x01\x01\x05\x0a" + struct.pack("!II", left & 0xFFFFFFFF, right & 0xFFFFFFFF)
    inject(rcv_nxt, snd_nxt, ACK, options=opt)
for _ in range(200):
    opt = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 41)))
    inject(rcv_nxt + rng.choice((2 * W, W + 77)), snd_nxt, rng.choice((ACK, ACK | PSH, RST, SYN, FIN | ACK)),
           options=opt, payload=evil[:rng.randrange(len(evil))])

for p in attacks:
    raw.sendto(p, (host, 0))
print("injected", len(attacks), flush=True)

# The stream carries on, byte for byte (nothing injected came before or between the echoes).
total = 0
for i in range(64):
    block = bytes((i * 31 + j * 7) % 251 for j in range(16384))
    exchange(block)
    total += len(block)
s.shutdown(socket.SHUT_WR)
print("ok", total, flush=True)
