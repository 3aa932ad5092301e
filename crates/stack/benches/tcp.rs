//! Cost of the TCP engine alone (no I/O), with two stacks joined back to back:
//! - `bulk_1mib_one_way`: 1 MiB moved (segments built, checksummed, demultiplexed, reassembled,
//!   acknowledged, read);
//! - `receive_segment_1460` / `send_segment_1460`: one full segment taken in (receive, the ACK
//!   it causes, the read) or put out (send, the segment built), per segment;
//! - the same receive with 10,000 other connections open: the per-packet cost must not depend
//!   on their number (O(1) demux, timer wheel).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stack::tcp::TcpConfig;
use stack::testing::lan_stack;
use stack::{Instant, RxChecksum, SocketHandle, Stack, StackConfig, Transmit, TxBusy};
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::EthernetAddress;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);
const MIB: usize = 1 << 20;

fn stack(addr: Ipv4Addr, mac: EthernetAddress, peer: Ipv4Addr, peer_mac: EthernetAddress) -> Stack {
    let tcp = TcpConfig { sndbuf: 4 * MIB, rcvbuf: 4 * MIB, ..TcpConfig::default() };
    lan_stack(addr, mac, 1500, peer, peer_mac, StackConfig { tcp, ..StackConfig::default() })
}

/// Frames in flight one way, in reused buffers.
#[derive(Default)]
struct Wire {
    frames: Vec<(Vec<u8>, usize)>,
    used: usize,
}

impl Transmit for Wire {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        if self.used == self.frames.len() {
            self.frames.push((vec![0u8; 1518], 0));
        }
        let slot = &mut self.frames[self.used];
        slot.1 = build(&mut slot.0);
        self.used += 1;
        Ok(())
    }
    fn to_kernel(&mut self, _: &[u8]) {}
}

impl Wire {
    fn deliver(&mut self, to: &mut Stack, now: Instant) {
        for (buf, len) in &self.frames[..self.used] {
            to.receive(now, &buf[..*len], RxChecksum::Verified);
        }
        self.used = 0;
    }
}

struct Pair {
    a: Stack,
    b: Stack,
    ab: Wire,
    ba: Wire,
    server: SocketHandle,
    client: SocketHandle,
    now: Instant,
}

impl Pair {
    fn new() -> Pair {
        let mut a = stack(A, MAC_A, B, MAC_B);
        let mut b = stack(B, MAC_B, A, MAC_A);
        let l = a.tcp_open();
        a.tcp_bind(l, SocketAddrV4::new(A, 5001)).unwrap();
        a.tcp_listen(l, 8).unwrap();
        let client = b.tcp_open();
        b.tcp_bind(client, SocketAddrV4::new(B, 40_000)).unwrap();
        b.tcp_connect(client, SocketAddrV4::new(A, 5001), Instant::ZERO).unwrap();
        let mut p = Pair { a, b, ab: Wire::default(), ba: Wire::default(), server: l, client, now: Instant::ZERO };
        for _ in 0..4 {
            p.round();
        }
        p.server = p.a.tcp_accept(l).unwrap().0;
        p
    }

    fn round(&mut self) {
        self.now = self.now + std::time::Duration::from_micros(10);
        self.b.handle_timeout(self.now);
        self.b.transmit(self.now, &mut self.ba);
        self.ba.deliver(&mut self.a, self.now);
        self.a.handle_timeout(self.now);
        self.a.transmit(self.now, &mut self.ab);
        self.ab.deliver(&mut self.b, self.now);
    }

    /// Moves `n` bytes from the client to the server.
    fn transfer(&mut self, data: &[u8], sink: &mut [u8]) {
        let (mut sent, mut got) = (0, 0);
        while got < data.len() {
            if sent < data.len() {
                sent += self.b.tcp_send(self.client, &data[sent..]).unwrap_or(0);
            }
            self.round();
            while let Ok(n) = self.a.tcp_recv(self.server, sink, false) {
                if n == 0 {
                    break;
                }
                got += n;
            }
        }
    }
}

