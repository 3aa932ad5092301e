//! Closing: FIN exchanges from each side and both, TIME_WAIT, orphans, resets on close.

use crate::common::*;
use stack::tcp::{State, TcpError};
use std::time::Duration;

#[test]
fn active_close_walks_fin_wait_and_time_wait_for_two_msl() {
    let mut p = Script::new();
    let h = p.established();
    p.shutdown_write(h);
    assert_eq!(p.state(h), State::FinWait1);
    let fin = p.expect();
    assert_eq!((fin.flags.as_str(), fin.seq), ("F.", 1));
    assert_eq!(p.send(h, b"x"), Err(TcpError::BrokenPipe), "EPIPE after SHUT_WR");
    p.inject_at(200, seg(".", 1001).ack(2));
    assert_eq!(p.state(h), State::FinWait2);
    p.inject_at(300, seg("F.", 1001).ack(2));
    let ack = p.expect();
    assert_eq!((ack.flags.as_str(), ack.ack), (".", Some(1002)));
    assert_eq!(p.state(h), State::TimeWait);
    // A retransmitted FIN is acknowledged again.
    p.inject_at(1_000, seg("F.", 1001).ack(2));
    assert_eq!(p.expect().ack, Some(1002));
    p.run_until(60_999);
    assert_eq!(p.state(h), State::TimeWait, "2 MSL from the last FIN");
    p.run_until(61_000);
    assert_eq!(p.state(h), State::Closed);
    p.expect_none();
}

#[test]
fn passive_close_goes_through_close_wait_and_last_ack() {
    let mut p = Script::new();
    let h = p.established();
    p.inject_at(200, seg("F.", 1001).ack(1));
    assert_eq!(p.expect().ack, Some(1002));
    assert_eq!(p.state(h), State::CloseWait);
    assert!(p.stack.tcp_readiness(h).unwrap().read_hangup);
    p.send(h, b"bye").unwrap();
    assert_eq!(p.expect().payload, b"bye");
    p.shutdown_write(h);
    assert_eq!(p.state(h), State::LastAck);
    let fin = p.expect();
    assert_eq!((fin.flags.as_str(), fin.seq), ("F.", 4));
    p.inject(seg(".", 1002).ack(5));
    assert_eq!(p.state(h), State::Closed);
}

#[test]
fn simultaneous_close_goes_through_closing() {
    let mut p = Script::new();
    let h = p.established();
    p.shutdown_write(h);
    assert_eq!(p.expect().flags, "F.");
    p.inject_at(200, seg("F.", 1001).ack(1));
    assert_eq!(p.state(h), State::Closing);
    assert_eq!(p.expect().ack, Some(1002));
    p.inject(seg(".", 1002).ack(2));
    assert_eq!(p.state(h), State::TimeWait);
}

#[test]
fn fin_is_sent_only_after_the_send_buffer_drains() {
    let mut p = Script::new();
    let h = p.established();
    let data = vec![7u8; 20 * 1460];
    assert_eq!(p.send(h, &data).unwrap(), data.len());
    p.shutdown_write(h);
    let mut sent = 0;
    while let Some(o) = p.sent.pop_front() {
        assert!(!o.flags.contains('F'), "no FIN while data is unsent");
        sent += o.payload.len();
    }
    assert_eq!(sent, 10 * 1460, "initial window of 10 segments");
    p.inject_at(200, seg(".", 1001).ack(1 + sent as u32));
    let mut last = None;
    while let Some(o) = p.sent.pop_front() {
        last = Some(o);
    }
    let last = last.unwrap();
    assert!(last.flags.contains('F'), "the FIN rides on the last segment");
    assert_eq!(last.seq as usize + last.payload.len(), 1 + data.len());
}

#[test]
fn close_with_unread_data_sends_rst() {
    let mut p = Script::new();
    let h = p.established();
    p.inject_at(200, seg("P.", 1001).ack(1).data(b"unread"));
    while p.sent.pop_front().is_some() {}
    p.close(h);
    let rst = p.expect();
    assert_eq!((rst.flags.as_str(), rst.seq), ("R.", 1));
    assert_eq!(p.stack.tcp_state(h), Err(TcpError::BadHandle), "the handle is gone after close");
}

#[test]
fn close_with_linger_zero_sends_rst() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.linger = Some(Duration::ZERO));
    p.close(h);
    assert_eq!(p.expect().flags, "R.");
    p.expect_none();
}

#[test]
fn orphaned_fin_wait_2_times_out_after_tcp_fin_timeout() {
    let mut p = Script::new();
    let h = p.established();
    p.close(h);
    assert_eq!(p.expect().flags, "F.");
    p.inject_at(100, seg(".", 1001).ack(2));
    p.expect_silence_until(60_099);
    let rst = p.expect_by(60_100);
    assert_eq!((rst.flags.as_str(), rst.ms()), ("R.", 60_100));
}

