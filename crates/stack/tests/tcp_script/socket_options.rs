//! Socket options with Linux's behaviour: TCP_USER_TIMEOUT, TCP_CORK and MSG_MORE, TCP_MAXSEG,
//! TCP_NOTSENT_LOWAT, SO_RCVLOWAT, TCP_DEFER_ACCEPT, SO_REUSEPORT, urgent data, receive flags,
//! TCP_CONGESTION, and what accepted connections inherit from their listener.

use crate::common::*;
use stack::tcp::{State, TcpError};
use std::time::Duration;

// ---- TCP_USER_TIMEOUT ------------------------------------------------------------------------

/// Data unacknowledged for the user timeout aborts the connection with ETIMEDOUT, on time:
/// the RTO timer is clamped to the timeout's end (tcp_clamp_rto_to_user_timeout).
#[test]
fn user_timeout_aborts_unacknowledged_data_on_time() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.user_timeout = Some(dms(1_000)));
    p.send(h, b"hello").unwrap();
    assert_eq!(p.expect().ms(), 100);
    // RTO 300 ms (one 100 ms sample), doubling: 400, then 1,000; the next would be 2,200.
    let times: Vec<u64> = (0..2).map(|_| p.expect_by(1_099).ms()).collect();
    assert_eq!(times, vec![400, 1_000]);
    p.run_until(1_099);
    assert_eq!(p.state(h), State::Established);
    p.run_until(1_100);
    assert_eq!(p.state(h), State::Closed, "aborted 1,000 ms after the first transmission");
    p.expect_none();
    assert_eq!(p.recv(h, 10), Err(TcpError::TimedOut));
}

/// connect gives up after the user timeout, before tcp_syn_retries runs out.
#[test]
fn user_timeout_bounds_connect() {
    let mut p = Script::new();
    let h = p.connect_with(|o| o.user_timeout = Some(dms(2_500)));
    assert_eq!(p.expect().flags, "S");
    assert_eq!(p.expect_by(2_400).ms(), 1_000);
    p.run_until(2_499);
    assert_eq!(p.state(h), State::SynSent);
    p.run_until(2_500);
    assert_eq!(p.state(h), State::Closed);
    p.expect_none();
    assert_eq!(p.stack.tcp_take_error(h), Ok(Some(TcpError::TimedOut)));
}

/// A listener's user timeout does not cut its handshakes short: the SYN-ACK is retried by
/// its own timer, as Linux's request sockets are.
#[test]
fn user_timeout_of_a_listener_leaves_syn_ack_retries_alone() {
    let mut p = Script::new();
    let l = p.stack.tcp_open();
    set(&mut p, l, |o| o.user_timeout = Some(dms(500)));
    p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
    p.stack.tcp_listen(l, 4).unwrap();
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    let retries: Vec<u64> = (0..2).map(|_| p.expect_by(10_000).ms()).collect();
    assert_eq!(retries, vec![1_000, 3_000]);
    p.inject(seg(".", 5001).ack(1));
    assert!(p.stack.tcp_accept(l).is_ok());
}

/// Zero-window probes answered by a peer that keeps its window shut: without a user timeout
/// the connection lives on; with one, it ends that long after the first probe.
#[test]
fn user_timeout_bounds_answered_zero_window_probes() {
    for user_timeout in [None, Some(dms(1_000))] {
        let mut p = Script::new();
        let h = p.established_with(|o| o.user_timeout = user_timeout);
        p.inject_at(200, seg(".", 1001).ack(1).win(0));
        p.send(h, b"held").unwrap();
        p.expect_none();
        let mut probes = Vec::new();
        while p.now < ms(5_000) && p.state(h) == State::Established {
            let Some(next) = p.stack.poll_timeout() else { break };
            if next > ms(5_000) {
                break;
            }
            p.run_until(next.as_nanos() / 1_000_000);
            if let Some(probe) = p.sent.pop_front() {
                probes.push(probe.ms());
                p.inject(seg(".", 1001).ack(1).win(0));
                p.sent.clear();
            }
        }
        match user_timeout {
            None => {
                assert_eq!(probes, vec![500, 1_100, 2_300, 4_700]);
                assert_eq!(p.state(h), State::Established);
            }
            Some(_) => {
                assert_eq!(probes, vec![500, 1_100]);
                assert_eq!(p.now, ms(1_500), "1,000 ms after the first probe");
                assert_eq!(p.state(h), State::Closed);
                assert_eq!(p.recv(h, 10), Err(TcpError::TimedOut));
            }
        }
    }
}

