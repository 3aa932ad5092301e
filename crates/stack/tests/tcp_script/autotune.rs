//! Buffer autotuning (autotune.rs): the receive buffer, and with it the window, grows with
//! what the application reads per RTT, up to tcp_rmem[2]; the send buffer grows with the
//! congestion window up to tcp_wmem[2]; SO_RCVBUF and SO_SNDBUF stop both, before or after
//! connect.

use crate::common::*;
use stack::tcp::TcpConfig;

const RTT: u64 = 50;

/// A peer in slow start sending into an established connection (peer ISN 1000, window scale
/// 7 both ways), one round per RTT, each round twice the last but never past our window; the
/// application reads everything after each round when `read`. Returns the windows we
/// advertised after each round.
fn rounds(p: &mut Script, h: stack::SocketHandle, n: usize, read: bool) -> Vec<u32> {
    let ws = p.stack.tcp_info(h).unwrap().rcv_wscale;
    let mut seq = 1001u32;
    let mut window = 65_535u32 << ws;
    let mut burst = 10 * 1460u32;
    let mut t = p.now.as_nanos() / 1_000_000;
    let mut windows = Vec::new();
    for _ in 0..n {
        let send = burst.min(window);
        let mut sent = 0;
        let mut last = None;
        while sent < send {
            let len = (send - sent).min(1460);
            p.inject(seg(".", seq + sent).ack(1).len(len as usize));
            sent += len;
            while let Some(o) = p.sent.pop_front() {
                last = Some(o);
            }
        }
        seq += sent;
        if read {
            while p.recv(h, 1 << 20).map(|d| !d.is_empty()).unwrap_or(false) {}
        }
        while let Some(o) = p.sent.pop_front() {
            last = Some(o);
        }
        if let Some(o) = last {
            window = (o.ack.unwrap() + (u32::from(o.win) << ws)).wrapping_sub(seq);
        }
        windows.push(window);
        burst = sent * 2;
        t += RTT;
        p.run_until(t);
    }
    windows
}

#[test]
fn the_receive_window_grows_with_what_the_application_reads_per_rtt() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..TcpConfig::default() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.rcv_wscale, 7, "the scale is chosen for tcp_rmem[2] (6 MiB)");
    assert_eq!(info.rcvbuf, 256 * 1024);
    let windows = rounds(&mut p, h, 14, true);
    let info = p.stack.tcp_info(h).unwrap();
    eprintln!("windows {windows:?}\nrcvbuf {} grows {} rcv_rtt {:?}", info.rcvbuf, info.rcvbuf_grows, info.rcv_rtt);
    assert!(info.rcvbuf_grows > 0 && info.rcvbuf > 1 << 20, "grew with the rate: {}", info.rcvbuf);
    assert!(*windows.iter().max().unwrap() > 512 * 1024, "the window passed its initial 256 KiB: {windows:?}");
    assert!(info.rcvbuf <= 6 << 20, "bounded by tcp_rmem[2]");
    assert_eq!(info.rcv_dropped, 0);
    assert!(info.rcv_rtt >= dms(RTT) && info.rcv_rtt <= dms(3 * RTT), "the receiver's RTT {:?}", info.rcv_rtt);
    // Long enough, it stops at the bound.
    let mut p = Script::with(TcpConfig { quickacks: 1000, rcvbuf_max: 1 << 20, ..TcpConfig::default() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    rounds(&mut p, h, 14, true);
    assert_eq!(p.stack.tcp_info(h).unwrap().rcvbuf, 1 << 20);
}

#[test]
fn an_application_that_does_not_read_grows_nothing() {
    let mut p = Script::with(TcpConfig { quickacks: 1000, ..TcpConfig::default() });
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    let windows = rounds(&mut p, h, 8, false);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.rcvbuf, info.rcvbuf_grows), (256 * 1024, 0), "{windows:?}");
    assert!(windows.last().copied().unwrap() <= 128, "the window closed: {windows:?}");
}

#[test]
fn so_rcvbuf_before_connect_stops_autotuning_and_sets_the_scale() {
    let config = TcpConfig { quickacks: 1000, ..TcpConfig::default() };
    let mut p = Script::with(config);
    let h = p.established_scaled(1460, 7, 65_535, |o| o.set_rcvbuf(128 * 1024, &config));
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.rcvbuf, info.rcv_wscale), (256 * 1024, 3), "the scale of 256 KiB, as Linux's");
    rounds(&mut p, h, 10, true);
    assert_eq!(p.stack.tcp_info(h).unwrap().rcvbuf_grows, 0);
}

#[test]
fn so_rcvbuf_after_connect_is_honoured_and_stops_autotuning() {
    let config = TcpConfig { quickacks: 1000, ..TcpConfig::default() };
    let mut p = Script::with(config);
    let h = p.established_scaled(1460, 7, 65_535, |_| {});
    rounds(&mut p, h, 12, true);
    let grown = p.stack.tcp_info(h).unwrap().rcvbuf;
    assert!(grown > 1 << 20);
    let mut o = p.options(h);
    o.set_rcvbuf(100_000, &config);
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    p.flush();
    p.sent.clear();
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!(info.rcvbuf, 200_000, "the application's size (doubled, as Linux)");
    // An unrelated option later leaves the size alone.
    let mut o = p.options(h);
    o.nodelay = true;
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    assert_eq!(p.stack.tcp_info(h).unwrap().rcvbuf, 200_000);
}

#[test]
fn the_send_buffer_grows_with_the_congestion_window_unless_so_sndbuf_was_set() {
    for locked in [false, true] {
        let config = TcpConfig { quickacks: 1000, ..TcpConfig::default() };
        let mut p = Script::with(config);
        let h = p.established_scaled(1460, 7, 65_535, |o| {
            if locked {
                o.set_sndbuf(128 * 1024, &config);
            }
        });
        let mut t = p.now.as_nanos() / 1_000_000;
        for _ in 0..10 {
            // Keep the buffer full; the peer acknowledges each round's segments a RTT later,
            // every second one, as a Linux receiver does.
            while p.stack.tcp_send(h, &[9u8; 65_536]).unwrap_or(0) > 0 {}
            p.flush();
            let ends: Vec<u32> = std::iter::from_fn(|| p.sent.pop_front())
                .filter(|o| !o.payload.is_empty())
                .map(|o| o.seq + o.payload.len() as u32)
                .collect();
            t += RTT;
            p.run_until(t);
            for end in ends.iter().skip(1).step_by(2).chain(ends.last()) {
                p.inject(seg(".", 1001).ack(*end).win(65_535));
            }
        }
        let info = p.stack.tcp_info(h).unwrap();
        if locked {
            assert_eq!((info.sndbuf, info.sndbuf_grows), (256 * 1024, 0));
        } else {
            assert!(info.sndbuf > 256 * 1024 && info.sndbuf >= 2 * (info.cwnd as usize).min(2 << 20), "{info:?}");
            assert!(info.sndbuf <= 4 << 20, "bounded by tcp_wmem[2]");
        }
    }
}
