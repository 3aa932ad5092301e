//! Property tests: whatever segments arrive and whatever the application does, the engine
//! neither panics nor breaks its invariants, and a connection's byte stream never goes wrong.

mod common;

use common::*;
use proptest::prelude::*;
use stack::tcp::{State, TcpConfig};

#[derive(Debug, Clone)]
enum Op {
    /// A segment from the peer: flags, sequence offset from 1001 (wrapping), ack offset from 1,
    /// window, payload length.
    Segment(u8, i32, i32, u16, u16),
    /// A segment with fully random numbers.
    Wild(u8, u32, u32, u16, u16),
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
        3 => (0u16..5000).prop_map(Op::Wait),
        2 => (0u16..5000).prop_map(Op::Send),
        2 => (0u16..5000).prop_map(Op::Recv),
        1 => Just(Op::ShutdownWrite),
        1 => Just(Op::Close),
        1 => Just(Op::Abort),
    ]
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
        for op in ops {
            match op {
                Op::Segment(f, s, a, w, len) => {
                    let sq = 1001u32.wrapping_add(s as u32);
                    let mut sg = seg(&flags(f), sq).win(w).len(len as usize);
                    if f & 16 != 0 { sg = sg.ack((1i64 + i64::from(a)) as u32); }
                    let port = if f & 32 != 0 { 9999 } else { OUR_PORT };
                    p.inject(sg.dst_port(port));
                }
                Op::Wild(f, s, a, w, len) => {
                    let mut sg = seg(&flags(f), s).win(w).len(len as usize);
                    if f & 16 != 0 { sg = sg.ack(a); }
                    p.inject(sg);
                }
                Op::Wait(ms) => {
                    t += u64::from(ms) * 10;
                    p.run_until(t);
                }
                Op::Send(n) => if let Some(h) = open { let _ = p.send(h, &vec![1u8; n as usize]); },
                Op::Recv(n) => if let Some(h) = open { let _ = p.recv(h, n as usize); },
                Op::ShutdownWrite => if let Some(h) = open { let _ = p.stack.tcp_shutdown(h, false, true); p.flush(); },
                Op::Close => if let Some(h) = open.take() { p.close(h); },
                Op::Abort => if let Some(h) = open { let _ = p.stack.tcp_abort(h); p.flush(); },
            }
            if let Some(h) = open {
                let info = p.stack.tcp_info(h).unwrap();
                prop_assert!(info.unacked as usize <= 8192 + 2);
                let _ = p.stack.tcp_readiness(h).unwrap();
            }
            p.sent.clear();
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
