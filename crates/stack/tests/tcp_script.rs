//! Packet scripts for TCP: segments from a simulated peer at simulated times, what the
//! application sees, and the segments the stack sends, with their times.

mod common;

use common::*;
use stack::tcp::{State, TcpConfig, TcpError};
use stack::{Instant, RxChecksum};
use std::time::Duration;

// ---- opening ------------------------------------------------------------------------------

#[test]
fn active_open_sends_syn_with_mss_and_window_scale_then_acks_the_syn_ack() {
    let mut p = Script::new();
    let h = p.stack.tcp_open();
    p.stack.tcp_bind(h, std::net::SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
    p.stack.tcp_connect(h, std::net::SocketAddrV4::new(PEER, PEER_PORT), p.now).unwrap();
    assert!(p.stack.tcp_transmit_pending(), "the SYN waits for transmit");
    p.flush();
    assert!(!p.stack.tcp_transmit_pending());
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

// ---- passive open limits --------------------------------------------------------------------

#[test]
fn syn_ack_is_retried_five_times_then_the_handshake_is_dropped() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460));
    let mut times = vec![p.expect().ms()];
    for _ in 0..5 {
        let s = p.expect_by(100_000);
        assert_eq!(s.flags, "S.");
        times.push(s.ms());
    }
    assert_eq!(times, vec![0, 1_000, 3_000, 7_000, 15_000, 31_000], "tcp_synack_retries = 5");
    p.expect_silence_until(200_000);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 0), "the handshake is gone");
    // A retransmitted SYN would have been answered at once.
    p.inject(seg("S", 6000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject(seg("S", 6000).mss(1460));
    assert_eq!(p.expect().flags, "S.", "a SYN retransmission gets the SYN-ACK again");
}

#[test]
fn full_accept_queue_drops_syns_and_final_acks_like_linux() {
    let mut p = Script::new();
    let l = p.listen(2);
    let port = |i: u16| PEER_PORT + i;
    // Two handshakes at once fill the SYN queue (bounded by the backlog).
    for i in 0..3 {
        p.inject(seg("S", 100).src_port(port(i)).mss(1460));
    }
    assert_eq!(p.expect().dst.port(), port(0));
    assert_eq!(p.expect().dst.port(), port(1));
    p.expect_none();
    assert_eq!(p.stack.stats().tcp_listen_drops, 1);
    for i in 0..2 {
        p.inject(seg(".", 101).src_port(port(i)).ack(1));
    }
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (2, 0));
    p.expect_none();
    // Two more handshakes at once: the third completes (backlog + 1, as Linux), the fourth's
    // ACK is dropped because the accept queue is full.
    for i in 2..4 {
        p.inject(seg("S", 100).src_port(port(i)).mss(1460));
        assert_eq!(p.expect().flags, "S.");
    }
    for i in 2..4 {
        p.inject(seg(".", 101).src_port(port(i)).ack(1));
    }
    p.expect_none();
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (3, 1));
    assert_eq!(p.stack.stats().tcp_listen_overflows, 1);
    p.inject(seg("S", 100).src_port(port(9)).mss(1460));
    p.expect_none();
    // The dropped handshake's SYN-ACK is retried; after an accept the peer's ACK completes it.
    let retry = p.expect_by(1_000);
    assert_eq!((retry.flags.as_str(), retry.dst.port(), retry.ms()), ("S.", port(3), 1_000));
    let (first, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.stack.tcp_addresses(first).unwrap().1.unwrap().port(), port(0), "oldest first");
    p.inject(seg(".", 101).src_port(port(3)).ack(1));
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (3, 0));
}

#[test]
fn closing_a_listener_resets_connections_nobody_accepted() {
    let mut p = Script::new();
    let l = p.listen(4);
    p.inject(seg("S", 100).mss(1460));
    p.expect();
    p.inject(seg(".", 101).ack(1));
    p.close(l);
    let rst = p.expect();
    assert_eq!((rst.flags.as_str(), rst.seq), ("R.", 1));
    p.inject(seg("S", 100).src_port(1234));
    assert_eq!(p.expect().flags, "R.", "no listener any more");
}

