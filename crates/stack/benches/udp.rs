//! Per-datagram cost of the stack alone (no I/O): receive of a 32-byte datagram into a socket
//! and out of it, send of a 32-byte datagram into a transmit slot, and a 4,000-byte datagram
//! each way (fragmented on send, reassembled on receive).

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use stack::testing::lan_stack;
use stack::{Instant, RxChecksum, Stack, StackConfig, Transmit, TxBusy};
use std::hint::black_box;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::EthernetAddress;

const A: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const B: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const MAC_A: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 1]);
const MAC_B: EthernetAddress = EthernetAddress([2, 0, 0, 0, 0, 2]);

fn stack(addr: Ipv4Addr, mac: EthernetAddress, peer: Ipv4Addr, peer_mac: EthernetAddress) -> Stack {
    lan_stack(addr, mac, 1500, peer, peer_mac, StackConfig::default())
}

/// Writes frames into one reused buffer, keeping the last ones (as a TX ring slot would).
struct Slots {
    bufs: Vec<Vec<u8>>,
    lens: Vec<usize>,
}

impl Slots {
    fn new() -> Self {
        Slots { bufs: vec![vec![0u8; 1518]; 64], lens: Vec::with_capacity(64) }
    }
}

impl Transmit for Slots {
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy> {
        let i = self.lens.len() % self.bufs.len();
        let n = build(&mut self.bufs[i]);
        self.lens.push(n);
        Ok(())
    }
    fn to_kernel(&mut self, _: &[u8]) {}
}

fn frames_of(payload_len: usize) -> Vec<Vec<u8>> {
    let mut b = stack(B, MAC_B, A, MAC_A);
    let h = b.udp_open();
    b.udp_bind(h, SocketAddrV4::new(B, 2000)).unwrap();
    let mut tx = Slots::new();
    b.udp_send(h, &vec![7u8; payload_len], Some(SocketAddrV4::new(A, 1000)), &mut tx).unwrap();
    tx.lens.iter().enumerate().map(|(i, n)| tx.bufs[i][..*n].to_vec()).collect()
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("udp");
    g.throughput(Throughput::Elements(1));
    for len in [32usize, 4000] {
        let frames = frames_of(len);
        let mut a = stack(A, MAC_A, B, MAC_B);
        let h = a.udp_open();
        a.udp_bind(h, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 1000)).unwrap();
        let mut buf = vec![0u8; 65_536];
        let mut t = 0u64;
        g.bench_function(format!("receive_{len}B"), |bench| {
            bench.iter(|| {
                t += 1;
                for f in &frames {
                    a.receive(Instant::from_nanos(t), black_box(f), RxChecksum::Unverified);
                }
                black_box(a.udp_recv(h, &mut buf, false).unwrap());
            })
        });
        let payload = vec![9u8; len];
        let mut tx = Slots::new();
        let dst = Some(SocketAddrV4::new(B, 2000));
        g.bench_function(format!("send_{len}B"), |bench| {
            bench.iter(|| {
                tx.lens.clear();
                black_box(a.udp_send(h, black_box(&payload), dst, &mut tx).unwrap());
            })
        });
    }
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
