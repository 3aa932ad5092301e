//! Super-segments for a datapath that cuts them (GSO): new data the windows let out at once
//! leaves as one segment of whole MSS pieces, and everything the peer can see (each piece's
//! time, sequence number, flags, ACK, window and timestamps, what is retransmitted and when)
//! is what the same connection sends one segment at a time.

use crate::common::*;
use stack::tcp::{TcpError, TcpInfo};
use stack::SocketHandle;
use std::collections::BTreeSet;

/// What the peer sees of one segment on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Wire {
    ms: u64,
    flags: String,
    seq: u32,
    ack: Option<u32>,
    win: u16,
    ts: Option<(u32, u32)>,
    len: usize,
    first_byte: Option<u8>,
}

/// The pieces a super-segment is cut into, as the kernel's tcp_gso_segment cuts it (FIN and
/// PSH on the last piece only); an ordinary segment as it is.
fn pieces(o: &Out) -> Vec<Wire> {
    let size = if o.gso == 0 { o.payload.len().max(1) } else { usize::from(o.gso) };
    let chunks: Vec<&[u8]> = if o.payload.is_empty() { vec![&[][..]] } else { o.payload.chunks(size).collect() };
    let n = chunks.len();
    chunks
        .iter()
        .enumerate()
        .map(|(i, c)| Wire {
            ms: o.ms(),
            flags: if i + 1 < n { o.flags.replace(['F', 'P'], "") } else { o.flags.clone() },
            seq: o.seq.wrapping_add((i * size) as u32),
            ack: o.ack,
            win: o.win,
            ts: o.options.timestamp,
            len: c.len(),
            first_byte: c.first().copied(),
        })
        .collect()
}

/// A connection (with timestamps when `ts`) that sends `total` bytes and then its FIN to a
/// peer acknowledging every piece one RTT (100 ms) after it left, dropping the pieces whose
/// wire index is in `lose` (first transmissions and retransmissions are counted alike).
/// Returns every piece on the wire, the super-segments' count and the final TCP_INFO.
fn transfer(gso: bool, ts: bool, total: usize, lose: &BTreeSet<usize>) -> (Vec<Wire>, usize, TcpInfo) {
    let mut p = Script::new();
    p.gso_max = if gso { 65_535 } else { 0 };
    let h = p.connect();
    let syn = p.expect();
    let mut synack = seg("S.", 1000).ack(1).mss(1460);
    if ts {
        synack = synack.ts(5000, syn.options.timestamp.unwrap().0);
    }
    p.inject_at(100, synack);
    p.expect();
    let data: Vec<u8> = (0..total).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut shut = false;
    let mut app = |p: &mut Script, h: SocketHandle| {
        while sent < total {
            match p.send(h, &data[sent..]) {
                Ok(n) => sent += n,
                Err(TcpError::WouldBlock) => break,
                Err(e) => panic!("{e}"),
            }
        }
        if sent == total && !shut {
            p.shutdown_write(h);
            shut = true;
        }
    };
    app(&mut p, h);
    let mut wire = Vec::new();
    let mut supers = 0;
    let mut have: BTreeSet<(u32, u32)> = BTreeSet::new();
    let mut rcv_nxt = 1u32;
    let mut t = 100;
    let mut echo = 0;
    while rcv_nxt < total as u32 + 2 && t < 60_000 {
        // What left until the next round: the peer takes it (or loses it) and acknowledges.
        let mut acks = Vec::new();
        let mut round = Vec::new();
        while let Some(o) = p.sent.pop_front() {
            supers += usize::from(o.gso > 0);
            round.extend(pieces(&o));
        }
        for w in round {
            let index = wire.len();
            wire.push(w.clone());
            if lose.contains(&index) {
                continue;
            }
            if let Some((tsval, _)) = w.ts {
                echo = tsval;
            }
            let end = w.seq + w.len as u32 + u32::from(w.flags.contains('F'));
            if end > w.seq {
                have.insert((w.seq, end));
            }
            while let Some(&(s, e)) = have.iter().find(|(s, e)| *s <= rcv_nxt && *e > rcv_nxt) {
                have.remove(&(s, e));
                rcv_nxt = e;
            }
            acks.push(rcv_nxt);
        }
        t += 100;
        p.run_until(t);
        for a in acks {
            let mut s = seg(".", 1001).ack(a);
            if ts {
                s = s.ts(5000 + t as u32, echo);
            }
            p.inject(s);
        }
        app(&mut p, h);
        if p.sent.is_empty() {
            // Nothing answered: let the timers work until something leaves.
            let deadline = t + 10_000;
            while p.sent.is_empty() && t < deadline {
                t += 10;
                p.run_until(t);
            }
        }
    }
    assert!(rcv_nxt >= total as u32 + 2, "the peer did not get everything and the FIN: {rcv_nxt}");
    (wire, supers, p.stack.tcp_info(h).unwrap())
}