// ---- acknowledgments ---------------------------------------------------------------------

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
fn segments_outside_the_window_are_acked_and_dropped() {
    let mut p = Script::new();
    let h = p.established();
    let wnd = p.stack.tcp_info(h).unwrap().rcv_wnd;
    p.inject(seg(".", 1001 + wnd + 10).ack(1).len(100));
    assert_eq!(p.expect().ack, Some(1001));
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 0);
    assert_eq!(p.stack.tcp_info(h).unwrap().rcv_dropped, 1);
}

// ---- sending ------------------------------------------------------------------------------

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
fn fast_retransmit_on_three_duplicate_acks_then_recovery() {
    let mut p = Script::new();
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
fn zero_window_is_probed_with_backoff_until_it_opens() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[1u8; 1000]).unwrap();
    assert_eq!(p.expect().payload.len(), 1000);
    p.inject_at(200, seg(".", 1001).ack(1001).win(0));
    p.send(h, &[2u8; 500]).unwrap();
    p.expect_none();
    let mut times = Vec::new();
    for _ in 0..3 {
        let probe = p.expect_by(10_000);
        assert_eq!((probe.seq, probe.payload.len()), (1000, 0), "a probe is an old sequence number");
        times.push(probe.ms());
        p.inject(seg(".", 1001).ack(1001).win(0));
    }
    // RTT 100 ms twice: RTO 100 + max(4 * 37.5, 200) = 300 ms, doubled at each probe.
    assert_eq!(times, vec![500, 1_100, 2_300], "persist timer backs off from the RTO");
    assert_eq!(p.stack.tcp_info(h).unwrap().window_probes, 3);
    p.inject_at(2_500, seg(".", 1001).ack(1001).win(65_535));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (1001, 500), "the window opened: data flows");
    assert_eq!(p.state(h), State::Established);
}

/// Must-fix 4: probes count toward tcp_retries2 only while unanswered (RFC 9293 3.8.6.1,
/// Linux's tcp_ack clearing icsk_probes_out): a peer that keeps answering with a zero window
/// keeps the connection, one that goes silent ends it.
#[test]
fn answered_zero_window_probes_never_time_out_unanswered_ones_do() {
    let mut p = Script::with(TcpConfig { retries2: 4, ..TcpConfig::default() });
    let h = p.established();
    p.send(h, &[1u8; 1000]).unwrap();
    p.expect();
    p.inject_at(200, seg(".", 1001).ack(1001).win(0));
    p.send(h, &[2u8; 500]).unwrap();
    for _ in 0..12 {
        let probe = p.expect_by(10_000_000);
        assert_eq!((probe.seq, probe.payload.len()), (1000, 0));
        p.inject(seg(".", 1001).ack(1001).win(0));
        assert_eq!(p.state(h), State::Established, "answered probes keep the connection");
    }
    assert_eq!(p.stack.tcp_info(h).unwrap().window_probes, 12);
    // The peer goes silent: tcp_retries2 probes later the connection is gone.
    for _ in 0..4 {
        assert_eq!(p.expect_by(10_000_000).payload.len(), 0);
    }
    p.run_until(p.now.as_nanos() / 1_000_000 + 1_000_000);
    assert_eq!(p.state(h), State::Closed);
    assert_eq!(p.send(h, b"x"), Err(TcpError::TimedOut));
}