fn bulk(c: &mut Criterion) {
    let mut p = Pair::new();
    let data = vec![0x5au8; MIB];
    let mut sink = vec![0u8; 256 * 1024];
    let mut g = c.benchmark_group("tcp");
    g.throughput(Throughput::Bytes(MIB as u64));
    g.bench_function("bulk_1mib_one_way", |b| b.iter(|| p.transfer(&data, &mut sink)));
    g.finish();
}

impl Pair {
    /// Opens `n` more connections from the client stack to the server's listener and accepts
    /// them (they stay open and idle).
    fn open_idle(&mut self, listener_port: u16, n: u16) {
        let l = self.a.tcp_open();
        self.a.tcp_bind(l, SocketAddrV4::new(A, listener_port)).unwrap();
        self.a.tcp_listen(l, 4096).unwrap();
        let mut accepted = 0;
        for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
            for &i in chunk {
                let h = self.b.tcp_open();
                self.b.tcp_bind(h, SocketAddrV4::new(B, 20_000 + i)).unwrap();
                self.b.tcp_connect(h, SocketAddrV4::new(A, listener_port), self.now).unwrap();
            }
            for _ in 0..4 {
                self.round();
            }
            while self.a.tcp_accept(l).is_ok() {
                accepted += 1;
            }
        }
        assert_eq!(accepted, usize::from(n), "every idle connection was accepted");
        assert!(self.a.tcp_connections().len() > usize::from(n));
    }
}

/// Per segment: the server receives full segments in order (each frame built beforehand by the
/// client, untimed), sends the ACKs they call for, and the application reads the bytes.
fn receive_per_segment(p: &mut Pair, iters: u64) -> std::time::Duration {
    let payload = [0x5au8; 1460];
    let mut sink = vec![0u8; 64 * 1024];
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(64) as usize;
        for _ in 0..n {
            assert_eq!(p.b.tcp_send(p.client, &payload).unwrap(), 1460);
        }
        p.now = p.now + std::time::Duration::from_micros(10);
        p.b.transmit(p.now, &mut p.ba);
        let start = std::time::Instant::now();
        p.ba.deliver(&mut p.a, p.now);
        p.a.transmit(p.now, &mut p.ab);
        while let Ok(got) = p.a.tcp_recv(p.server, &mut sink, false) {
            if got == 0 {
                break;
            }
        }
        total += start.elapsed();
        p.ab.deliver(&mut p.b, p.now);
        left -= n as u64;
    }
    total
}

/// Per segment: the application sends one full segment and the stack builds it (the peer's
/// ACKs, untimed).
fn send_per_segment(p: &mut Pair, iters: u64) -> std::time::Duration {
    let payload = [0x5au8; 1460];
    let mut sink = vec![0u8; 64 * 1024];
    let mut total = std::time::Duration::ZERO;
    let mut left = iters;
    while left > 0 {
        let n = left.min(64) as usize;
        p.now = p.now + std::time::Duration::from_micros(10);
        let start = std::time::Instant::now();
        for _ in 0..n {
            let _ = p.b.tcp_send(p.client, &payload);
            p.b.transmit(p.now, &mut p.ba);
        }
        total += start.elapsed();
        p.ba.deliver(&mut p.a, p.now);
        while matches!(p.a.tcp_recv(p.server, &mut sink, false), Ok(n) if n > 0) {}
        p.a.transmit(p.now, &mut p.ab);
        p.ab.deliver(&mut p.b, p.now);
        left -= n as u64;
    }
    total
}

fn per_segment(c: &mut Criterion) {
    let mut g = c.benchmark_group("tcp");
    g.throughput(Throughput::Elements(1));
    let mut p = Pair::new();
    g.bench_function("receive_segment_1460", |b| b.iter_custom(|iters| receive_per_segment(&mut p, iters)));
    let mut p = Pair::new();
    g.bench_function("send_segment_1460", |b| b.iter_custom(|iters| send_per_segment(&mut p, iters)));
    let mut p = Pair::new();
    p.open_idle(6000, 10_000);
    g.bench_function("receive_segment_1460_with_10000_connections", |b| {
        b.iter_custom(|iters| receive_per_segment(&mut p, iters))
    });
    g.finish();
}

criterion_group!(benches, bulk, per_segment);
criterion_main!(benches);