#[test]
fn a_new_syn_beyond_time_wait_starts_a_new_connection() {
    let mut p = Script::new();
    let l = p.listen(4);
    p.inject(seg("S", 100).mss(1460));
    p.expect();
    p.inject(seg(".", 101).ack(1));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    p.shutdown_write(c);
    assert_eq!(p.expect().flags, "F.");
    p.inject(seg("F.", 101).ack(2));
    assert_eq!(p.expect().flags, ".");
    assert_eq!(p.state(c), State::TimeWait);
    // An old SYN gets a challenge ACK; a SYN past the old sequence space is a new connection.
    p.inject(seg("S", 50));
    assert_eq!(p.expect().flags, ".");
    p.inject(seg("S", 100_000).mss(1460));
    let synack = p.expect();
    assert_eq!((synack.flags.as_str(), synack.ack), ("S.", Some(100_001)));
    assert_eq!(p.state(c), State::Closed);
}

#[test]
fn fin_wait_1_goes_straight_to_time_wait_when_the_fin_acks_ours() {
    let mut p = Script::new();
    let h = p.established();
    p.shutdown_write(h);
    assert_eq!(p.expect().flags, "F.");
    p.inject_at(150, seg("F.", 1001).ack(2));
    assert_eq!(p.state(h), State::TimeWait);
    assert_eq!(p.expect().ack, Some(1002));
}

#[test]
fn data_arriving_after_close_is_answered_with_rst() {
    let mut p = Script::new();
    let h = p.established();
    p.close(h);
    assert_eq!(p.expect().flags, "F.");
    p.inject_at(100, seg(".", 1001).ack(2));
    p.inject(seg("P.", 1001).ack(2).data(b"late"));
    let rst = p.expect();
    assert_eq!((rst.flags.as_str(), rst.seq), ("R.", 2));
}

#[test]
fn an_unacceptable_fin_does_not_restart_time_wait() {
    let mut p = Script::new();
    let h = p.established();
    p.shutdown_write(h);
    p.expect();
    p.inject_at(200, seg(".", 1001).ack(2));
    p.inject_at(300, seg("F.", 1001).ack(2));
    p.expect();
    assert_eq!(p.state(h), State::TimeWait);
    // A FIN far outside the window: answered, but TIME_WAIT keeps its end.
    p.inject_at(1_000, seg("F.", 1001 + 10_000_000).ack(2));
    p.run_until(60_300);
    assert_eq!(p.state(h), State::Closed, "2 MSL from the acceptable FIN");
}

/// Accepts a connection from the peer's `port` on listener `l` (the handshake consumed).
fn accepted_from(p: &mut Script, l: stack::SocketHandle, port: u16) -> stack::SocketHandle {
    p.inject(seg("S", 100).src_port(port).mss(1460));
    p.inject(seg(".", 101).src_port(port).ack(1));
    let h = p.stack.tcp_accept(l).unwrap().0;
    p.sent.clear();
    h
}

/// We close first, the peer's FIN follows: the connection's way into TIME_WAIT.
fn close_into_time_wait(p: &mut Script, h: stack::SocketHandle, port: u16) {
    p.close(h);
    assert_eq!(p.expect().flags, "F.");
    p.inject(seg("F.", 101).src_port(port).ack(2));
    assert_eq!((p.expect().flags.as_str(), p.sent.len()), (".", 0), "the last ACK");
}

/// The peer ports of the connections that left the stack since the last call.
fn closed_ports(p: &mut Script) -> Vec<u16> {
    std::iter::from_fn(|| p.stack.poll_event())
        .filter_map(|e| match e {
            stack::Event::TcpClosed { remote, .. } => Some(remote.port()),
            _ => None,
        })
        .collect()
}

#[test]
fn time_wait_beyond_its_bound_is_skipped_as_linux_does() {
    let mut p = Script::with(stack::tcp::TcpConfig { max_time_wait: 2, ..Default::default() });
    let l = p.listen(16);
    let conns: Vec<_> = (0..3).map(|i| accepted_from(&mut p, l, 20_000 + i)).collect();
    closed_ports(&mut p);
    for (i, &h) in conns.iter().enumerate() {
        close_into_time_wait(&mut p, h, 20_000 + i as u16);
    }
    assert_eq!(p.stack.stats().tcp_time_wait_overflow, 1);
    // The third, past the bound, sent its last ACK and ends at the next tick (its 4-tuple
    // and steering entry given back); the first two wait out 2 MSL.
    p.run_until(p.now.as_nanos() / 1_000_000 + 2);
    assert_eq!(closed_ports(&mut p), vec![20_002]);
    for port in [20_000, 20_001] {
        p.inject(seg("F.", 101).src_port(port).ack(2));
        assert_eq!(p.expect().ack, Some(102), "TIME_WAIT acknowledges a retransmitted FIN");
    }
    p.run_until(p.now.as_nanos() / 1_000_000 + 61_000);
    assert_eq!(closed_ports(&mut p), vec![20_000, 20_001]);
    // Room again: the next one waits out 2 MSL.
    let h = accepted_from(&mut p, l, 20_003);
    close_into_time_wait(&mut p, h, 20_003);
    p.run_until(p.now.as_nanos() / 1_000_000 + 2);
    assert_eq!(closed_ports(&mut p), Vec::<u16>::new());
    assert_eq!(p.stack.stats().tcp_time_wait_overflow, 1);
}