/// Keepalive with a user timeout gives up once the peer has been silent that long and a probe
/// went unanswered, whatever TCP_KEEPCNT says.
#[test]
fn user_timeout_bounds_keepalive() {
    let mut p = Script::new();
    let h = p.established_with(|o| {
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(10);
        o.keep_interval = Duration::from_secs(2);
        o.keep_count = 9;
        o.user_timeout = Some(Duration::from_secs(13));
    });
    assert_eq!(p.expect_by(100_000).ms(), 10_100);
    assert_eq!(p.expect_by(100_000).ms(), 12_100);
    let rst = p.expect_by(100_000);
    assert_eq!((rst.flags.as_str(), rst.ms()), ("R.", 14_100), "14 s silent >= 13 s: no third probe");
    assert_eq!(p.recv(h, 10), Err(TcpError::TimedOut));
}

// ---- TCP_CORK and MSG_MORE -------------------------------------------------------------------

fn set(p: &mut Script, h: stack::SocketHandle, f: impl FnOnce(&mut stack::tcp::TcpSocketOptions)) {
    let mut o = p.options(h);
    f(&mut o);
    p.stack.tcp_set_options(h, o, p.now).unwrap();
    p.flush();
}

/// Corked, full segments go and the partial tail waits; uncorking sends it at once.
#[test]
fn cork_holds_partial_segments_until_cleared() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.cork = true);
    p.send(h, &[1u8; 100]).unwrap();
    p.expect_none();
    p.send(h, &[2u8; 1400]).unwrap();
    assert_eq!(p.expect().payload.len(), 1460, "a full segment goes");
    p.expect_none();
    set(&mut p, h, |o| o.cork = false);
    let tail = p.expect();
    assert_eq!((tail.seq, tail.payload.len()), (1461, 40), "uncorking pushes the tail at once");
}

/// There is no cork timer in Linux, but with nothing in flight the probe timer sends the
/// held tail one RTO later (300 ms here): the "200 ms ceiling" of tcp(7).
#[test]
fn corked_tail_goes_with_the_probe_timer_when_nothing_is_in_flight() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.cork = true);
    p.send(h, &[1u8; 100]).unwrap();
    p.expect_none();
    let d = p.expect_by(10_000);
    assert_eq!((d.ms(), d.payload.len()), (400, 100));
    // Acknowledged, the next hold waits the base interval again.
    p.inject_at(500, seg(".", 1001).ack(101));
    p.send(h, &[2u8; 10]).unwrap();
    p.expect_none();
    assert_eq!(p.expect_by(10_000).ms(), 800);
}

/// Setting TCP_NODELAY while corked flushes what is held once (tcp(7)); cork still holds
/// later writes.
#[test]
fn nodelay_set_while_corked_flushes_once() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.cork = true);
    p.send(h, &[1u8; 100]).unwrap();
    p.expect_none();
    set(&mut p, h, |o| o.nodelay = true);
    assert_eq!(p.expect().payload.len(), 100);
    p.send(h, &[2u8; 100]).unwrap();
    p.expect_none();
}

/// MSG_MORE holds the partial segment of its call; the next send without it pushes all.
#[test]
fn msg_more_holds_its_call_then_the_next_send_pushes() {
    let mut p = Script::new();
    let h = p.established();
    let more = stack::tcp::SendFlags { more: true, ..Default::default() };
    assert_eq!(p.stack.tcp_send_with(h, &[1u8; 100], more), Ok(100));
    p.flush();
    p.expect_none();
    assert_eq!(p.stack.tcp_send_with(h, &[2u8; 100], more), Ok(100));
    p.flush();
    p.expect_none();
    p.send(h, &[3u8; 50]).unwrap();
    let d = p.expect();
    assert_eq!((d.seq, d.payload.len()), (1, 250), "one segment for the three calls");
}

// ---- TCP_MAXSEG ------------------------------------------------------------------------------

