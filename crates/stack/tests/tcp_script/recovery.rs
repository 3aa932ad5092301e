//! Loss recovery: fast retransmit and NewReno recovery, limited transmit, the retransmission
//! timeout and its bounds, RTT sampling.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use std::time::Duration;

/// NewReno (the recovery these scripts check; CUBIC is the default).
fn newreno() -> TcpConfig {
    TcpConfig { congestion: stack::tcp::congestion::Algorithm::NewReno, ..TcpConfig::default() }
}

#[test]
fn fast_retransmit_on_three_duplicate_acks_then_recovery() {
    let mut p = Script::with(newreno());
    let h = p.established();
    p.send(h, &vec![5u8; 20 * 1460]).unwrap();
    let first: Vec<_> = (0..10).map(|_| p.expect()).collect();
    assert_eq!(first[9].seq, 1 + 9 * 1460);
    p.inject_at(200, seg(".", 1001).ack(1 + 1460));
    let after_ack: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).collect();
    assert_eq!(after_ack.len(), 2, "slow start: two new segments per acked segment");
    for i in 0..2 {
        p.inject(seg(".", 1001).ack(1 + 1460));
        let lt = p.expect();
        assert_eq!(lt.seq, 1 + (12 + i) * 1460, "limited transmit: one new segment per duplicate ACK");
        p.expect_none();
    }
    p.inject(seg(".", 1001).ack(1 + 1460));
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len(), rtx.ms()), (1 + 1460, 1460, 200), "retransmitted at once");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.fast_retransmits, 1);
    assert_eq!(info.ssthresh, 11 * 1460 / 2, "half the flight");
    // A partial ACK retransmits the next hole (RFC 6582).
    p.inject(seg(".", 1001).ack(1 + 2 * 1460));
    let next = std::iter::from_fn(|| p.sent.pop_front()).find(|o| o.seq == 1 + 2 * 1460);
    assert!(next.is_some(), "partial ACK: the next segment is retransmitted");
    assert_eq!(p.stack.tcp_info(h).unwrap().fast_retransmits, 2);
}

#[test]
fn rto_doubles_and_tcp_retries2_ends_in_etimedout() {
    let mut p = Script::with(TcpConfig { retries2: 4, ..TcpConfig::default() });
    let h = p.established();
    // The SYN-ACK came after 100 ms: RTO = 100 + 4 * 50 = 300 ms.
    p.send(h, b"lost").unwrap();
    let t0 = p.expect().ms();
    let mut gaps = Vec::new();
    let mut last = t0;
    for _ in 0..4 {
        let r = p.expect_by(100_000);
        assert_eq!((r.seq, r.payload.as_slice()), (1, &b"lost"[..]));
        gaps.push(r.ms() - last);
        last = r.ms();
    }
    assert_eq!(gaps, vec![300, 600, 1_200, 2_400], "exponential backoff");
    p.run_until(last + 4_799);
    assert_eq!(p.state(h), State::Established);
    p.run_until(last + 4_800);
    assert_eq!(p.state(h), State::Closed);
    assert_eq!(p.send(h, b"x"), Err(TcpError::TimedOut));
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.timeout_retransmits, info.timeouts), (4, 4));
}

/// Must-fix 3: Linux's RTO is srtt + max(4 rttvar, rto_min), not max(srtt + 4 rttvar, rto_min):
/// with a steady long RTT the variance vanishes and the old form fired before a delayed ACK.
#[test]
fn rto_is_srtt_plus_the_larger_of_4_rttvar_and_rto_min() {
    let mut p = Script::new();
    let h = p.established();
    // A steady 250 ms RTT.
    for i in 0..30u32 {
        p.send(h, b"x").unwrap();
        let d = p.expect();
        assert_eq!(d.seq, 1 + i);
        p.inject_at(d.ms() + 250, seg(".", 1001).ack(2 + i));
    }
    let info = p.stack.tcp_info(h).unwrap();
    assert!(info.rttvar * 4 < dms(200), "the variance faded: {:?}", info.rttvar);
    assert_eq!(info.rto, info.srtt + dms(200), "srtt {:?} rttvar {:?}", info.srtt, info.rttvar);
    // An ACK 150 ms later than usual (a delayed ACK, a queue) is no timeout.
    p.send(h, b"y").unwrap();
    let d = p.expect();
    p.run_until(d.ms() + 399);
    p.expect_none();
    p.inject_at(d.ms() + 400, seg(".", 1001).ack(32));
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.timeouts, info.timeout_retransmits), (0, 0));
}

#[test]
fn rtt_samples_skip_retransmitted_segments() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, b"a").unwrap();
    p.expect();
    let rtx = p.expect_by(1_000);
    assert_eq!(rtx.seq, 1);
    // The ACK comes long after: Karn's rule takes no sample from it.
    p.inject_at(rtx.ms() + 5, seg(".", 1001).ack(2));
    assert_eq!(p.stack.tcp_info(h).unwrap().srtt, dms(100), "still the handshake's sample");
}

#[test]
fn tcp_retries2_is_a_time_bound_so_long_rtts_give_up_after_fewer_retries() {
    let mut p = Script::with(TcpConfig { rto_initial: Duration::from_secs(3), ..TcpConfig::default() });
    let h = p.connect();
    p.expect();
    // A 2 s handshake RTT: RTO = 2 + 4 * 1 = 6 s.
    p.inject_at(2_000, seg("S.", 1000).ack(1));
    p.expect();
    p.send(h, b"lost").unwrap();
    p.expect();
    let mut n = 0;
    while p.state(h) == State::Established {
        let next = p.stack.poll_timeout().unwrap();
        p.run_until(next.as_nanos() / 1_000_000);
        n += p.sent.drain(..).count();
    }
    assert_eq!(p.recv(h, 1), Err(TcpError::TimedOut));
    // Retransmissions 6, 18, 42, 90, 186, 306, ... 906 s after the send: 11 of them, then
    // ETIMEDOUT at 1026 s, the first expiry past 924.6 s (15 retries at a 200 ms RTO).
    assert_eq!(n, 11);
    assert_eq!(p.now, ms(2_000 + 1_026_000));
}

#[test]
fn limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() {
    // A window of three segments: a loss leaves two duplicate ACKs at most, never the three
    // fast retransmit waits for, unless each of them lets a new segment out (RFC 3042).
    let mut p = Script::with(TcpConfig { initial_window: 3, ..newreno() });
    let h = p.established();
    p.send(h, &vec![7u8; 8 * 1460]).unwrap();
    let first: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.seq).collect();
    assert_eq!(first, vec![1, 1 + 1460, 1 + 2 * 1460], "the initial window");
    // The first segment is lost; the second and third each draw a duplicate ACK.
    p.inject_at(150, seg(".", 1001).ack(1));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (1 + 3 * 1460, 1460), "first duplicate ACK: one new segment");
    p.expect_none();
    p.inject(seg(".", 1001).ack(1));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (1 + 4 * 1460, 1460), "second duplicate ACK: one more");
    p.expect_none();
    assert_eq!(p.stack.tcp_info(h).unwrap().cwnd, 3 * 1460, "the congestion window is unchanged");
    // Those two draw the third and fourth: fast retransmit repairs the loss, no timeout.
    p.inject(seg(".", 1001).ack(1));
    let rtx = p.expect();
    assert_eq!((rtx.seq, rtx.payload.len(), rtx.ms()), (1, 1460, 150));
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.fast_retransmits, info.timeouts), (1, 0));
    assert_eq!(info.ssthresh, 2 * 1460, "half the flight before limited transmit, at least two segments");
}