/// Must-fix 6: an RTO while the peer's window is zero sent nothing (go-back-N waits for the
/// window) and left no timer armed: a stall. Linux retransmits the head regardless of the
/// window, keeps backing off, and gives up only when the peer has been silent for rto_max.
#[test]
fn an_rto_into_a_zero_window_retransmits_the_head_and_keeps_a_timer() {
    let mut p = Script::with(TcpConfig { retries2: 3, ..TcpConfig::default() });
    let h = p.established();
    p.send(h, &[1u8; 1000]).unwrap();
    assert_eq!(p.expect().ms(), 100);
    // The peer shrinks its window to zero without acknowledging the data.
    p.inject_at(150, seg(".", 1001).ack(1).win(0));
    let mut times = Vec::new();
    for _ in 0..6 {
        let r = p.expect_by(1_000_000);
        assert_eq!((r.seq, r.payload.len()), (1, 1000), "the head, regardless of the window");
        times.push(r.ms());
        assert!(p.stack.poll_timeout().is_some(), "a timer stays armed");
        // The peer answers, still with a zero window.
        p.inject(seg(".", 1001).ack(1).win(0));
    }
    assert_eq!(times, vec![400, 1_000, 2_200, 4_600, 9_400, 19_000]);
    assert_eq!(p.state(h), State::Established, "an answering peer is not timed out");
    p.inject_at(20_000, seg(".", 1001).ack(1001).win(65_535));
    p.send(h, b"more").unwrap();
    assert_eq!(p.expect().seq, 1001);
    assert_eq!(p.state(h), State::Established);
}

/// Must-fix 7: the window field is the free space shifted right by our window scale; rounding
/// it down moved the right edge we had advertised back by up to 2^scale - 1 bytes (a shrinking
/// window, RFC 9293 3.8.6.2.2). Linux rounds the window it already promised up (ALIGN).
#[test]
fn the_advertised_right_edge_never_moves_left_under_window_scaling() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..TcpConfig::default() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    let ws = p.stack.tcp_info(h).unwrap().rcv_wscale;
    assert!(ws > 0, "the scripts' handshake negotiated window scaling");
    let mut seq = 1001u32;
    // The handshake's ACK offered the whole buffer, and the application reads nothing: that
    // edge stays the one promised; later ACKs may only round up past it, by less than a unit.
    let edge = TcpConfig::default().rcvbuf as u64;
    for n in [1001usize, 999, 1003, 1460, 7, 1201, 13, 1459, 1000, 3] {
        p.inject(seg("P.", seq).ack(1).len(n));
        seq += n as u32;
        let a = p.expect();
        assert_eq!(a.ack, Some(seq));
        let right = u64::from(seq - 1001) + (u64::from(a.win) << ws);
        assert!(right >= edge, "the right edge moved left: {right} < {edge} after {n} bytes");
        // Rounding up may creep by at most one unit in all: the buffer's slack that backs it.
        assert!(right - edge <= 1 << ws, "rounding only: {right} vs {edge}");
    }
}

#[test]
fn our_zero_window_opens_with_a_window_update_after_reads() {
    let mut p = Script::with(TcpConfig { rcvbuf: 4096, quickacks: 100, ..TcpConfig::default() });
    let h = p.established();
    let mut acked = 1001;
    let mut last_win = u16::MAX;
    while last_win > 0 {
        p.inject(seg(".", acked).ack(1).len(1000));
        let a = p.expect();
        acked = a.ack.unwrap();
        last_win = a.win;
    }
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 4096);
    p.recv(h, 1000).unwrap();
    p.expect_none();
    p.recv(h, 4096).unwrap();
    let upd = p.expect();
    assert!(upd.win as usize >= 2048, "window update after the reads: {}", upd.win);
}

#[test]
fn keepalive_probes_then_reset_with_etimedout() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    let mut times = Vec::new();
    for _ in 0..3 {
        let probe = p.expect_by(100_000);
        assert_eq!((probe.seq, probe.payload.len(), probe.flags.as_str()), (0, 0, "."));
        times.push(probe.ms());
    }
    assert_eq!(times, vec![10_100, 12_100, 14_100]);
    let rst = p.expect_by(100_000);
    assert_eq!((rst.flags.as_str(), rst.ms()), ("R.", 16_100));
    assert_eq!(p.recv(h, 10), Err(TcpError::TimedOut));
    assert_eq!(p.stack.tcp_info(h).unwrap().keepalive_probes, 3);
}