/// The values Linux's tcp_setsockopt accepts.
#[test]
fn maxseg_accepts_88_to_32767_or_zero() {
    let mut o = stack::tcp::TcpSocketOptions::new(&stack::tcp::TcpConfig::default());
    for bad in [-1, 1, 87, 32_768, 65_535] {
        assert_eq!(o.set_max_seg(bad), Err(TcpError::InvalidArgument), "{bad}");
    }
    assert_eq!(o.set_max_seg(88), Ok(()));
    assert_eq!(o.max_seg, Some(88));
    assert_eq!(o.set_max_seg(32_767), Ok(()));
    assert_eq!(o.set_max_seg(0), Ok(()));
    assert_eq!(o.max_seg, None);
}

/// Set before connect, TCP_MAXSEG caps the MSS our SYN announces and the one we send with;
/// getsockopt answers as Linux in each state.
#[test]
fn maxseg_caps_the_announced_and_the_sending_mss() {
    let mut p = Script::new();
    let h = p.stack.tcp_open();
    assert_eq!(p.stack.tcp_max_seg(h), Ok(536), "TCP_MSS_DEFAULT before anything");
    let h = p.connect_with(|o| o.max_seg = Some(1000));
    let syn = p.expect();
    assert_eq!(syn.options.mss, Some(1000));
    assert_eq!(p.stack.tcp_max_seg(h), Ok(1000 - 12), "SYN_SENT: less the timestamp option offered");
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460));
    p.expect();
    assert_eq!(p.stack.tcp_max_seg(h), Ok(1000));
    p.send(h, &[7u8; 3000]).unwrap();
    let sizes: Vec<usize> = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.payload.len()).collect();
    assert_eq!(sizes, vec![1000, 1000, 1000]);
    // Set on a connection: stored, the MSS in use unchanged (as Linux).
    set(&mut p, h, |o| o.max_seg = Some(500));
    assert_eq!(p.stack.tcp_max_seg(h), Ok(1000));

    let mut q = Script::new();
    let h = q.connect();
    q.expect();
    q.inject_at(100, seg("S.", 1000).ack(1).mss(700));
    assert_eq!(q.stack.tcp_max_seg(h), Ok(700), "the peer's smaller MSS");
}

/// A listener's TCP_MAXSEG caps its SYN-ACK's MSS, and getsockopt on it returns it.
#[test]
fn maxseg_on_a_listener_caps_the_syn_ack() {
    let mut p = Script::new();
    let l = p.stack.tcp_open();
    set(&mut p, l, |o| o.max_seg = Some(600));
    p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
    p.stack.tcp_listen(l, 8).unwrap();
    assert_eq!(p.stack.tcp_max_seg(l), Ok(600));
    p.inject(seg("S", 5000).mss(1460));
    let synack = p.expect();
    assert_eq!(synack.options.mss, Some(600));
    p.inject(seg(".", 5001).ack(1));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.stack.tcp_max_seg(c), Ok(600));
}

// ---- TCP_NOTSENT_LOWAT and SIOCOUTQNSD --------------------------------------------------------

/// With TCP_NOTSENT_LOWAT a connection is writable only while fewer bytes than the mark wait
/// unsent; an ACK that lets them go makes it writable again (with its event).
#[test]
fn notsent_lowat_gates_writability_on_unsent_bytes() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.notsent_lowat = Some(1_000));
    assert!(p.stack.tcp_readiness(h).unwrap().writable);
    p.send(h, &[1u8; 20_000]).unwrap();
    let sent: usize = std::iter::from_fn(|| p.sent.pop_front()).map(|o| o.payload.len()).sum();
    assert_eq!(sent, 10 * 1460, "the initial window");
    assert_eq!(p.stack.tcp_unsent(h), Ok(20_000 - 14_600));
    assert_eq!(p.stack.tcp_send_queued(h), Ok(20_000));
    assert!(!p.stack.tcp_readiness(h).unwrap().writable, "5,400 unsent >= 1,000");
    while p.stack.poll_event().is_some() {}
    p.inject_at(200, seg(".", 1001).ack(1 + 14_600));
    assert_eq!(p.stack.tcp_unsent(h), Ok(0));
    assert!(p.stack.tcp_readiness(h).unwrap().writable);
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Writable(h)));

    let mut q = Script::new();
    let h = q.established();
    q.send(h, &[1u8; 20_000]).unwrap();
    assert!(q.stack.tcp_readiness(h).unwrap().writable, "without the option, buffer room is enough");
    let l = q.listen(4);
    assert_eq!(q.stack.tcp_unsent(l), Err(TcpError::InvalidArgument));
}

