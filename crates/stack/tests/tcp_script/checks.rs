//! Segment acceptance: RFC 5961's RST, SYN and ACK checks with challenge ACKs, out-of-window
//! segments and their rate limit, segments for no socket, bad checksums.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};

#[test]
fn exact_rst_resets_in_window_rst_gets_a_challenge_ack_outside_is_ignored() {
    let mut p = Script::new();
    let h = p.established();
    p.inject_at(200, seg("R", 1001 + 100_000_000));
    p.expect_none();
    p.inject(seg("R", 1005));
    let ch = p.expect();
    assert_eq!((ch.flags.as_str(), ch.seq, ch.ack), (".", 1, Some(1001)), "challenge ACK");
    assert_eq!(p.state(h), State::Established);
    p.inject(seg("R", 1001));
    assert_eq!(p.state(h), State::Closed);
    assert_eq!(p.recv(h, 10), Err(TcpError::ConnectionReset));
    assert_eq!(p.send(h, b"x"), Err(TcpError::BrokenPipe));
    assert_eq!(TcpError::ConnectionReset.errno(), 104);
}

#[test]
fn syn_on_an_established_connection_gets_a_challenge_ack_and_acks_are_rate_limited() {
    let mut p = Script::with(TcpConfig { challenge_ack_limit: 2, ..TcpConfig::default() });
    let h = p.established();
    for _ in 0..3 {
        p.inject(seg("S", 1))
    }
    assert_eq!(p.expect().ack, Some(1001));
    assert_eq!(p.expect().ack, Some(1001));
    p.expect_none();
    assert_eq!(p.state(h), State::Established);
    assert_eq!(p.stack.tcp_info(h).unwrap().challenge_acks, 2);
    // A new second brings a new allowance.
    p.inject_at(1_200, seg("S", 1));
    assert_eq!(p.expect().flags, ".");
}

#[test]
fn segments_for_no_socket_get_rst_unless_configured_off() {
    let mut p = Script::new();
    p.inject(seg("S", 100).dst_port(9));
    let rst = p.expect();
    assert_eq!((rst.flags.as_str(), rst.ack), ("R.", Some(101)));
    p.inject(seg(".", 100).ack(777).dst_port(9));
    let rst = p.expect();
    assert_eq!((rst.flags.as_str(), rst.seq), ("R", 777));
    p.inject(seg("R", 100).dst_port(9));
    p.expect_none();
    let mut q = Script::with(TcpConfig { rst_unknown: false, ..TcpConfig::default() });
    q.inject(seg("S", 100).dst_port(9));
    q.expect_none();
    assert_eq!(q.stack.stats().tcp_no_socket, 1);
}

#[test]
fn segments_outside_the_window_are_acked_and_dropped() {
    let mut p = Script::new();
    let h = p.established();
    let wnd = p.stack.tcp_info(h).unwrap().rcv_wnd;
    p.inject(seg(".", 1001 + wnd + 10).ack(1).len(100));
    assert_eq!(p.expect().ack, Some(1001));
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 0);
    assert_eq!(p.stack.tcp_info(h).unwrap().rcv_dropped, 1);
}

#[test]
fn bad_checksums_are_counted_and_dropped() {
    let mut p = Script::new();
    let h = p.established();
    let mut frame = p.frame(&seg("P.", 1001).ack(1).data(b"corrupt"));
    let last = frame.len() - 1;
    frame[last] ^= 0xff;
    p.stack.receive(p.now, &frame, stack::RxChecksum::Unverified);
    p.flush();
    p.expect_none();
    assert_eq!(p.stack.stats().tcp_bad_checksum, 1);
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 0);
}

#[test]
fn acks_to_out_of_window_pure_acks_are_rate_limited() {
    let mut p = Script::new();
    let h = p.established();
    let far = 1001 + 10_000_000;
    // Linux's tcp_oow_rate_limited: one answer per 500 ms to segments without data, so two
    // confused endpoints cannot ACK each other in a loop.
    for _ in 0..3 {
        p.inject(seg(".", far).ack(1));
    }
    assert_eq!(std::iter::from_fn(|| p.sent.pop_front()).count(), 1);
    p.inject_at(p.now.as_nanos() / 1_000_000 + 500, seg(".", far).ack(1));
    assert_eq!(p.expect().ack, Some(1001), "answered again after 500 ms");
    // Data outside the window is always answered.
    p.inject(seg(".", far).ack(1).len(10));
    assert_eq!(p.expect().ack, Some(1001));
    assert_eq!(p.state(h), State::Established);
}

#[test]
fn acks_above_snd_max_or_far_below_snd_una_are_answered_and_ignored() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[1u8; 100]).unwrap();
    p.expect();
    // Acknowledges data never sent: an ACK back, nothing taken (RFC 9293 3.10.7.4).
    p.inject_at(150, seg(".", 1001).ack(5_000));
    let a = p.expect();
    assert_eq!((a.seq, a.ack), (101, Some(1001)));
    assert_eq!(p.stack.tcp_info(h).unwrap().unacked, 100);
    // Far below snd_una (more than the largest window back): a challenge ACK (RFC 5961 5.2).
    p.inject(seg(".", 1001).ack(1u32.wrapping_sub(1_000_000)));
    assert_eq!(p.expect().ack, Some(1001));
    assert_eq!(p.stack.tcp_info(h).unwrap().challenge_acks, 1);
    p.inject(seg(".", 1001).ack(101));
    assert_eq!(p.stack.tcp_info(h).unwrap().unacked, 0);
    assert_eq!(p.state(h), State::Established);
}

/// The challenge-ACK limit (tcp_challenge_ack_limit) is counted per connection: a host-wide
/// count is the side channel of CVE-2016-5696 (an off-path attacker learns from the count left
/// whether its guess hit another connection; Linux 6.0 dropped it). A storm of in-window RSTs
/// on one connection uses up its own budget only.
#[test]
fn the_challenge_ack_limit_is_per_connection() {
    let mut p = Script::new();
    let l = p.listen(8);
    let (a, b) = (PEER_PORT, PEER_PORT + 1);
    for port in [a, b] {
        p.inject(seg("S", 5000).src_port(port).mss(1460));
        assert_eq!(p.expect().flags, "S.");
        p.inject(seg(".", 5001).src_port(port).ack(1));
    }
    let (ca, _) = p.stack.tcp_accept(l).unwrap();
    let (cb, _) = p.stack.tcp_accept(l).unwrap();
    p.expect_none();
    // 1,200 in-window RSTs on one connection within a second: 1,000 challenge ACKs.
    p.run_until(10);
    for _ in 0..1_200 {
        p.inject(seg("R", 5001 + 100).src_port(a));
    }
    let to_a = std::iter::from_fn(|| p.sent.pop_front()).filter(|o| o.dst.port() == a).count();
    assert_eq!(to_a, 1_000, "tcp_challenge_ack_limit for that connection");
    // The other connection's budget is whole: its RST is challenged.
    p.inject(seg("R", 5001 + 100).src_port(b));
    let c = p.expect();
    assert_eq!((c.flags.as_str(), c.dst.port(), c.ack), (".", b, Some(5001)));
    // A second later the first one's budget is back.
    p.run_until(1_011);
    p.inject(seg("R", 5001 + 100).src_port(a));
    assert_eq!(p.expect().dst.port(), a);
    assert_eq!(p.state(ca), stack::tcp::State::Established);
    assert_eq!(p.state(cb), stack::tcp::State::Established);
}
