//! SYN cookies (tcp_syncookies=1): a listener whose SYN queue is full answers with a cookie
//! SYN-ACK and keeps nothing; the final ACK that echoes the cookie makes the connection.

use crate::common::*;
use stack::tcp::{State, TcpConfig};

/// A listener with backlog 2 whose SYN queue two handshakes from ports 1 and 2 fill (their
/// SYN-ACKs consumed).
fn full_syn_queue(config: TcpConfig) -> (Script, stack::SocketHandle) {
    let mut p = Script::with(config);
    let l = p.listen(2);
    for i in 1..=2 {
        p.inject(seg("S", 100).src_port(PEER_PORT + i).mss(1460));
        assert_eq!(p.expect().flags, "S.");
    }
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 2));
    (p, l)
}

fn no_timestamps() -> TcpConfig {
    TcpConfig { timestamps: false, ..TcpConfig::default() }
}

#[test]
fn a_full_syn_queue_answers_with_a_cookie_and_the_final_ack_makes_the_connection() {
    let (mut p, l) = full_syn_queue(no_timestamps());
    let sent_before = p.stack.stats().tcp_passive_opens;
    p.inject(seg("S", 5000).mss(1400).ws(7).sack_perm());
    let synack = p.expect();
    assert_eq!((synack.flags.as_str(), synack.ack), ("S.", Some(5001)));
    // Without timestamps the cookie carries the MSS only: no scaling, no SACK (as Linux).
    assert_eq!(synack.options.mss, Some(1460));
    assert_eq!((synack.options.window_scale, synack.options.sack_permitted), (None, false));
    assert_eq!(synack.win, 65_535);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 2), "nothing queued for the cookie");
    assert_eq!(p.stack.stats().tcp_syncookies_sent, 1);
    assert_eq!(p.stack.stats().tcp_passive_opens, sent_before);
    // Nothing is retransmitted for a cookie.
    p.run_until(900);
    p.sent.retain(|o| o.dst.port() == PEER_PORT);
    p.expect_none();
    // The final ACK, with data, makes the connection and its data is kept.
    p.inject(seg("P.", 5001).ack(1).win(1000).data(b"hello"));
    assert_eq!(p.stack.stats().tcp_syncookies_recv, 1);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (1, 2));
    let (c, remote) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(remote.port(), PEER_PORT);
    assert_eq!(p.state(c), State::Established);
    assert_eq!(p.recv(c, 100).unwrap(), b"hello");
    let info = p.stack.tcp_info(c).unwrap();
    assert_eq!(info.snd_mss, 1300, "1400 rounds down to the cookie's table");
    assert_eq!((info.snd_wscale, info.rcv_wscale, info.sack), (0, 0, false));
    assert_eq!(info.snd_wnd, 1000, "the final ACK's window, unscaled");
    // It sends and acknowledges as any connection, from the cookie's sequence numbers.
    p.send(c, &[7u8; 3000]).unwrap();
    let mut seqs = Vec::new();
    while let Some(o) = p.sent.pop_front() {
        if o.dst.port() == PEER_PORT && !o.payload.is_empty() {
            seqs.push((o.seq, o.payload.len(), o.ack));
        }
    }
    assert_eq!(seqs, vec![(1, 1000, Some(5006))], "the peer's 1000-byte window, the data acknowledged");
}

#[test]
fn with_timestamps_the_cookie_keeps_window_scale_and_sack_in_our_tsval() {
    let (mut p, l) = full_syn_queue(TcpConfig::default());
    p.inject(seg("S", 5000).mss(1460).ws(9).sack_perm().ts(777, 0));
    let synack = p.expect();
    assert_eq!(synack.flags, "S.");
    assert!(synack.options.window_scale.is_some());
    assert!(synack.options.sack_permitted);
    let (tsval, tsecr) = synack.options.timestamp.expect("timestamps answered");
    assert_eq!(tsecr, 777);
    p.inject_at(20, seg(".", 5001).ack(1).win(100).ts(800, tsval));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    let info = p.stack.tcp_info(c).unwrap();
    assert_eq!((info.snd_wscale, info.sack, info.timestamps), (9, true, true));
    assert_eq!(info.snd_mss, 1460 - 12, "the timestamp option's room");
    assert_eq!(info.rcv_wscale, synack.options.window_scale.unwrap(), "the scale the SYN-ACK announced");
    assert_eq!(info.snd_wnd, 100 << 9);
    // The next segment echoes the peer's TSval and carries SACK blocks for a hole.
    p.inject(seg(".", 5101).ack(1).len(100).ts(810, tsval));
    let ack = p.expect();
    assert_eq!(ack.options.timestamp.map(|t| t.1), Some(800), "TS.Recent moves only at the left edge");
    assert_eq!(ack.options.sack_blocks[0].map(|b| b.0), Some(5101), "SACK is on");
}