#[test]
fn keepalive_answered_keeps_the_connection() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    let probe = p.expect_by(100_000);
    assert_eq!(probe.ms(), 10_100);
    p.inject(seg(".", 1001).ack(1));
    let next = p.expect_by(100_000);
    assert_eq!(next.ms(), 20_100, "idle again from the answer");
    assert_eq!(p.state(h), State::Established);
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
fn send_and_recv_errors_follow_linux() {
    let mut p = Script::new();
    let h = p.stack.tcp_open();
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::NotConnected));
    assert_eq!(p.stack.tcp_send(h, b"x"), Err(TcpError::NotConnected));
    let h = p.connect();
    assert_eq!(p.stack.tcp_connect(h, std::net::SocketAddrV4::new(PEER, 1), p.now), Err(TcpError::Already));
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::WouldBlock));
    p.inject(seg("S.", 1000).ack(1));
    assert_eq!(p.stack.tcp_connect(h, std::net::SocketAddrV4::new(PEER, 1), p.now), Err(TcpError::IsConnected));
    assert_eq!(p.stack.tcp_recv(h, &mut [0u8; 4], false), Err(TcpError::WouldBlock));
    assert_eq!(TcpError::WouldBlock.errno(), 11);
    assert_eq!(TcpError::BrokenPipe.errno(), 32);
}

#[test]
fn readiness_events_and_arrivals_surface_changes() {
    let mut p = Script::new();
    let h = p.connect();
    while p.stack.poll_event().is_some() {}
    let a0 = p.stack.tcp_arrivals(h).unwrap();
    p.inject(seg("S.", 1000).ack(1));
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Writable(h)));
    p.inject(seg("P.", 1001).ack(1).len(10));
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Readable(h)));
    p.inject(seg("P.", 1011).ack(1).len(10));
    assert_eq!(p.stack.poll_event(), None, "still readable: no new edge event");
    assert!(p.stack.tcp_arrivals(h).unwrap() >= a0 + 3, "but the arrivals counter grows");
    let mut peek = [0u8; 20];
    assert_eq!(p.stack.tcp_recv(h, &mut peek, true), Ok(20));
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 20, "MSG_PEEK leaves the data");
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

#[test]
fn the_window_of_a_syn_ack_is_not_scaled() {
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    p.inject_at(10, seg("S.", 1000).ack(1).mss(1400).ws(7).win(2000));
    p.expect();
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_wnd, 2000);
    p.send(h, &[0u8; 5000]).unwrap();
    assert_eq!(p.expect().payload.len(), 1400);
    p.expect_none();
    // Later windows are scaled.
    p.inject_at(20, seg(".", 1001).ack(1401).win(100));
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_wnd, 100 << 7);
}

#[test]
fn shutdown_during_a_simultaneous_open_sends_the_fin_once_established() {
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    p.inject_at(10, seg("S", 7000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.shutdown_write(h);
    p.expect_none();
    p.inject(seg("S.", 7000).ack(1).mss(1460));
    assert_eq!(p.state(h), State::FinWait1);
    let fin = p.expect();
    assert_eq!((fin.flags.as_str(), fin.seq), ("F.", 1));
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
fn rst_during_the_handshake_drops_it_silently_and_the_listener_carries_on() {
    let mut p = Script::new();
    let l = p.listen(4);
    p.inject(seg("S", 100).mss(1460));
    p.expect();
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 1));
    p.inject(seg("R", 101));
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 0));
    p.expect_silence_until(5_000);
    p.inject(seg("S", 200).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject(seg(".", 201).ack(1));
    assert!(p.stack.tcp_accept(l).is_ok());
}