// ---- SO_RCVLOWAT ------------------------------------------------------------------------------

/// Readable only once SO_RCVLOWAT bytes are, or at end of stream.
#[test]
fn rcvlowat_gates_readability() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.set_rcvlowat(100));
    while p.stack.poll_event().is_some() {}
    p.inject(seg("P.", 1001).ack(1).len(50));
    assert!(!p.stack.tcp_readiness(h).unwrap().readable, "50 < 100");
    assert_eq!(p.stack.poll_event(), None);
    assert_eq!(p.stack.tcp_readable_len(h), Ok(50));
    p.inject(seg("P.", 1051).ack(1).len(50));
    assert!(p.stack.tcp_readiness(h).unwrap().readable);
    assert_eq!(p.stack.poll_event(), Some(stack::Event::Readable(h)));
    assert_eq!(p.recv(h, 60).unwrap().len(), 60, "a recv returns what is there");
    assert!(!p.stack.tcp_readiness(h).unwrap().readable, "40 left");
    p.inject(seg("F.", 1101).ack(1));
    assert!(p.stack.tcp_readiness(h).unwrap().readable, "end of stream");
}

/// The setsockopt values as Linux turns them: 0 is 1, a negative value or one past half the
/// receive buffer is half the receive buffer.
#[test]
fn rcvlowat_values_follow_linux() {
    let config = stack::tcp::TcpConfig::default();
    let mut o = stack::tcp::TcpSocketOptions::new(&config);
    o.set_rcvbuf(10_000, &config);
    for (asked, got) in [(0, 1), (1, 1), (500, 500), (10_000, 10_000), (10_001, 10_000), (-1, 10_000)] {
        o.set_rcvlowat(asked);
        assert_eq!(o.rcvlowat, got, "{asked}");
    }
}

// ---- TCP_DEFER_ACCEPT -------------------------------------------------------------------------

fn deferring_listener(p: &mut Script, seconds: i32) -> stack::SocketHandle {
    let l = p.stack.tcp_open();
    set(p, l, |o| o.set_defer_accept(seconds, &stack::tcp::TcpConfig::default()));
    p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
    p.stack.tcp_listen(l, 8).unwrap();
    l
}

/// Seconds become SYN-ACK retransmissions and read back as Linux rounds them.
#[test]
fn defer_accept_seconds_round_as_linux() {
    let config = stack::tcp::TcpConfig::default();
    let mut o = stack::tcp::TcpSocketOptions::new(&config);
    for (secs, retrans, back) in [(0, 0, 0), (-5, 0, 0), (1, 1, 1), (2, 2, 3), (3, 2, 3), (5, 3, 7), (30, 5, 31)] {
        o.set_defer_accept(secs, &config);
        assert_eq!((o.defer_accept, o.defer_accept_secs(&config)), (retrans, back), "{secs} s");
    }
}

/// A bare final ACK leaves the handshake out of the accept queue; the first data completes it
/// and is readable after accept.
#[test]
fn defer_accept_queues_the_connection_when_data_arrives() {
    let mut p = Script::new();
    let l = deferring_listener(&mut p, 5);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject_at(100, seg(".", 5001).ack(1));
    p.expect_none();
    assert!(!p.stack.tcp_readiness(l).unwrap().readable, "a bare ACK is not enough");
    assert_eq!(p.stack.tcp_accept(l), Err(TcpError::WouldBlock));
    assert_eq!(p.stack.stats().tcp_defer_accept_drops, 1);
    p.inject_at(200, seg("P.", 5001).ack(1).data(b"GET /"));
    assert_eq!(p.expect().ack, Some(5006));
    assert!(p.stack.tcp_readiness(l).unwrap().readable);
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.recv(c, 100).unwrap(), b"GET /");
}

