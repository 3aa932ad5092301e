//! Opening: active, passive and simultaneous opens, SYN and SYN-ACK retries, listener queues,
//! and how a handshake that lost segments starts the data phase.

use crate::common::*;
use stack::tcp::{State, TcpError};
use std::time::Duration;

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
    assert!(syn.options.sack_permitted, "SACK is offered by default (TcpConfig::sack, as tcp_sack=1)");
    assert_eq!(syn.options.timestamp.map(|t| t.1), Some(0), "timestamps offered, echoing nothing yet");
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
    // Without SYN cookies (tcp_syncookies=0): a full SYN queue drops SYNs (syncookies.rs has
    // the default).
    let mut p = Script::with(stack::tcp::TcpConfig { syncookies: 0, ..Default::default() });
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
