//! SACK as a data receiver (RFC 2018), with TcpConfig::sack on: negotiated in the handshake,
//! and every segment sent while out-of-order data is held reports it, the block holding the
//! latest arrival first (data segments give up payload for the blocks).

use crate::common::*;
use stack::tcp::TcpConfig;

/// A script whose stack has SACK on (it is off by default).
pub(crate) fn with_sack() -> Script {
    // The windows these scripts check are NewReno's (ssthresh half the window); CUBIC's β is
    // checked in congestion/cubic.rs.
    Script::with(TcpConfig {
        sack: true,
        congestion: stack::tcp::congestion::Algorithm::NewReno,
        ..TcpConfig::default()
    })
}

/// An active open whose peer (ISN 1000) permits SACK; `ts`: with timestamps too.
pub(crate) fn established_with_sack(p: &mut Script, ts: bool) -> stack::SocketHandle {
    let h = p.connect();
    let syn = p.expect();
    assert!(syn.options.sack_permitted, "the SYN offers SACK");
    let mut synack = seg("S.", 1000).ack(1).mss(1460).sack_perm();
    if ts {
        synack = synack.ts(5000, syn.options.timestamp.unwrap().0);
    }
    p.inject_at(100, synack);
    p.expect();
    assert!(p.stack.tcp_info(h).unwrap().sack);
    h
}

#[test]
fn out_of_order_data_is_reported_in_sack_blocks_latest_first_until_the_holes_fill() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    p.run_until(200);
    // 1001..1101 lost; 1101..1201 arrives: one block.
    p.inject(seg("P.", 1101).ack(1).len(100));
    let a = p.expect();
    assert_eq!(a.ack, Some(1001));
    assert_eq!(a.options.sack_blocks, [Some((1101, 1201)), None, None, None]);
    // 1301..1401 too: two blocks, the newer first.
    p.inject(seg("P.", 1301).ack(1).len(100));
    let a = p.expect();
    assert_eq!(a.options.sack_blocks, [Some((1301, 1401)), Some((1101, 1201)), None, None]);
    // 1201..1301 joins them into one block.
    p.inject(seg("P.", 1201).ack(1).len(100));
    let a = p.expect();
    assert_eq!(a.options.sack_blocks, [Some((1101, 1401)), None, None, None]);
    // The first hole fills: everything is in order, no block.
    p.inject(seg("P.", 1001).ack(1).len(100));
    let a = p.expect();
    assert_eq!((a.ack, a.options.sack_blocks), (Some(1401), [None; 4]));
    assert_eq!(p.recv(h, 1000).unwrap().len(), 400);
}

#[test]
fn with_timestamps_three_blocks_fit_and_the_latest_is_always_among_them() {
    let mut p = with_sack();
    let _h = established_with_sack(&mut p, true);
    p.run_until(200);
    for (i, start) in [1101u32, 1301, 1501, 1701].into_iter().enumerate() {
        p.inject(seg("P.", start).ack(1).len(100).ts(5100 + i as u32, 0));
    }
    let mut last = None;
    while let Some(o) = p.sent.pop_front() {
        last = Some(o);
    }
    let a = last.unwrap();
    assert!(a.options.timestamp.is_some());
    assert_eq!(a.options.sack_blocks, [Some((1701, 1801)), Some((1501, 1601)), Some((1301, 1401)), None]);
}

#[test]
fn sack_is_used_only_when_both_ends_permit_it() {
    // The peer does not permit it: no blocks, whatever is out of order.
    let mut p = with_sack();
    let h = p.established();
    assert!(!p.stack.tcp_info(h).unwrap().sack);
    p.run_until(200);
    p.inject(seg("P.", 1101).ack(1).len(100));
    assert_eq!(p.expect().options.sack_blocks, [None; 4]);
    // Off (the default): not offered, not answered.
    let mut p = Script::with(TcpConfig { sack: false, ..TcpConfig::default() });
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460).sack_perm());
    assert!(!p.expect().options.sack_permitted);
    let _ = l;
    // A listener answers SACK-permitted only when the SYN offers it.
    let mut p = with_sack();
    let _l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460).sack_perm());
    assert!(p.expect().options.sack_permitted);
    let mut p = with_sack();
    let _l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460));
    assert!(!p.expect().options.sack_permitted);
}

#[test]
fn a_data_segment_carries_the_blocks_too_and_gives_up_payload_for_them() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, true);
    p.run_until(200);
    p.inject(seg("P.", 1101).ack(1).len(100).ts(5100, 0));
    p.sent.clear();
    p.send(h, &[5u8; 3000]).unwrap();
    let first = p.expect();
    assert_eq!(first.options.sack_blocks[0], Some((1101, 1201)));
    assert_eq!(first.payload.len(), 1448 - 12, "the MSS less the block's 12 bytes (NOP, NOP, kind, length, one block)");
}

/// RFC 6675: with SACK, an ACK that reports data above snd_una is a duplicate even though its
/// window shrank (a receiver keeping out-of-order data offers less room with each segment).
#[test]
fn sack_dupacks_whose_window_shrinks_still_trigger_fast_retransmit() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    p.run_until(200);
    p.send(h, &vec![3u8; 5 * 1460]).unwrap();
    p.sent.clear();
    // The first segment is lost; the next three arrive and are SACKed, each ACK offering less.
    for (i, win) in [(1u32, 60_000u16), (2, 58_540), (3, 57_080)] {
        let mut s = seg(".", 1001).ack(1).win(win);
        s = s.sack(1 + 1460, 1 + 1460 * (i + 1));
        p.inject_at(210 + u64::from(i), s);
    }
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len()), (1, 1460), "three SACK duplicates: the head is resent");
}