/// Waiting for data after a bare ACK, the SYN-ACK is not resent until the deferral's last
/// retransmission (at 3 s for 3 s: two retransmissions, 1 s then 2 s); the bare ACK answering
/// it is accepted.
#[test]
fn defer_accept_resends_the_syn_ack_at_the_end_and_accepts_the_next_bare_ack() {
    let mut p = Script::new();
    let l = deferring_listener(&mut p, 3);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject_at(100, seg(".", 5001).ack(1));
    let synack = p.expect_by(10_000);
    assert_eq!((synack.flags.as_str(), synack.ms()), ("S.", 3_000), "silent at 1 s");
    p.inject_at(3_100, seg(".", 5001).ack(1));
    assert!(p.stack.tcp_readiness(l).unwrap().readable, "accepted after the deferral");
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.state(c), State::Established);
}

/// Without a bare ACK the SYN-ACK is retried as usual; a handshake that never brings data is
/// dropped silently once retries and deferral are spent.
#[test]
fn defer_accept_drops_a_handshake_that_never_brings_data() {
    let mut p = Script::with(stack::tcp::TcpConfig { synack_retries: 2, ..Default::default() });
    let l = deferring_listener(&mut p, 1);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject_at(100, seg(".", 5001).ack(1));
    // Deferral of one retransmission: resent at 1 s; the ACK is lost; then up to 2 retries.
    let times: Vec<u64> = std::iter::from_fn(|| p.sent.pop_front().or_else(|| Some(p.expect_by(60_000))))
        .take_while(|o| o.flags == "S.")
        .take(2)
        .map(|o| o.ms())
        .collect();
    assert_eq!(times, vec![1_000, 3_000]);
    p.run_until(60_000);
    p.expect_none();
    assert_eq!(p.stack.tcp_listen_queues(l), Ok((0, 0)), "gone, without a RST");
}

// ---- SO_REUSEPORT -----------------------------------------------------------------------------

fn listener_with(
    p: &mut Script,
    backlog: usize,
    f: impl FnOnce(&mut stack::tcp::TcpSocketOptions),
) -> Result<stack::SocketHandle, TcpError> {
    let l = p.stack.tcp_open();
    set(p, l, f);
    p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, OUR_PORT))?;
    p.stack.tcp_listen(l, backlog)?;
    Ok(l)
}

/// Binding onto a listener's port needs SO_REUSEPORT on both sides.
#[test]
fn reuseport_needs_every_listener_to_set_it() {
    let mut p = Script::new();
    let plain = listener_with(&mut p, 8, |_| {}).unwrap();
    assert_eq!(listener_with(&mut p, 8, |o| o.reuse_port = true), Err(TcpError::AddressInUse));
    p.stack.tcp_close(plain, p.now).unwrap();
    listener_with(&mut p, 8, |o| o.reuse_port = true).unwrap();
    listener_with(&mut p, 8, |o| o.reuse_port = true).unwrap();
    assert_eq!(listener_with(&mut p, 8, |_| {}), Err(TcpError::AddressInUse));
}

/// Four listeners in a group share 1,000 handshakes about evenly, each connection in exactly
/// one accept queue; a closed member takes no more, the others take all.
#[test]
fn reuseport_spreads_syns_over_the_group() {
    let mut p = Script::new();
    let group: Vec<_> = (0..4).map(|_| listener_with(&mut p, 1_000, |o| o.reuse_port = true).unwrap()).collect();
    for port in 10_000..11_000u16 {
        p.inject(seg("S", 7000).src_port(port).mss(1460));
        assert_eq!(p.expect().flags, "S.");
        p.inject(seg(".", 7001).src_port(port).ack(1));
    }
    let mut seen = std::collections::HashSet::new();
    let mut shares = Vec::new();
    for &l in &group {
        let mut n = 0;
        while let Ok((c, remote)) = p.stack.tcp_accept(l) {
            assert!(seen.insert(remote.port()), "{remote} accepted twice");
            assert_eq!(p.state(c), State::Established);
            n += 1;
        }
        shares.push(n);
    }
    assert_eq!(seen.len(), 1_000);
    assert!(shares.iter().all(|&n| n > 180 && n < 320), "uneven: {shares:?}");
    // One member closes: the next handshakes go to the other three.
    p.stack.tcp_close(group[0], p.now).unwrap();
    for port in 20_000..20_100u16 {
        p.inject(seg("S", 7000).src_port(port).mss(1460));
        assert_eq!(p.expect().flags, "S.");
        p.inject(seg(".", 7001).src_port(port).ack(1));
    }
    let rest: usize = group[1..].iter().map(|&l| p.stack.tcp_listen_queues(l).unwrap().0).sum();
    assert_eq!(rest, 100);
}

