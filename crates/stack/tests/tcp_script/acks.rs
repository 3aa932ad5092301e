//! Acknowledgments: delayed and quick ACKs, out-of-order data and its duplicate ACKs.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use stack::{Instant, RxChecksum};

#[test]
fn delayed_ack_waits_40_ms_for_one_segment_and_acks_every_second_full_segment() {
    let mut p = Script::with(TcpConfig { quickacks: 0, ..TcpConfig::default() });
    let h = p.established();
    p.inject_at(1_000, seg("P.", 1001).ack(1).len(100));
    p.expect_silence_until(1_039);
    let ack = p.expect_by(1_040);
    assert_eq!((ack.ack, ack.ms()), (Some(1101), 1_040));
    p.inject_at(2_000, seg(".", 1101).ack(1).len(1460));
    p.expect_none();
    p.inject(seg(".", 2561).ack(1).len(1460));
    let ack = p.expect();
    assert_eq!((ack.ack, ack.ms()), (Some(4021), 2_000), "the second full segment is acked at once");
    // Data of ours in the meantime carries the ACK (no separate one).
    p.inject_at(3_000, seg("P.", 4021).ack(1).len(10));
    p.run_until(3_010);
    p.send(h, b"reply").unwrap();
    let d = p.expect();
    assert_eq!((d.ack, d.payload.len()), (Some(4031), 5));
    p.expect_silence_until(3_100);
}

#[test]
fn quick_acks_at_the_start_and_on_tcp_quickack() {
    let mut p = Script::new();
    let h = p.established();
    for i in 0..16u32 {
        p.inject(seg("P.", 1001 + i * 10).ack(1).len(10));
        assert_eq!(p.expect().ack, Some(1011 + i * 10), "quick ACK {i}");
    }
    p.inject(seg("P.", 1161).ack(1).len(10));
    p.expect_none();
    p.stack.tcp_quickack(h).unwrap();
    p.flush();
    assert_eq!(p.expect().ack, Some(1171), "TCP_QUICKACK sends the delayed ACK");
    p.inject(seg("P.", 1171).ack(1).len(10));
    assert_eq!(p.expect().ack, Some(1181));
}

#[test]
fn out_of_order_data_is_acked_at_once_and_delivered_when_the_hole_fills() {
    let mut p = Script::with(TcpConfig { quickacks: 0, ..TcpConfig::default() });
    let h = p.established();
    p.inject_at(500, seg(".", 2001).ack(1).len(1000));
    assert_eq!(p.expect().ack, Some(1001), "duplicate ACK for the hole");
    assert_eq!(p.recv(h, 10), Err(TcpError::WouldBlock));
    p.inject(seg(".", 1001).ack(1).data(&[9u8; 1000]));
    assert_eq!(p.expect().ack, Some(3001), "the hole filled: ACK at once");
    let got = p.recv(h, 5000).unwrap();
    assert_eq!(got.len(), 2000);
    assert_eq!(&got[..1000], &[9u8; 1000][..]);
    assert_eq!(got[1000..], (0..1000).map(|i| (i % 251) as u8).collect::<Vec<_>>()[..]);
}

#[test]
fn each_out_of_order_segment_of_a_batch_gets_its_own_duplicate_ack() {
    // A driver hands the stack a burst of frames before it transmits: a peer without SACK
    // still needs one duplicate ACK per out-of-order segment (three start fast retransmit).
    let mut p = Script::with(TcpConfig { quickacks: 0, ..TcpConfig::default() });
    p.established();
    p.run_until(500);
    for k in 1..=4u32 {
        let frame = p.frame(&seg(".", 1001 + k * 1000).ack(1).len(1000));
        p.stack.receive(p.now, &frame, RxChecksum::Unverified);
    }
    p.flush();
    let acks: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).collect();
    assert_eq!(acks.len(), 4, "{acks:?}");
    assert!(acks.iter().all(|a| a.ack == Some(1001) && a.payload.is_empty()), "{acks:?}");
    // The hole fills in the next batch, with one more out-of-order segment behind it: one
    // ACK for the new point, no stale duplicates.
    for s in [seg(".", 1001).ack(1).len(1000), seg(".", 6001).ack(1).len(1000)] {
        let frame = p.frame(&s);
        p.stack.receive(p.now, &frame, RxChecksum::Unverified);
    }
    p.flush();
    let acks: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).map(|a| a.ack).collect();
    assert_eq!(acks, vec![Some(7001)]);
}

#[test]
fn a_timer_is_not_late_when_the_driver_looks_early_within_its_millisecond() {
    // The delayed ACK falls due at 1_040.6 ms; a driver that wakes at 1_040.2 ms (too early)
    // and again at 1_040.7 ms must send it then, not a wheel revolution later.
    let mut p = Script::with(TcpConfig { quickacks: 0, ..TcpConfig::default() });
    p.established();
    p.run_until(1_000);
    p.now = Instant::from_nanos(1_000_600_000);
    p.inject(seg("P.", 1001).ack(1).len(100));
    p.expect_none();
    for at in [1_040_200_000, 1_040_700_000] {
        p.now = Instant::from_nanos(at);
        p.stack.handle_timeout(p.now);
        p.flush();
    }
    let ack = p.expect();
    assert_eq!((ack.ack, ack.at), (Some(1101), Instant::from_nanos(1_040_700_000)));
}

#[test]
fn out_of_order_ranges_beyond_the_bound_are_dropped_not_stored() {
    let mut p = Script::with(TcpConfig { max_ooo_ranges: 2, quickacks: 0, ..TcpConfig::default() });
    let h = p.established();
    for k in 1..=3u32 {
        p.inject(seg(".", 1001 + k * 200).ack(1).len(100));
        assert_eq!(p.expect().ack, Some(1001));
    }
    assert_eq!(p.stack.tcp_info(h).unwrap().rcv_dropped, 1, "the third range did not fit");
    p.inject(seg(".", 1001).ack(1).len(200));
    assert_eq!(p.expect().ack, Some(1301), "in order up to the first range");
    p.inject(seg(".", 1301).ack(1).len(100));
    assert_eq!(p.expect().ack, Some(1501), "the second range joined");
}

#[test]
fn quick_acks_return_after_an_idle_period() {
    let mut p = Script::with(TcpConfig { quickacks: 2, ..TcpConfig::default() });
    let h = p.established();
    for i in 0..3u32 {
        p.inject(seg("P.", 1001 + i * 10).ack(1).len(10));
    }
    assert_eq!(p.sent.len(), 2, "two quick ACKs, then delayed");
    p.sent.clear();
    p.run_until(5_000);
    p.sent.clear();
    p.inject(seg("P.", 1031).ack(1).len(10));
    assert_eq!(p.expect().ack, Some(1041), "idle longer than the RTO: quick ACK again");
    assert_eq!(p.state(h), State::Established);
}
