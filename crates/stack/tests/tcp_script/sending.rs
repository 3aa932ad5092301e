//! Sending: Nagle (with Minshall's rule), sender-side silly-window avoidance, slow start after
//! idle, a full transmit ring, IP options.

use crate::common::*;

#[test]
fn nagle_holds_a_small_segment_while_data_is_unacknowledged_unless_nodelay() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[1u8; 100]).unwrap();
    assert_eq!(p.expect().payload.len(), 100);
    p.send(h, &[2u8; 100]).unwrap();
    p.send(h, &[3u8; 100]).unwrap();
    p.expect_none();
    p.inject_at(150, seg(".", 1001).ack(101));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (101, 200), "held bytes go together once acked");

    let mut q = Script::new();
    let h = q.established_with(|o| o.nodelay = true);
    q.send(h, &[1u8; 100]).unwrap();
    q.send(h, &[2u8; 100]).unwrap();
    assert_eq!(q.expect().payload.len(), 100);
    assert_eq!(q.expect().payload.len(), 100, "TCP_NODELAY sends at once");
}

#[test]
fn slow_start_restarts_after_idle() {
    let mut p = Script::new();
    let h = p.established();
    // Grow the window past the initial 10 segments.
    p.send(h, &vec![1u8; 10 * 1460]).unwrap();
    std::iter::from_fn(|| p.sent.pop_front()).count();
    p.inject_at(200, seg(".", 1001).ack(1 + 10 * 1460));
    assert!(p.stack.tcp_info(h).unwrap().cwnd > 10 * 1460);
    p.run_until(5_000);
    p.send(h, &vec![1u8; 30 * 1460]).unwrap();
    let burst = std::iter::from_fn(|| p.sent.pop_front()).count();
    assert_eq!(burst, 10, "after an idle RTO the window is back to the initial window");
}

#[test]
fn sender_avoids_silly_windows_until_the_persist_timer_overrides() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[1u8; 1000]).unwrap();
    assert_eq!(p.expect().payload.len(), 1000);
    // The peer takes the data but offers only 100 bytes more: far below half its largest window.
    p.inject_at(200, seg(".", 1001).ack(1001).win(100));
    p.send(h, &[2u8; 1000]).unwrap();
    p.expect_none();
    let d = p.expect_by(10_000);
    // RTT 100 ms twice: RTO 100 + max(4 * 37.5, 200) = 300 ms.
    assert_eq!((d.seq, d.payload.len(), d.ms()), (1001, 100, 500), "sent when the persist timer fires");
    // A window of at least half the largest one goes at once.
    p.inject_at(550, seg(".", 1001).ack(1101).win(40_000));
    assert_eq!(p.expect().payload.len(), 900);
}

/// Must-fix 5: a datapath with no free slot must not cost a segment. Data, pure ACKs and RSTs
/// (the connection's and the stack's own) go out at the next transmit that finds room.
#[test]
fn a_full_transmit_ring_loses_no_segment() {
    let mut p = Script::new();
    let h = p.established();
    // A pure ACK owed for data.
    p.tx_room = Some(0);
    p.inject(seg("P.", 1001).ack(1).data(b"hello"));
    p.expect_none();
    assert!(p.tx_refused > 0, "the datapath refused the ACK");
    assert!(p.stack.tcp_transmit_pending(), "the connection stays listed");
    p.tx_room = None;
    p.flush();
    let a = p.expect();
    assert_eq!((a.flags.as_str(), a.seq, a.ack), (".", 1, Some(1006)), "the ACK goes out once there is room");
    // Data: one slot for two full segments.
    p.tx_room = Some(1);
    p.send(h, &[7u8; 2 * 1460]).unwrap();
    assert_eq!(p.expect().seq, 1);
    p.expect_none();
    p.tx_room = None;
    p.flush();
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len(), d.ms()), (1461, 1460, p.now.as_nanos() / 1_000_000), "not left to the RTO");
    p.inject(seg(".", 1006).ack(1 + 2 * 1460));
    // A segment for no socket, then the connection's own RST.
    p.tx_room = Some(0);
    p.inject(seg(".", 9000).ack(5).dst_port(9));
    p.stack.tcp_abort(h).unwrap();
    p.flush();
    p.expect_none();
    p.tx_room = None;
    p.flush();
    let mut flags: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.flags).collect();
    flags.sort();
    assert_eq!(flags, vec!["R", "R."], "both RSTs went out");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.timeouts, info.timeout_retransmits), (0, 0));
}

#[test]
fn ttl_and_tos_options_apply_to_tcp_frames() {
    let mut p = Script::new();
    let h = p.connect_with(|o| {
        o.ttl = 7;
        o.tos = 0x10;
    });
    let syn = p.expect();
    assert_eq!((syn.ttl, syn.tos), (7, 0x10));
    assert!(syn.df);
    assert_eq!(p.stack.tcp_options(h).unwrap().tos, 0x10);
}

#[test]
fn slow_start_after_idle_counts_from_the_last_data_sent_not_the_last_ack() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &vec![1u8; 10 * 1460]).unwrap();
    std::iter::from_fn(|| p.sent.pop_front()).count();
    p.inject_at(200, seg(".", 1001).ack(1 + 10 * 1460));
    assert!(p.stack.tcp_info(h).unwrap().cwnd > 10 * 1460);
    // We only receive (and acknowledge) for five seconds.
    let mut seq = 1001;
    for t in (300..5_000).step_by(100) {
        p.inject_at(t, seg("P.", seq).ack(1 + 10 * 1460).len(100));
        seq += 100;
    }
    p.recv(h, 1 << 20).unwrap();
    p.run_until(5_000);
    std::iter::from_fn(|| p.sent.pop_front()).count();
    p.send(h, &vec![1u8; 30 * 1460]).unwrap();
    let burst = std::iter::from_fn(|| p.sent.pop_front()).filter(|o| !o.payload.is_empty()).count();
    assert_eq!(burst, 10, "no data sent for an RTO: back to the initial window");
}

#[test]
fn nagle_per_minshall_sends_the_tail_of_a_message_at_once() {
    let mut p = Script::new();
    let h = p.established();
    // A 1.5-MSS message: the full segment and its small tail both go now. RFC 896 alone would
    // hold the tail until the full segment is acknowledged, which a delayed ACK puts off 40 ms.
    p.send(h, &[1u8; 2000]).unwrap();
    let full = p.expect();
    let tail = p.expect();
    assert_eq!((full.seq, full.payload.len()), (1, 1460));
    assert_eq!((tail.seq, tail.payload.len(), tail.ms()), (1461, 540, 100), "the tail at once");
    // Nagle still holds a small segment while an earlier small one is unacknowledged...
    p.send(h, &[2u8; 100]).unwrap();
    p.expect_none();
    // ...also when everything before that small one is acknowledged...
    p.inject_at(140, seg(".", 1001).ack(1461));
    p.expect_none();
    // ...and lets it go once the small one is.
    p.inject_at(150, seg(".", 1001).ack(2001));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len(), d.ms()), (2001, 100, 150));
    // Full segments are never held: a 2-MSS message goes whole although 100 bytes are in flight.
    p.send(h, &[3u8; 2 * 1460]).unwrap();
    let sizes: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.payload.len()).collect();
    assert_eq!(sizes, vec![1460, 1460]);
}