#[test]
fn connect_then_close_before_the_answer_just_stops() {
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    p.close(h);
    p.expect_silence_until(10_000);
    // The SYN-ACK that comes late meets no socket.
    p.inject(seg("S.", 1000).ack(1));
    assert_eq!(p.expect().flags, "R");
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
fn a_zero_window_still_takes_acks_and_answers_probes() {
    let mut p = Script::with(TcpConfig { rcvbuf: 2048, ..TcpConfig::default() });
    let h = p.established();
    p.inject(seg(".", 1001).ack(1).len(2048));
    let a = p.expect();
    assert_eq!((a.ack, a.win), (Some(3049), 0));
    // The peer's one-byte window probe is answered with the same zero window.
    p.inject(seg(".", 3049).ack(1).len(1));
    let a = p.expect();
    assert_eq!((a.ack, a.win), (Some(3049), 0));
    // Our data still flows and its ACK is taken.
    p.send(h, b"out").unwrap();
    assert_eq!(p.expect().payload, b"out");
    p.inject(seg(".", 3049).ack(4));
    assert_eq!(p.stack.tcp_info(h).unwrap().unacked, 0);
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
fn udp_and_tcp_handles_do_not_mix() {
    let mut p = Script::new();
    let t = p.stack.tcp_open();
    let u = p.stack.udp_open();
    assert_eq!(p.stack.udp_close(t), Err(stack::udp::UdpError::BadHandle));
    assert_eq!(p.stack.tcp_state(u), Err(TcpError::BadHandle));
    assert_eq!(p.stack.tcp_state(t), Ok(State::Closed));
    p.stack.tcp_close(t, p.now).unwrap();
    assert_eq!(p.stack.tcp_state(t), Err(TcpError::BadHandle));
    assert!(p.stack.udp_close(u).is_ok());
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

// ---- issue 24, "should fix" (Linux behaviour) ----------------------------------------------

#[test]
fn the_syn_ack_completing_a_simultaneous_open_has_an_unscaled_window() {
    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.expect().flags, "S");
    p.inject_at(10, seg("S", 7000).mss(1460).ws(7).win(1000));
    assert_eq!(p.expect().flags, "S.");
    // RFC 7323 2.2: the window of any segment with SYN set is not scaled.
    p.inject(seg("S.", 7000).ack(1).mss(1460).ws(7).win(1000));
    assert_eq!(p.state(h), State::Established);
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_wnd, 1000);
}

#[test]
fn unacceptable_segments_do_not_postpone_keepalive() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 3;
    });
    // An old or forged segment far outside the window gets its ACK but proves nothing.
    p.inject_at(5_000, seg(".", 1001 + 10_000_000).ack(1));
    assert_eq!(p.expect().ack, Some(1001));
    let probe = p.expect_by(100_000);
    assert_eq!(probe.ms(), 10_100, "idle since the last acceptable segment");
    assert_eq!(p.state(h), State::Established);
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

// ---- issue 24, missing coverage -------------------------------------------------------------

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

#[test]
fn data_after_a_lost_final_handshake_ack_completes_the_passive_open() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    // The peer's final ACK is lost; its first data segment carries the same ACK.
    p.inject_at(20, seg("P.", 5001).ack(1).data(b"hello"));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.state(c), State::Established);
    assert_eq!(p.recv(c, 10).unwrap(), b"hello");
    assert_eq!(p.stack.tcp_info(c).unwrap().srtt, dms(20), "the SYN-ACK was timed");
}

#[test]
fn a_peer_that_shrinks_its_window_gets_no_data_past_the_new_edge() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[1u8; 4 * 1460]).unwrap();
    assert_eq!(std::iter::from_fn(|| p.sent.pop_front()).count(), 4);
    // The peer takes one segment and shrinks its window to two segments from there (the right
    // edge moves left, RFC 9293 3.8.6.2.1): two are in flight already, nothing new may go.
    p.inject_at(150, seg(".", 1001).ack(1 + 1460).win(2 * 1460));
    p.send(h, &[2u8; 1460]).unwrap();
    assert!(std::iter::from_fn(|| p.sent.pop_front()).all(|o| o.payload.is_empty()));
    // Its next ACKs open it again: data flows.
    p.inject_at(200, seg(".", 1001).ack(1 + 4 * 1460).win(65_535));
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (1 + 4 * 1460, 1460));
}

// ---- issue 24, "should fix": Minshall, limited transmit, lost handshake segments ------------

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

