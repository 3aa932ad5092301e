//! SACK as a data sender: RFC 6675 recovery driven by the blocks, D-SACK (RFC 2883) received
//! and sent, RACK's reordering window and timer and the tail loss probe (RFC 8985), as Linux
//! runs them. Every connection here measured one RTT of 100 ms in its handshake (so the minimum
//! RTT is 100 ms, RACK's reordering window a quarter of it, the RTO 300 ms) and its peer (ISN
//! 1000) permits SACK without timestamps: segments carry 1460 bytes.

use crate::common::*;
use crate::sack::{established_with_sack, with_sack};
use stack::tcp::TcpInfo;
use stack::SocketHandle;

const MSS: u32 = 1460;

/// Ten full segments sent at 200 ms (the initial window): the `n`th starts at 1 + n * MSS.
fn ten_segments_at_200(p: &mut Script, h: SocketHandle, bytes: usize) -> Vec<Out> {
    p.run_until(200);
    p.send(h, &vec![7u8; bytes]).unwrap();
    let out: Vec<Out> = p.sent.drain(..).collect();
    assert_eq!(out.len(), 10, "the initial window");
    for (i, o) in out.iter().enumerate() {
        assert_eq!((o.seq, o.payload.len(), o.ms()), (1 + i as u32 * MSS, MSS as usize, 200));
    }
    out
}

fn info(p: &Script, h: SocketHandle) -> TcpInfo {
    p.stack.tcp_info(h).unwrap()
}

/// The start of segment `n` (0-based) in our relative sequence numbers.
fn at(n: u32) -> u32 {
    1 + n * MSS
}

#[test]
fn sack_blocks_drive_recovery_holes_go_out_in_order_and_the_pipe_counts_sacked_lost_and_resent() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 10 * MSS as usize);
    // Segments 0 and 4 are lost. Three segments SACKed above the first hole: before reordering
    // is seen RACK waits no reordering window then (Linux's dupthresh heuristic), so the hole
    // is lost at once and resent, alone (PRR lets one segment out first).
    p.inject_at(300, seg(".", 1001).ack(at(0)).sack(at(1), at(4)).win(60_000));
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len(), rtx.ms()), (at(0), MSS as usize, 300));
    p.expect_none();
    let i = info(&p, h);
    assert_eq!((i.sack_recoveries, i.sacked, i.lost), (1, 3 * MSS, 0));
    assert_eq!(p.stack.tcp_in_flight(h), Ok(7 * MSS), "10 outstanding - 3 SACKed - 1 lost + 1 resent");
    // Segments 5 to 9 arrive: 4, sent before them, is lost too and goes next, in sequence
    // order; nothing else is resent.
    p.inject_at(301, seg(".", 1001).ack(at(0)).sack(at(1), at(4)).sack(at(5), at(10)).win(60_000));
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len()), (at(4), MSS as usize));
    p.expect_none();
    let i = info(&p, h);
    assert_eq!((i.sacked, i.lost, i.fast_retransmits), (8 * MSS, 0, 2));
    assert_eq!(p.stack.tcp_in_flight(h), Ok(2 * MSS), "10 - 8 SACKed - 2 lost + 2 resent");
    // The resent segments fill the holes: recovery ends with the window at ssthresh (RFC 6937,
    // half the flight at its start), not at the little left in flight, which would leave one
    // segment whose loss only the RTO could repair.
    p.inject_at(400, seg(".", 1001).ack(at(4)).sack(at(5), at(10)).win(60_000));
    p.inject_at(401, seg(".", 1001).ack(at(10)).win(60_000));
    let i = info(&p, h);
    assert_eq!((i.unacked, i.sacked, i.timeouts), (0, 0, 0));
    assert_eq!(p.stack.tcp_in_flight(h), Ok(0));
    assert_eq!(i.ssthresh, 5 * MSS);
    assert!((5 * MSS..=6 * MSS).contains(&i.cwnd), "cwnd {} from ssthresh", i.cwnd);
}

#[test]
fn a_dsack_for_a_resent_segment_undoes_the_reduction_and_one_for_a_network_duplicate_does_not() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 10 * MSS as usize);
    let before = info(&p, h);
    // Segment 0 is late, not lost: three SACKed segments make it lost and it is resent.
    p.inject_at(300, seg(".", 1001).ack(at(0)).sack(at(1), at(4)).win(60_000));
    assert_eq!(p.expect().seq, at(0));
    p.inject_at(301, seg(".", 1001).ack(at(10)).win(60_000));
    let reduced = info(&p, h);
    assert_eq!(reduced.ssthresh, 5 * MSS);
    assert!(reduced.cwnd < before.cwnd);
    // The network duplicated segment 5 (sent once): its D-SACK proves nothing.
    p.inject_at(302, seg(".", 1001).ack(at(10)).sack(at(5), at(6)).win(60_000));
    let i = info(&p, h);
    assert_eq!((i.dsacks_received, i.dsack_undos, i.cwnd, i.ssthresh), (1, 0, reduced.cwnd, 5 * MSS));
    // The original of segment 0 arrived after all: the resent copy is reported as a duplicate
    // and every retransmission of the episode proved needless (Linux's tcp_try_undo_dsack).
    p.inject_at(400, seg(".", 1001).ack(at(10)).sack(at(0), at(1)).win(60_000));
    let i = info(&p, h);
    assert_eq!((i.dsacks_received, i.dsack_undos, i.reord_seen), (2, 1, 1));
    assert_eq!((i.cwnd, i.ssthresh), (before.cwnd.max(reduced.cwnd), before.ssthresh));
}