// ---- Urgent data: MSG_OOB, SO_OOBINLINE, SIOCATMARK ----------------------------------------

use stack::tcp::{RecvFlags, RecvInto, SendFlags};

const OOB: RecvFlags = RecvFlags { peek: false, peek_offset: 0, oob: true };

fn recv_oob(p: &mut Script, h: stack::SocketHandle) -> Result<u8, TcpError> {
    let mut b = [0u8; 1];
    p.stack.tcp_recv_with(h, RecvInto::Buf(&mut b), OOB).map(|n| {
        assert_eq!(n, 1);
        b[0]
    })
}

/// The byte before the urgent pointer is urgent (Linux's reading): a read stops at it, it is
/// read alone with MSG_OOB, once, and reads of the stream skip it.
#[test]
fn urgent_byte_is_read_with_msg_oob_and_skipped_by_reads() {
    let mut p = Script::new();
    let h = p.established();
    assert_eq!(recv_oob(&mut p, h), Err(TcpError::InvalidArgument), "no urgent data");
    p.inject(seg("P.", 1001).ack(1).data(b"abcdeXfgh").urg(6));
    let r = p.stack.tcp_readiness(h).unwrap();
    assert!(r.readable && r.priority, "POLLPRI");
    assert!(!p.stack.tcp_at_mark(h).unwrap());
    assert_eq!(p.recv(h, 100).unwrap(), b"abcde", "a read stops at the mark");
    assert!(p.stack.tcp_at_mark(h).unwrap());
    assert_eq!(recv_oob(&mut p, h), Ok(b'X'));
    assert!(!p.stack.tcp_readiness(h).unwrap().priority);
    assert_eq!(recv_oob(&mut p, h), Err(TcpError::InvalidArgument), "read already");
    assert_eq!(p.recv(h, 100).unwrap(), b"fgh", "the urgent byte is not in the stream");
    assert!(!p.stack.tcp_at_mark(h).unwrap());
}

/// With SO_OOBINLINE the urgent byte is ordinary data; reads still stop at the mark.
#[test]
fn oobinline_keeps_the_urgent_byte_in_the_stream() {
    let mut p = Script::new();
    let h = p.established_with(|o| o.oob_inline = true);
    p.inject(seg("P.", 1001).ack(1).data(b"abcdeXfgh").urg(6));
    assert_eq!(p.recv(h, 100).unwrap(), b"abcde");
    assert!(p.stack.tcp_at_mark(h).unwrap());
    assert_eq!(recv_oob(&mut p, h), Err(TcpError::InvalidArgument));
    assert_eq!(p.recv(h, 100).unwrap(), b"Xfgh");
}

/// The pointer may arrive before its byte: MSG_OOB says EAGAIN until the byte comes.
#[test]
fn urgent_pointer_ahead_of_its_byte_is_eagain_until_it_arrives() {
    let mut p = Script::new();
    let h = p.established();
    p.inject(seg("P.", 1001).ack(1).data(b"ab").urg(5));
    assert_eq!(recv_oob(&mut p, h), Err(TcpError::WouldBlock));
    assert!(!p.stack.tcp_readiness(h).unwrap().priority);
    p.inject(seg("P.", 1003).ack(1).data(b"cdef"));
    assert!(p.stack.tcp_readiness(h).unwrap().priority);
    assert_eq!(recv_oob(&mut p, h), Ok(b'e'));
    assert_eq!(p.recv(h, 100).unwrap(), b"abcd");
    assert_eq!(p.recv(h, 100).unwrap(), b"f");
}

/// A newer urgent pointer replaces the older: the old byte becomes ordinary data (Linux).
#[test]
fn a_newer_urgent_byte_replaces_the_older() {
    let mut p = Script::new();
    let h = p.established();
    p.inject(seg("P.", 1001).ack(1).data(b"aX").urg(2));
    p.inject(seg("P.", 1003).ack(1).data(b"bY").urg(2));
    assert_eq!(p.recv(h, 100).unwrap(), b"aXb");
    assert_eq!(recv_oob(&mut p, h), Ok(b'Y'));
}

