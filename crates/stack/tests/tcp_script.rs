//! Packet scripts for TCP: segments from a simulated peer at simulated times, what the
//! application sees, and the segments the stack sends, with their times.

mod common;

use common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use std::time::Duration;

// ---- opening ------------------------------------------------------------------------------

#[test]
fn active_open_sends_syn_with_mss_and_window_scale_then_acks_the_syn_ack() {
    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.state(h), State::SynSent);
    let syn = p.expect();
    assert_eq!((syn.flags.as_str(), syn.seq, syn.ack), ("S", 0, None));
    assert_eq!(syn.options.mss, Some(1460), "MSS from the 1500-byte MTU");
    assert!(syn.options.window_scale.is_some());
    assert!(!syn.options.sack_permitted && syn.options.timestamp.is_none(), "SACK and timestamps are off");
    assert!(syn.df && syn.ttl == 64);
    assert_eq!(p.stack.tcp_send(h, b"x"), Err(TcpError::WouldBlock), "not connected yet");
    p.inject_at(50, seg("S.", 1000).ack(1).mss(1400).ws(7));
    let ack = p.expect();
    assert_eq!((ack.flags.as_str(), ack.seq, ack.ack), (".", 1, Some(1001)));
    assert_eq!(p.state(h), State::Established);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.snd_mss, info.snd_wscale), (1400, 7));
    assert_eq!(info.srtt, dms(50), "the SYN-ACK timed the SYN");
    assert!(p.stack.tcp_readiness(h).unwrap().writable);
}

#[test]
fn passive_open_keeps_data_and_fin_that_arrive_before_accept() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460).ws(2));
    let synack = p.expect();
    assert_eq!((synack.flags.as_str(), synack.seq, synack.ack), ("S.", 0, Some(5001)));
    assert_eq!(synack.options.mss, Some(1460));
    assert!(synack.options.window_scale.is_some(), "the peer offered scaling");
    assert_eq!(p.stack.tcp_accept(l).err(), Some(TcpError::WouldBlock));
    p.inject_at(10, seg(".", 5001).ack(1));
    p.inject(seg("P.", 5001).ack(1).data(b"hello"));
    p.inject(seg("F.", 5006).ack(1));
    assert!(p.stack.tcp_readiness(l).unwrap().readable);
    let (c, remote) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(remote.port(), PEER_PORT);
    assert_eq!(p.state(c), State::CloseWait);
    assert_eq!(p.recv(c, 100).unwrap(), b"hello");
    assert_eq!(p.recv(c, 100).unwrap(), b"", "end of stream after the data");
    // The data and the FIN were acknowledged (the FIN at once).
    let mut last = None;
    while let Some(o) = p.sent.pop_front() {
        last = Some(o);
    }
    assert_eq!(last.unwrap().ack, Some(5007));
    p.close(c);
    let fin = p.expect();
    assert_eq!((fin.flags.as_str(), fin.seq), ("F.", 1));
    p.inject(seg(".", 5007).ack(2));
    // The connection is gone: a new segment on its 4-tuple meets a RST.
    p.inject(seg(".", 5007).ack(2));
    assert_eq!(p.expect().flags, "R");
}

#[test]
fn no_window_scale_in_the_syn_ack_when_the_peer_offers_none() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000));
    let synack = p.expect();
    assert_eq!(synack.options.window_scale, None);
    p.inject(seg(".", 5001).ack(1));
    let c = p.stack.tcp_accept(l).unwrap().0;
    let info = p.stack.tcp_info(c).unwrap();
    assert_eq!((info.snd_mss, info.snd_wscale, info.rcv_wscale), (536, 0, 0), "no options: MSS 536, no scaling");
    p.send(c, &[1u8; 1000]).unwrap();
    assert_eq!(p.expect().payload.len(), 536);
}

#[test]
fn syn_retries_back_off_and_end_in_etimedout() {
    let mut p = Script::new();
    let h = p.connect();
    let mut times = vec![p.expect().ms()];
    for _ in 0..6 {
        let s = p.expect_by(200_000);
        assert_eq!((s.flags.as_str(), s.seq), ("S", 0));
        times.push(s.ms());
    }
    assert_eq!(times, vec![0, 1_000, 3_000, 7_000, 15_000, 31_000, 63_000], "tcp_syn_retries = 6");
    p.run_until(126_999);
    assert_eq!(p.state(h), State::SynSent);
    p.run_until(127_000);
    assert_eq!(p.state(h), State::Closed);
    assert_eq!(p.stack.tcp_take_error(h).unwrap(), Some(TcpError::TimedOut));
    p.expect_none();
}

#[test]
fn rst_answering_the_syn_refuses_the_connection() {
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    // A RST without an acceptable ACK is ignored.
    p.inject_at(5, seg("R.", 0).ack(5));
    assert_eq!(p.state(h), State::SynSent);
    p.inject(seg("R.", 0).ack(1));
    assert_eq!(p.state(h), State::Closed);
    let r = p.stack.tcp_readiness(h).unwrap();
    assert!(r.error && r.readable && r.writable && r.hangup);
    assert_eq!(p.send(h, b"x"), Err(TcpError::ConnectionRefused));
    assert_eq!(p.send(h, b"x"), Err(TcpError::BrokenPipe));
    assert_eq!(TcpError::ConnectionRefused.errno(), 111);
}

#[test]
fn simultaneous_open_goes_through_syn_received() {
    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.expect().flags, "S");
    p.inject_at(10, seg("S", 7000).mss(1460));
    let synack = p.expect();
    assert_eq!((synack.flags.as_str(), synack.seq, synack.ack), ("S.", 0, Some(7001)));
    assert_eq!(p.state(h), State::SynReceived);
    p.inject(seg("S.", 7000).ack(1).mss(1460));
    assert_eq!(p.state(h), State::Established);
    p.send(h, b"hi").unwrap();
    let d = p.expect();
    assert_eq!((d.flags.as_str(), d.seq, d.payload.as_slice()), ("P.", 1, &b"hi"[..]));
}

// ---- closing ------------------------------------------------------------------------------

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

// ---- resets and RFC 5961 ------------------------------------------------------------------

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