fn same_on_the_wire(ts: bool, total: usize, lose: &[usize]) -> TcpInfo {
    let lose: BTreeSet<usize> = lose.iter().copied().collect();
    let (single, none, info_single) = transfer(false, ts, total, &lose);
    let (cut, supers, info_gso) = transfer(true, ts, total, &lose);
    assert_eq!(none, 0, "no super-segment without GSO");
    assert!(supers > 0, "GSO sent no super-segment");
    for (i, (a, b)) in single.iter().zip(&cut).enumerate() {
        assert_eq!(a, b, "piece {i} differs (single segments, then GSO)");
    }
    assert_eq!(single.len(), cut.len());
    assert_eq!(info_single, info_gso, "TCP_INFO differs");
    info_gso
}

#[test]
fn super_segments_put_the_same_segments_on_the_wire_as_single_ones() {
    let info = same_on_the_wire(false, 300_000, &[]);
    assert_eq!(info.bytes_retransmitted, 0);
    same_on_the_wire(true, 300_000, &[]);
    // A tail shorter than an MSS goes with its super-segment, with PSH and FIN on it.
    same_on_the_wire(true, 100 * 1460 + 7, &[]);
}

#[test]
fn a_lost_piece_of_a_super_segment_is_retransmitted_as_a_lost_segment_would_be() {
    // One piece in the middle of a burst: three duplicate ACKs, fast retransmit.
    let info = same_on_the_wire(true, 400_000, &[25]);
    assert!(info.fast_retransmits > 0, "{info:?}");
    // Several pieces of one super-segment, and a retransmission lost as well.
    same_on_the_wire(false, 400_000, &[40, 42, 44, 80, 81]);
    // The tail of a flight, FIN included: no duplicate ACKs follow, the timer repairs it.
    let info = same_on_the_wire(false, 10 * 1460, &[8, 9]);
    assert!(info.timeouts > 0, "{info:?}");
}

#[test]
fn super_segments_carry_whole_mss_pieces_within_the_windows() {
    let mut p = Script::new();
    p.gso_max = 65_535;
    let h = p.established();
    p.send(h, &vec![7u8; 30 * 1460]).unwrap();
    let o = p.expect();
    // The initial window of 10 segments, in one super-segment of 1460-byte pieces.
    assert_eq!((o.seq, o.payload.len(), o.gso, o.flags.as_str()), (1, 10 * 1460, 1460, "."));
    p.expect_none();
    // The grown congestion window, in whole pieces, again in one super-segment.
    p.inject_at(200, seg(".", 1001).ack(1 + 10 * 1460));
    let o = p.expect();
    let cwnd = p.stack.tcp_info(h).unwrap().cwnd as usize;
    assert_eq!((o.seq, o.payload.len(), o.gso), (1 + 10 * 1460, cwnd / 1460 * 1460, 1460));
    assert!(o.payload.len() > 10 * 1460);
    p.expect_none();
    // A datapath without GSO gets single segments.
    let mut q = Script::new();
    let h = q.established();
    q.send(h, &vec![7u8; 30 * 1460]).unwrap();
    let mut n = 0;
    while let Some(o) = q.sent.pop_front() {
        assert_eq!((o.payload.len(), o.gso), (1460, 0));
        n += 1;
    }
    assert_eq!(n, 10);
}

#[test]
fn cork_and_nagle_hold_the_short_tail_of_a_super_segment() {
    let mut p = Script::new();
    p.gso_max = 65_535;
    let h = p.established_with(|o| o.cork = true);
    p.send(h, &vec![7u8; 3 * 1460 + 100]).unwrap();
    let o = p.expect();
    assert_eq!((o.payload.len(), o.gso, o.flags.as_str()), (3 * 1460, 1460, "."), "the corked tail waits");
    p.expect_none();
    // Urgent data is not cut: single segments.
    let mut q = Script::new();
    q.gso_max = 65_535;
    let h = q.established();
    q.stack.tcp_send_with(h, &vec![1u8; 3 * 1460], stack::tcp::SendFlags { oob: true, ..Default::default() }).unwrap();
    q.flush();
    while let Some(o) = q.sent.pop_front() {
        assert_eq!(o.gso, 0, "urgent data went in a super-segment");
    }
}