/// MSG_PEEK from an offset leaves the data; MSG_TRUNC consumes without copying and counts.
#[test]
fn peek_with_offset_and_trunc_follow_tcp_recvmsg() {
    let mut p = Script::new();
    let h = p.established();
    p.inject(seg("P.", 1001).ack(1).data(b"hello world"));
    let mut b = [0u8; 5];
    let peek = RecvFlags { peek: true, peek_offset: 6, oob: false };
    assert_eq!(p.stack.tcp_recv_with(h, RecvInto::Buf(&mut b), peek), Ok(5));
    assert_eq!(&b, b"world");
    let far = RecvFlags { peek: true, peek_offset: 11, oob: false };
    assert_eq!(p.stack.tcp_recv_with(h, RecvInto::Buf(&mut b), far), Err(TcpError::WouldBlock));
    let count = RecvFlags { peek: true, ..RecvFlags::default() };
    assert_eq!(p.stack.tcp_recv_with(h, RecvInto::Discard(100), count), Ok(11), "MSG_PEEK|MSG_TRUNC counts");
    assert_eq!(p.stack.tcp_recv_with(h, RecvInto::Discard(5), RecvFlags::default()), Ok(5));
    assert_eq!(p.stack.tcp_readable_len(h), Ok(6));
    assert_eq!(p.recv(h, 100).unwrap(), b" world");
}

/// MSG_OOB on send: URG with the pointer past the last byte, on every segment until the
/// urgent point is acknowledged, and Nagle does not hold the data.
#[test]
fn send_oob_sets_urg_until_acknowledged() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, b"first").unwrap();
    assert_eq!(p.expect().urg, None);
    let oob = SendFlags { oob: true, ..Default::default() };
    assert_eq!(p.stack.tcp_send_with(h, b"abc", oob), Ok(3));
    p.flush();
    let d = p.expect();
    assert_eq!((d.seq, d.payload.as_slice(), d.urg), (6, &b"abc"[..], Some(3)), "not held by Nagle");
    p.inject_at(200, seg(".", 1001).ack(6));
    p.inject_at(300, seg(".", 1001).ack(9));
    p.send(h, b"later").unwrap();
    assert_eq!(p.expect().urg, None, "the urgent point was acknowledged");
}

/// Two engines: MSG_OOB on one side, MSG_OOB and SIOCATMARK on the other.
#[test]
fn urgent_data_between_two_engines() {
    use stack::testing::{lan_stack, Capture};
    use stack::{RxChecksum, StackConfig};
    use std::net::{Ipv4Addr, SocketAddrV4};
    let (ip_a, ip_b) = (Ipv4Addr::new(10, 0, 0, 1), Ipv4Addr::new(10, 0, 0, 2));
    let mut a = lan_stack(ip_a, OUR_MAC, 1500, ip_b, PEER_MAC, StackConfig::default());
    let mut b = lan_stack(ip_b, PEER_MAC, 1500, ip_a, OUR_MAC, StackConfig::default());
    let now = ms(1);
    let shuttle = |a: &mut stack::Stack, b: &mut stack::Stack| loop {
        let (mut ca, mut cb) = (Capture::default(), Capture::default());
        a.transmit(now, &mut ca);
        b.transmit(now, &mut cb);
        if ca.frames.is_empty() && cb.frames.is_empty() {
            break;
        }
        ca.frames.iter().for_each(|f| b.receive(now, f, RxChecksum::Unverified));
        cb.frames.iter().for_each(|f| a.receive(now, f, RxChecksum::Unverified));
    };
    let l = b.tcp_open();
    b.tcp_bind(l, SocketAddrV4::new(ip_b, 80)).unwrap();
    b.tcp_listen(l, 4).unwrap();
    let c = a.tcp_open();
    a.tcp_bind(c, SocketAddrV4::new(ip_a, 5000)).unwrap();
    a.tcp_connect(c, SocketAddrV4::new(ip_b, 80), now).unwrap();
    shuttle(&mut a, &mut b);
    let (s, _) = b.tcp_accept(l).unwrap();
    a.tcp_send(c, b"hello").unwrap();
    a.tcp_send_with(c, b"!", SendFlags { oob: true, ..Default::default() }).unwrap();
    shuttle(&mut a, &mut b);
    a.tcp_send(c, b"world").unwrap();
    shuttle(&mut a, &mut b);
    assert!(b.tcp_readiness(s).unwrap().priority);
    let mut buf = [0u8; 64];
    assert_eq!(b.tcp_recv(s, &mut buf, false), Ok(5));
    assert_eq!(&buf[..5], b"hello");
    assert!(b.tcp_at_mark(s).unwrap());
    assert_eq!(b.tcp_recv_with(s, RecvInto::Buf(&mut buf), OOB), Ok(1));
    assert_eq!(buf[0], b'!');
    assert_eq!(b.tcp_recv(s, &mut buf, false), Ok(5));
    assert_eq!(&buf[..5], b"world");
}

