//! The socket calls' errors, readiness and handles.

use crate::common::*;
use stack::tcp::{State, TcpConfig, TcpError};

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
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Readable(h)), "each arrival while readable is an event");
    assert_eq!(p.stack.poll_event(), None);
    assert!(p.stack.tcp_arrivals(h).unwrap() >= a0 + 3, "and the arrivals counter grows");
    let mut all = [0u8; 20];
    assert_eq!(p.stack.tcp_recv(h, &mut all, true), Ok(20));
    p.inject(seg(".", 1021).ack(1));
    assert_eq!(p.stack.poll_event(), None, "a bare ACK queues nothing to read");
    let mut peek = [0u8; 20];
    assert_eq!(p.stack.tcp_recv(h, &mut peek, true), Ok(20));
    assert_eq!(p.stack.tcp_readable_len(h).unwrap(), 20, "MSG_PEEK leaves the data");
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

/// The peer (ISN 1000) sends `bytes` from `seq` in 1,460-byte segments as one burst; returns
/// the next sequence number and the ACKs that came back.
fn burst(p: &mut Script, mut seq: u32, bytes: u32) -> (u32, Vec<Out>) {
    let end = seq + bytes;
    while seq < end {
        let n = (end - seq).min(1460) as usize;
        let frame = p.frame(&seg(".", seq).ack(1).len(n));
        p.stack.receive(p.now, &frame, stack::RxChecksum::Unverified);
        p.flush();
        seq += n as u32;
    }
    (seq, std::iter::from_fn(|| p.sent.pop_front()).collect())
}

/// SO_RCVBUF raised after the handshake takes effect at once: the window opens (up to what
/// the window scale chosen at the handshake can express) and the peer may fill it.
#[test]
fn so_rcvbuf_raised_after_connect_opens_the_window() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..fixed_buffers() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    let (seq, acks) = burst(&mut p, 1001, 256 * 1024);
    // Full, but for the rounding of the edge to the scale (at most one unit, the slack).
    assert!(acks.last().unwrap().win <= 1, "the window is full");
    let mut o = p.options(h);
    o.rcvbuf = 1 << 20;
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    p.flush();
    let update = p.expect();
    assert_eq!((update.ack, update.win), (Some(seq), 65_535), "a window update, as large as scale 3 allows");
    let (_, acks) = burst(&mut p, seq, 65_535 << 3);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.rcv_dropped, 0, "the whole new window was stored");
    assert_eq!(acks.last().unwrap().ack, Some(seq + (65_535 << 3)));
    assert_eq!(info.recv_buffer_limit, (1 << 20) + 8);
    assert!(info.recv_buffer_bytes <= info.recv_buffer_limit);
}

/// SO_RCVBUF lowered after the handshake never takes back the window advertised (RFC 9293
/// 3.8.6.2.2: the right edge never moves left): the peer may still send all of it, and only
/// once the application has read does the buffer's limit come down and the window offered
/// follow the new size. The storage goes once the connection is quiet.
#[test]
fn so_rcvbuf_lowered_after_connect_never_takes_back_the_advertised_window() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..fixed_buffers() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    let edge = 1001 + 256 * 1024;
    let mut o = p.options(h);
    o.rcvbuf = 16 * 1024;
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    p.flush();
    p.expect_none();
    let (seq, acks) = burst(&mut p, 1001, 256 * 1024);
    for a in &acks {
        let right = a.ack.unwrap() + (u32::from(a.win) << 3);
        assert!(right >= edge, "the right edge moved left: {right} < {edge}");
    }
    let last = acks.last().unwrap();
    assert!(last.ack == Some(edge) && last.win <= 1, "full but for rounding: {last:?}");
    assert_eq!(p.stack.tcp_info(h).unwrap().rcv_dropped, 0, "everything promised was stored");
    assert_eq!(p.recv(h, 300_000).unwrap().len(), 256 * 1024);
    let update = p.expect();
    assert_eq!((update.ack, u32::from(update.win) << 3), (Some(seq), 16 * 1024), "the new size");
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.recv_buffer_limit, 16 * 1024 + 8);
    assert_eq!(info.recv_buffer_bytes, 256 * 1024 + 8, "the storage stays until the connection is quiet");
    p.run_until(p.now.as_nanos() / 1_000_000 + 1_000);
    assert_eq!(p.stack.tcp_info(h).unwrap().recv_buffer_bytes, 0);
    let (_, acks) = burst(&mut p, seq, 16 * 1024);
    assert!(acks.last().unwrap().win <= 1);
    assert_eq!(p.stack.tcp_info(h).unwrap().recv_buffer_bytes, 16 * 1024 + 8, "grown back to the new limit only");
}

/// Acknowledges everything in flight until the send buffer is empty.
fn ack_everything(p: &mut Script, h: stack::SocketHandle) {
    while p.stack.tcp_send_queued(h).unwrap() > 0 {
        let end = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.seq + o.payload.len() as u32).max();
        p.inject(seg(".", 1001).ack(end.expect("data in flight")).win(65_535));
    }
}

/// SO_SNDBUF changed after the handshake takes effect at once: a lower limit takes no writes
/// until what is held drains under it, a higher one takes more.
#[test]
fn so_sndbuf_changed_after_connect_takes_effect() {
    let mut p = Script::new();
    let h = p.established();
    assert_eq!(p.send(h, &vec![1u8; 1 << 20]), Ok(256 * 1024));
    let mut o = p.options(h);
    o.set_sndbuf(32 * 1024, &TcpConfig::default());
    assert_eq!(o.sndbuf, 64 * 1024, "doubled, as Linux does");
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    assert_eq!(p.send(h, b"more"), Err(TcpError::WouldBlock));
    assert!(!p.stack.tcp_readiness(h).unwrap().writable);
    ack_everything(&mut p, h);
    assert!(p.stack.tcp_readiness(h).unwrap().writable);
    assert_eq!(p.send(h, &vec![2u8; 1 << 20]), Ok(64 * 1024));
    o.set_sndbuf(1 << 20, &TcpConfig::default());
    assert_eq!(o.sndbuf, 2 * 212_992, "capped at wmem_max, then doubled");
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    assert_eq!(p.send(h, &vec![3u8; 1 << 20]), Ok(2 * 212_992 - 64 * 1024));
    assert_eq!(p.stack.tcp_info(h).unwrap().send_buffer_limit, 2 * 212_992);
}

/// setsockopt's values become what getsockopt reports as Linux computes them.
#[test]
fn so_sndbuf_and_so_rcvbuf_are_doubled_and_bounded_as_linux_does() {
    let config = TcpConfig::default();
    let mut o = stack::tcp::TcpSocketOptions::new(&config);
    for (asked, rcv, snd) in
        [(0, 2304, 4608), (1000, 2304, 4608), (100_000, 200_000, 200_000), (1 << 20, 425_984, 425_984)]
    {
        o.set_rcvbuf(asked, &config);
        o.set_sndbuf(asked, &config);
        assert_eq!((o.rcvbuf, o.sndbuf), (rcv, snd), "asked {asked}");
    }
}
