//! Windows: zero windows and probes, window scaling, window updates, a peer shrinking its
//! window.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};

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
    let mut p = Script::with(TcpConfig { rcvbuf: 4096, rcvbuf_max: 4096, quickacks: 100, ..TcpConfig::default() });
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
fn a_zero_window_still_takes_acks_and_answers_probes() {
    let mut p = Script::with(TcpConfig { rcvbuf: 2048, rcvbuf_max: 2048, ..TcpConfig::default() });
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

/// The window is computed from the receive buffer's limit, not from what it has allocated:
/// the SYN and the handshake's ACK offer all of SO_RCVBUF while nothing is allocated, and the
/// peer may send that whole window at once into a buffer that must grow (4 KiB, 8 KiB, ...)
/// to take it: every byte is stored, none dropped, and the window closes exactly.
#[test]
fn the_window_comes_from_the_limit_and_a_full_window_fits_a_buffer_that_grows() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..fixed_buffers() });
    let h = p.connect();
    let syn = p.expect();
    assert_eq!((syn.win, syn.options.window_scale), (65_535, Some(3)), "the SYN offers the limit");
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).ws(7));
    let ack = p.expect();
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.recv_buffer_bytes, 0, "nothing allocated");
    let window = u32::from(ack.win) << 3;
    assert_eq!(window, 256 * 1024, "the whole of SO_RCVBUF is offered");
    // The whole window in one burst, before the stack transmits anything.
    let mut seq = 1001u32;
    while seq - 1001 < window {
        let n = (window - (seq - 1001)).min(1460) as usize;
        let frame = p.frame(&seg(".", seq).ack(1).len(n));
        p.stack.receive(p.now, &frame, stack::RxChecksum::Unverified);
        seq += n as u32;
    }
    p.flush();
    let last = std::iter::from_fn(|| p.sent.pop_front()).last().unwrap();
    assert_eq!((last.ack, last.win), (Some(1001 + window), 0), "all of it taken, the window closed");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.rcv_dropped, 0);
    assert_eq!(info.recv_buffer_bytes, 256 * 1024 + 8, "grown to the limit, slack included");
    let data = p.recv(h, 300_000).unwrap();
    assert_eq!(data.len(), window as usize);
}