#[test]
fn limited_transmit_sends_new_data_on_the_first_two_duplicate_acks() {
    // A window of three segments: a loss leaves two duplicate ACKs at most, never the three
    // fast retransmit waits for, unless each of them lets a new segment out (RFC 3042).
    let mut p = Script::with(TcpConfig { initial_window: 3, ..TcpConfig::default() });
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

#[test]
fn a_handshake_without_an_rtt_sample_leaves_a_3_s_rto_for_the_data() {
    // The SYN is lost once: the SYN-ACK answers a retransmission and times nothing (Karn), so
    // the data phase starts from RFC 6298 5.7's 3 s rather than the 1 s initial RTO.
    let mut p = Script::new();
    let h = p.connect();
    assert_eq!(p.expect().ms(), 0);
    assert_eq!(p.expect_by(2_000).ms(), 1_000, "the SYN again");
    p.inject_at(1_100, seg("S.", 1000).ack(1).mss(1460));
    assert_eq!(p.expect().flags, ".");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.rto, dms(3_000));
    // One retransmission may be the 1 s timer's haste: the initial window stays (Linux).
    assert_eq!(info.cwnd, 10 * 1460);
    p.send(h, &[1u8; 100]).unwrap();
    assert_eq!(p.expect().ms(), 1_100);
    let rtx = p.expect_by(10_000);
    assert_eq!((rtx.seq, rtx.payload.len(), rtx.ms()), (1, 100, 4_100), "retransmitted after 3 s");

    // The same on the passive side, when the peer's SYN comes again (our SYN-ACK was lost)
    // and our SYN-ACK goes out twice: the final ACK times nothing.
    let mut q = Script::new();
    let l = q.listen(8);
    q.inject(seg("S", 5000).mss(1460));
    assert_eq!(q.expect().flags, "S.");
    q.inject_at(500, seg("S", 5000).mss(1460));
    assert_eq!(q.expect().flags, "S.");
    q.inject_at(600, seg(".", 5001).ack(1));
    let (c, _) = q.stack.tcp_accept(l).unwrap();
    let info = q.stack.tcp_info(c).unwrap();
    assert_eq!((info.srtt, info.rto), (Duration::ZERO, dms(3_000)), "no sample across a retransmission");
}

#[test]
fn more_than_one_lost_syn_or_syn_ack_starts_the_data_with_one_segment() {
    // RFC 5681 3.1, as Linux applies it (tcp_init_transfer: more than one retransmission of
    // the SYN or SYN-ACK, since one may come from the 1 s initial RTO alone).
    let mut p = Script::new();
    let h = p.connect();
    let syns: Vec<_> = (0..3).map(|_| p.expect_by(10_000).ms()).collect();
    assert_eq!(syns, vec![0, 1_000, 3_000]);
    p.inject_at(3_100, seg("S.", 1000).ack(1).mss(1460));
    assert_eq!(p.expect().flags, ".");
    p.send(h, &vec![1u8; 10 * 1460]).unwrap();
    let burst: Vec<_> = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.seq).collect();
    assert_eq!(burst, vec![1], "an initial window of one segment");
    p.inject_at(3_200, seg(".", 1001).ack(1461));
    assert_eq!(std::iter::from_fn(|| p.sent.pop_front()).count(), 2, "then slow start");

    // The passive side: our SYN-ACK went out three times.
    let mut q = Script::new();
    let l = q.listen(8);
    q.inject(seg("S", 5000).mss(1460));
    let synacks: Vec<_> = (0..3).map(|_| q.expect_by(10_000).ms()).collect();
    assert_eq!(synacks, vec![0, 1_000, 3_000]);
    q.inject_at(3_050, seg(".", 5001).ack(1));
    let (c, _) = q.stack.tcp_accept(l).unwrap();
    q.send(c, &vec![1u8; 10 * 1460]).unwrap();
    assert_eq!(std::iter::from_fn(|| q.sent.pop_front()).count(), 1, "an initial window of one segment");
    assert_eq!(q.stack.tcp_info(c).unwrap().rto, dms(3_000));
}