// ---- TCP_CONGESTION ----------------------------------------------------------------------------

/// NewReno is "reno", CUBIC "cubic" (the default, as Linux's); an unknown name is ENOENT; the
/// choice survives on a live connection without losing the window.
#[test]
fn congestion_control_by_linux_name() {
    let mut p = Script::new();
    let h = p.established();
    assert_eq!(p.stack.tcp_congestion(h), Ok("cubic"));
    assert_eq!(p.stack.tcp_set_congestion(h, "vegas", p.now), Err(TcpError::NoSuchAlgorithm));
    assert_eq!(TcpError::NoSuchAlgorithm.errno(), 2);
    let cwnd = p.stack.tcp_info(h).unwrap().cwnd;
    assert_eq!(p.stack.tcp_set_congestion(h, "reno", p.now), Ok(()));
    assert_eq!(p.stack.tcp_congestion(h), Ok("reno"));
    assert_eq!(p.stack.tcp_info(h).unwrap().cwnd, cwnd, "the window carries over");
    assert_eq!(p.stack.tcp_set_congestion(h, "cubic", p.now), Ok(()));
    assert_eq!(p.stack.tcp_info(h).unwrap().cwnd, cwnd);
    let l = p.listen(4);
    assert_eq!(p.stack.tcp_congestion(l), Ok("cubic"));
    // The stack's default is the configuration's (the driver's reading of the namespace's
    // tcp_congestion_control).
    let mut p = Script::with(stack::tcp::TcpConfig {
        congestion: stack::tcp::congestion::Algorithm::NewReno,
        ..Default::default()
    });
    let h = p.established();
    assert_eq!(p.stack.tcp_congestion(h), Ok("reno"));
}

// ---- What accepted connections inherit ---------------------------------------------------------

/// An accepted connection starts with its listener's options, as Linux's clone of the
/// listening socket does (nodelay, keepalive, user timeout, low-water marks, TCP_MAXSEG,
/// SO_OOBINLINE, congestion control, TTL and TOS...), and behaves by them.
#[test]
fn accepted_connections_inherit_the_listeners_options() {
    let mut p = Script::new();
    let l = p.stack.tcp_open();
    set(&mut p, l, |o| {
        o.nodelay = true;
        o.keepalive = true;
        o.keep_idle = Duration::from_secs(30);
        o.user_timeout = Some(dms(5_000));
        o.notsent_lowat = Some(4_096);
        o.rcvlowat = 10;
        o.max_seg = Some(1_000);
        o.oob_inline = true;
        o.ttl = 7;
        o.tos = 0x10;
    });
    p.stack.tcp_bind(l, std::net::SocketAddrV4::new(OURS, OUR_PORT)).unwrap();
    p.stack.tcp_listen(l, 4).unwrap();
    p.inject(seg("S", 5000).mss(1460));
    let synack = p.expect();
    assert_eq!((synack.ttl, synack.tos, synack.options.mss), (7, 0x10, Some(1_000)));
    p.inject(seg(".", 5001).ack(1));
    let (c, _) = p.stack.tcp_accept(l).unwrap();
    assert_eq!(p.options(c), p.options(l));
    p.send(c, b"a").unwrap();
    p.send(c, b"b").unwrap();
    assert_eq!(std::iter::from_fn(|| p.sent.pop_front()).count(), 2, "TCP_NODELAY inherited");
}