#[test]
fn duplicate_data_is_reported_once_in_a_dsack_block_in_order_or_out_of_order() {
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    p.run_until(200);
    p.inject(seg("P.", 1001).ack(1).len(100));
    p.sent.clear();
    // The same bytes again (below rcv.nxt): acknowledged at once, the duplicate as the first
    // block (RFC 2883 4.1.1).
    p.inject_at(210, seg("P.", 1001).ack(1).len(100));
    let a = p.expect();
    assert_eq!((a.ack, a.options.sack_blocks), (Some(1101), [Some((1001, 1101)), None, None, None]));
    // Out of order, then again: the D-SACK block first, then the SACK block holding it
    // (4.1.2).
    p.inject_at(220, seg("P.", 1201).ack(1).len(100));
    assert_eq!(p.expect().options.sack_blocks, [Some((1201, 1301)), None, None, None]);
    p.inject_at(230, seg("P.", 1201).ack(1).len(100));
    let a = p.expect();
    assert_eq!((a.ack, a.options.sack_blocks), (Some(1101), [Some((1201, 1301)), Some((1201, 1301)), None, None]));
    // Reported once: the next ACK has only the SACK block.
    p.inject_at(240, seg("P.", 1401).ack(1).len(100));
    assert_eq!(p.expect().options.sack_blocks, [Some((1401, 1501)), Some((1201, 1301)), None, None]);
    assert_eq!(info(&p, h).dsacks_sent, 2);
}

#[test]
fn rack_lets_a_reordered_segment_arrive_within_its_window_and_resends_a_lost_one_after_it() {
    // Reordered: segment 1 is SACKed before segment 0 arrives. With one segment SACKed RACK
    // waits a quarter of the minimum RTT (25 ms) past the delivered segment's RTT before it
    // calls 0 lost; 0 arrives 10 ms later and nothing is resent. Reordering is now known.
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 10 * MSS as usize);
    p.inject_at(300, seg(".", 1001).ack(at(0)).sack(at(1), at(2)).win(60_000));
    p.expect_none();
    p.inject_at(310, seg(".", 1001).ack(at(2)).win(60_000));
    p.expect_silence_until(330);
    let i = info(&p, h);
    assert_eq!((i.fast_retransmits, i.sack_recoveries, i.reord_seen), (0, 0, 1));

    // Lost: nothing more arrives, and RACK's timer resends segment 0 once the window passed:
    // sent at 200, 100 ms RTT, 25 ms window, 2 ms of timer slack (TCP_TIMEOUT_MIN).
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 10 * MSS as usize);
    p.inject_at(300, seg(".", 1001).ack(at(0)).sack(at(1), at(2)).win(60_000));
    p.expect_none();
    let rtx = p.expect_by(400);
    assert_eq!((rtx.seq, rtx.ms()), (at(0), 327));
    let i = info(&p, h);
    assert_eq!((i.fast_retransmits, i.sack_recoveries, i.timeouts), (1, 1, 0));
}

#[test]
fn the_tail_loss_probe_sends_new_data_after_two_rtts_or_else_the_last_segment() {
    // New data waits behind the congestion window: nothing is acknowledged, and two smoothed
    // RTTs (+2 ms) after the flight left, one new segment goes out past the window.
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 12 * MSS as usize);
    let probe = p.expect_by(500);
    assert_eq!((probe.seq, probe.payload.len(), probe.ms()), (at(10), MSS as usize, 402));
    p.expect_none();
    // It draws a SACK for itself: the tail is lost, and recovery resends it (no RTO).
    p.inject_at(502, seg(".", 1001).ack(at(0)).sack(at(10), at(11)).win(60_000));
    assert_eq!(p.expect().seq, at(0));
    let i = info(&p, h);
    assert_eq!((i.loss_probes, i.timeouts), (1, 0));

    // No new data: the probe is the last segment again.
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    ten_segments_at_200(&mut p, h, 10 * MSS as usize);
    let before_probe = info(&p, h);
    let probe = p.expect_by(500);
    assert_eq!((probe.seq, probe.payload.len(), probe.ms()), (at(9), MSS as usize, 402));
    // Everything had arrived: the ACK's D-SACK for the probe shows that nothing was lost.
    p.inject_at(410, seg(".", 1001).ack(at(10)).sack(at(9), at(10)).win(60_000));
    let i = info(&p, h);
    assert_eq!((i.loss_probes, i.loss_probe_recoveries, i.timeouts, i.dsack_undos), (1, 0, 0, 0));
    assert!(i.cwnd >= 10 * MSS && i.ssthresh == before_probe.ssthresh, "no reduction: {i:?}");

    // One segment in flight: the probe allows for a delayed ACK (200 ms more), which puts it
    // past the RTO; it goes at the RTO's time instead of the RTO (Linux clamps it there).
    let mut p = with_sack();
    let h = established_with_sack(&mut p, false);
    p.run_until(200);
    p.send(h, &[1u8; 100]).unwrap();
    assert_eq!(p.expect().ms(), 200);
    let probe = p.expect_by(600);
    assert_eq!((probe.seq, probe.payload.len(), probe.ms()), (1, 100, 500));
    let i = info(&p, h);
    assert_eq!((i.loss_probes, i.timeouts, i.cwnd), (1, 0, 10 * MSS));
}