#[test]
fn a_peer_without_window_scale_gets_none_through_the_cookie() {
    let (mut p, l) = full_syn_queue(TcpConfig::default());
    p.inject(seg("S", 5000).mss(1460).ts(777, 0));
    let synack = p.expect();
    assert_eq!((synack.options.window_scale, synack.options.sack_permitted), (None, false));
    let tsval = synack.options.timestamp.unwrap().0;
    p.inject(seg(".", 5001).ack(1).ts(800, tsval));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    let info = p.stack.tcp_info(c).unwrap();
    assert_eq!((info.snd_wscale, info.rcv_wscale, info.sack, info.timestamps), (0, 0, false, true));
}

#[test]
fn acks_with_a_wrong_or_old_cookie_are_reset_and_make_nothing() {
    let (mut p, l) = full_syn_queue(no_timestamps());
    p.inject(seg("S", 5000).mss(1460));
    p.expect();
    // A wrong ACK number: no connection, a RST as for any stray ACK.
    p.inject(seg(".", 5001).ack(2));
    assert_eq!(p.expect().flags, "R");
    // A wrong sequence number changes the peer ISN the cookie is checked against (one a few
    // bytes off may still pass with a smaller MSS, as on Linux: the MSS index is the low bits).
    p.inject(seg(".", 6001).ack(1));
    assert_eq!(p.expect().flags, "R");
    assert_eq!(p.stack.stats().tcp_syncookies_failed, 2);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 2));
    // Past two minutes the cookie is no longer valid.
    p.run_until(181_000);
    p.sent.clear();
    p.inject(seg(".", 5001).ack(1));
    assert_eq!(p.expect().flags, "R");
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap().0, 0);
}

#[test]
fn a_listener_that_sent_no_cookie_checks_no_ack_for_one() {
    let mut p = Script::with(no_timestamps());
    let _l = p.listen(8);
    p.inject(seg(".", 5001).ack(1));
    assert_eq!(p.expect().flags, "R");
    assert_eq!(p.stack.stats().tcp_syncookies_failed, 0, "not even looked at");
}

#[test]
fn a_syn_flood_does_not_stop_a_real_client() {
    let mut p = Script::with(TcpConfig::default());
    let l = p.listen(16);
    // 5,000 SYNs from ports that never answer.
    for i in 0..5_000u32 {
        let port = 10_000 + i as u16;
        p.inject(seg("S", i).src_port(port).mss(1460).ws(7).sack_perm().ts(i, 0));
    }
    assert_eq!(p.sent.len(), 5_000, "every SYN answered");
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 16), "only the backlog holds state");
    assert_eq!(p.stack.stats().tcp_syncookies_sent, 5_000 - 16);
    p.sent.clear();
    // A real client connects at once.
    p.inject_at(10, seg("S", 9000).mss(1460).ws(7).sack_perm().ts(1, 0));
    let synack = p.expect();
    assert_eq!((synack.flags.as_str(), synack.dst.port()), ("S.", PEER_PORT));
    let tsval = synack.options.timestamp.unwrap().0;
    p.inject(seg(".", 9001).ack(1).ts(2, tsval));
    let (c, remote) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(remote.port(), PEER_PORT);
    assert_eq!(p.state(c), State::Established);
}

#[test]
fn a_full_accept_queue_drops_syns_even_with_cookies() {
    let mut p = Script::with(no_timestamps());
    let l = p.listen(0);
    p.inject(seg("S", 100).mss(1460));
    p.inject(seg(".", 101).ack(1));
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (1, 0));
    p.sent.clear();
    p.inject(seg("S", 100).src_port(PEER_PORT + 1).mss(1460));
    p.expect_none();
    assert_eq!(p.stack.stats().tcp_syncookies_sent, 0);
}

#[test]
fn syncookies_2_answers_every_syn_with_a_cookie_and_0_drops_past_the_queue() {
    let mut p = Script::with(TcpConfig { syncookies: 2, ..no_timestamps() });
    let l = p.listen(8);
    p.inject(seg("S", 100).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 0));
    p.inject(seg(".", 101).ack(1));
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (1, 0));

    let (mut p, _) = full_syn_queue(TcpConfig { syncookies: 0, ..no_timestamps() });
    p.inject(seg("S", 5000).mss(1460));
    p.expect_none();
    assert_eq!(p.stack.stats().tcp_listen_drops, 1);
}
