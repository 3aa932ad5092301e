//! Property tests: whatever segments arrive and whatever the application does, the engine
//! neither panics nor breaks its invariants, and a connection's byte stream never goes wrong:
//! the peer's bytes are a function of their sequence number (`stack::testing::stream_byte`),
//! so every byte the application reads must be the stream at its offset, and every byte the
//! engine sends must be what the application wrote at that offset.

mod common;

use common::*;
use proptest::prelude::*;
use stack::tcp::{State, TcpConfig};
use stack::testing::{stream_at, stream_mismatch};

#[derive(Debug, Clone)]
enum Op {
    /// A segment from the peer: flags, sequence offset from 1001 (wrapping), ack offset from 1,
    /// window, payload length.
    Segment(u8, i32, i32, u16, u16),
    /// A segment with fully random numbers.
    Wild(u8, u32, u32, u16, u16),
    /// The peer's data as a live peer sends it: from its next byte plus an offset (0: in
    /// order; more: past a hole), acknowledging all we sent; with FIN when the flag is set.
    Data(u16, u16, bool),
    Wait(u16),
    Send(u16),
    Recv(u16),
    ShutdownWrite,
    Close,
    Abort,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), -3000i32..70_000, -3000i32..70_000, any::<u16>(), 0u16..1600)
            .prop_map(|(f, s, a, w, l)| Op::Segment(f, s, a, w, l)),
        2 => (any::<u8>(), any::<u32>(), any::<u32>(), any::<u16>(), 0u16..100)
            .prop_map(|(f, s, a, w, l)| Op::Wild(f, s, a, w, l)),
        6 => (prop_oneof![3 => Just(0u16), 1 => 0u16..9000], 1u16..1600, proptest::bool::weighted(0.05))
            .prop_map(|(o, l, f)| Op::Data(o, l, f)),
        3 => (0u16..5000).prop_map(Op::Wait),
        2 => (0u16..5000).prop_map(Op::Send),
        2 => (0u16..5000).prop_map(Op::Recv),
        1 => Just(Op::ShutdownWrite),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
}

/// `len` bytes of the peer's stream for a segment with sequence number `seq` (data starts one
/// past a SYN).
fn peer_bytes(flags: u8, seq: u32, len: u16) -> Vec<u8> {
    let first = seq.wrapping_add(u32::from(flags & 1)).wrapping_sub(1001);
    let mut v = vec![0u8; usize::from(len)];
    stream_at(first, &mut v);
    v
}

fn flags(bits: u8) -> String {
    let mut s = String::new();
    for (bit, c) in [(1, 'S'), (2, 'F'), (4, 'R'), (8, 'P'), (16, '.')] {
        if bits & bit != 0 {
            s.push(c);
        }
    }
    s
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Random segments and calls against an established connection and a listener.
    #[test]
    fn no_input_panics_the_engine(ops in proptest::collection::vec(op(), 1..60), passive in any::<bool>()) {
        let mut p = Script::with(TcpConfig { rcvbuf: 8192, sndbuf: 8192, ..TcpConfig::default() });
        let l = p.stack.tcp_open();
        p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, 9999)).unwrap();
        p.stack.tcp_listen(l, 4).unwrap();
        let h = if passive {
            let l2 = p.listen(4);
            p.inject(seg("S", 1000).mss(1000).ws(3));
            p.inject(seg(".", 1001).ack(1));
            p.stack.tcp_accept(l2).map(|(h, _)| h).ok()
        } else {
            Some(p.established())
        };
        let mut t = p.now.as_nanos() / 1_000_000;
        let mut open = h;
        // Bytes the application wrote and read so far (each a prefix of its stream).
        let (mut written, mut read) = (0u32, 0u32);
        // The peer's next byte (stream offset) and the end of what we sent (relative).
        let (mut peer_next, mut our_max) = (0u32, 1u32);
        for op in ops {
            match op {
                Op::Segment(f, s, a, w, len) => {
                    let sq = 1001u32.wrapping_add(s as u32);
                    let mut sg = seg(&flags(f), sq).win(w).data(&peer_bytes(f, sq, len));
                    if f & 16 != 0 { sg = sg.ack((1i64 + i64::from(a)) as u32); }
                    // The other listener hears from another port, so that its SYN-ACKs never
                    // stand for our connection's ISS in the script.
                    if f & 32 != 0 { sg = sg.dst_port(9999).src_port(PEER_PORT + 1); }
                    p.inject(sg);
                }
                Op::Wild(f, s, a, w, len) => {
                    let mut sg = seg(&flags(f), s).win(w).data(&peer_bytes(f, s, len));
                    if f & 16 != 0 { sg = sg.ack(a); }
                    p.inject(sg);
                }
                Op::Data(offset, len, fin) => {
                    let sq = 1001u32.wrapping_add(peer_next).wrapping_add(u32::from(offset));
                    let flags = if fin { "F." } else { "P." };
                    p.inject(seg(flags, sq).ack(our_max).data(&peer_bytes(0, sq, len)));
                    if offset == 0 { peer_next = peer_next.wrapping_add(u32::from(len)); }
                }
                Op::Wait(ms) => {
                    t += u64::from(ms) * 10;
                    p.run_until(t);
                }
                Op::Send(n) => if let Some(h) = open {
                    let mut data = vec![0u8; usize::from(n)];
                    stream_at(written, &mut data);
                    if let Ok(k) = p.send(h, &data) { written += k as u32; }
                },
                Op::Recv(n) => if let Some(h) = open {
                    if let Ok(data) = p.recv(h, usize::from(n)) {
                        prop_assert_eq!(stream_mismatch(read, &data), None, "read at stream offset {}", read);
                        read += data.len() as u32;
                    }
                },
                Op::ShutdownWrite => if let Some(h) = open { let _ = p.stack.tcp_shutdown(h, false, true); p.flush(); },
                Op::Close => if let Some(h) = open.take() { p.close(h); },
                Op::Abort => if let Some(h) = open { let _ = p.stack.tcp_abort(h); p.flush(); },
            }
            if let Some(h) = open {
                let info = p.stack.tcp_info(h).unwrap();
                prop_assert!(info.unacked as usize <= 8192 + 2);
                let _ = p.stack.tcp_readiness(h).unwrap();
            }
            // What our connection sent is what the application wrote, at its offset.
            for o in p.sent.drain(..) {
                if o.src.port() == OUR_PORT && o.dst.port() == PEER_PORT && !o.payload.is_empty() {
                    let at = o.seq.wrapping_sub(1);
                    our_max = our_max.max(o.seq.wrapping_add(o.payload.len() as u32));
                    prop_assert!(at.wrapping_add(o.payload.len() as u32) <= written, "sent past what was written");
                    prop_assert_eq!(stream_mismatch(at, &o.payload), None, "sent at stream offset {}", at);
                }
            }
        }
        // Time heals everything: with every timer run out, no connection is left but the
        // application's (and those only in CLOSED or a state waiting for it).
        p.run_until(t + 4_000_000);
        if let Some(h) = open {
            let s = p.state(h);
            prop_assert!(matches!(s, State::Closed | State::Established | State::CloseWait | State::FinWait2), "{s:?}");
        }
    }
}
