//! ICMP errors about our connections (icmp.rs): fragmentation needed lowers the MSS and what
//! was in flight goes again in the new size; unreachables abort a connect, are soft errors
//! afterwards; RFC 5927's sequence check keeps blind ones out.

use crate::common::*;
use stack::tcp::{State, TcpError};

const UNREACH: u8 = 3;
const FRAG_NEEDED: u8 = 4;

/// The payload sizes and relative sequence numbers of data segments sent so far.
fn data_sent(p: &mut Script) -> Vec<(u32, usize)> {
    let mut v = Vec::new();
    while let Some(o) = p.sent.pop_front() {
        if !o.payload.is_empty() {
            v.push((o.seq, o.payload.len()));
        }
    }
    v
}

#[test]
fn fragmentation_needed_lowers_the_mss_and_sends_what_was_in_flight_again_in_the_new_size() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[5u8; 4 * 1460]).unwrap();
    assert_eq!(data_sent(&mut p), vec![(1, 1460), (1461, 1460), (2921, 1460), (4381, 1460)]);
    let cwnd = p.stack.tcp_info(h).unwrap().cwnd;
    p.run_until(120);
    p.inject_icmp(UNREACH, FRAG_NEEDED, 1200, 1);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.snd_mss, info.pmtu, info.pmtu_reductions), (1160, 1200, 1));
    assert_eq!(info.cwnd, cwnd, "no congestion response");
    // Everything in flight goes again at once, cut to the new MSS.
    let again = data_sent(&mut p);
    assert_eq!(again.first(), Some(&(1, 1160)));
    assert!(again.iter().all(|&(_, n)| n <= 1160), "{again:?}");
    assert!(p.stack.tcp_readiness(h).unwrap().writable);
    assert_eq!(p.stack.tcp_take_error(h).unwrap(), None, "no error for the application");
    // The peer acknowledges everything; new data is sent in the new size.
    p.inject(seg(".", 1001).ack(1 + 4 * 1460));
    p.send(h, &[6u8; 3000]).unwrap();
    assert_eq!(data_sent(&mut p), vec![(5841, 1160), (7001, 1160), (8161, 680)]);
}

#[test]
fn fragmentation_needed_with_sack_resends_in_the_new_size() {
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    p.inject_at(100, seg("S.", 1000).ack(1).mss(1460).sack_perm());
    p.expect();
    p.send(h, &[5u8; 3 * 1460]).unwrap();
    data_sent(&mut p);
    p.inject_icmp(UNREACH, FRAG_NEEDED, 1000, 1461);
    let again = data_sent(&mut p);
    assert_eq!(again.first(), Some(&(1, 960)), "{again:?}");
    assert!(again.iter().all(|&(_, n)| n <= 960), "{again:?}");
    let covered: usize = again.iter().map(|&(_, n)| n).sum();
    assert!(covered >= 3 * 1460, "all of it again: {again:?}");
}

#[test]
fn icmp_errors_outside_what_is_unacknowledged_or_raising_the_mtu_are_ignored() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[5u8; 1460]).unwrap();
    data_sent(&mut p);
    // RFC 5927: the quoted sequence number must be in snd_una..=snd_nxt.
    p.inject_icmp(UNREACH, FRAG_NEEDED, 1000, 1461 + 1);
    p.inject_icmp(UNREACH, FRAG_NEEDED, 1000, 0);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.snd_mss, info.icmp_out_of_window), (1460, 2));
    p.expect_none();
    // A "lower" MTU above ours changes nothing; one below 552 is taken as 552 (min_pmtu).
    p.inject_icmp(UNREACH, FRAG_NEEDED, 9000, 1);
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_mss, 1460);
    p.expect_none();
    p.inject_icmp(UNREACH, FRAG_NEEDED, 68, 1);
    let info = p.stack.tcp_info(h).unwrap();
    assert_eq!((info.pmtu, info.snd_mss), (552, 512));
    assert_eq!(data_sent(&mut p), vec![(1, 512), (513, 512), (1025, 436)]);
    // The same report again changes nothing more.
    p.inject_icmp(UNREACH, FRAG_NEEDED, 68, 1);
    assert!(data_sent(&mut p).is_empty());
    assert_eq!(p.stack.stats().tcp_icmp_ignored, 4);
}

#[test]
fn port_or_host_unreachable_aborts_a_connect() {
    for (code, err) in
        [(3u8, TcpError::ConnectionRefused), (1, TcpError::HostUnreachable), (0, TcpError::NetworkUnreachable)]
    {
        let mut p = Script::new();
        let h = p.connect();
        p.expect();
        p.inject_icmp(UNREACH, code, 0, 0);
        assert_eq!(p.state(h), State::Closed, "code {code}");
        assert_eq!(p.stack.tcp_take_error(h).unwrap(), Some(err));
        assert!(p.stack.tcp_readiness(h).unwrap().error || p.stack.tcp_readiness(h).unwrap().hangup);
        p.expect_silence_until(5_000);
    }
    // Time exceeded too (EHOSTUNREACH).
    let mut p = Script::new();
    let h = p.connect();
    p.expect();
    p.inject_icmp(11, 0, 0, 0);
    assert_eq!(p.stack.tcp_take_error(h).unwrap(), Some(TcpError::HostUnreachable));
}

#[test]
fn an_unreachable_on_an_established_connection_is_a_soft_error_reported_at_its_timeout() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, b"hello").unwrap();
    data_sent(&mut p);
    p.inject_icmp(UNREACH, 1, 0, 1);
    assert_eq!(p.state(h), State::Established, "soft: the connection keeps trying");
    assert_eq!(p.stack.tcp_take_error(h).unwrap(), None);
    assert!(!p.stack.tcp_readiness(h).unwrap().error);
    // The peer never answers: the retransmissions run out and the error is the ICMP one.
    p.run_until(2_000_000);
    assert_eq!(p.state(h), State::Closed);
    assert_eq!(p.stack.tcp_take_error(h).unwrap(), Some(TcpError::HostUnreachable));
}

#[test]
fn a_passive_handshake_is_dropped_for_host_unreachable_and_kept_for_port_unreachable() {
    let mut p = Script::new();
    let l = p.listen(8);
    p.inject(seg("S", 5000).mss(1460));
    assert_eq!(p.expect().flags, "S.");
    p.inject_icmp(UNREACH, 3, 0, 0);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 1), "port unreachable: kept");
    p.inject_icmp(UNREACH, 1, 0, 0);
    assert_eq!(p.stack.tcp_listen_queues(l).unwrap(), (0, 0), "host unreachable: dropped");
    p.expect_silence_until(10_000);
}

#[test]
fn malformed_or_foreign_icmp_is_counted_and_never_panics() {
    let mut p = Script::new();
    let h = p.established();
    // Every truncation of a valid message, and a bad checksum.
    let iss = p.iss[&PEER_PORT];
    let quoted = stack::testing::quoted_tcp(
        std::net::SocketAddrV4::new(OURS, OUR_PORT),
        std::net::SocketAddrV4::new(PEER, PEER_PORT),
        iss + 1,
    );
    let full = stack::testing::icmp_error_frame((PEER_MAC, PEER), (OUR_MAC, OURS), 3, 4, 1000, &quoted);
    for cut in 0..full.len() {
        p.stack.receive(p.now, &full[..cut], stack::RxChecksum::Unverified);
    }
    let mut bad = full.clone();
    bad[40] ^= 1;
    p.stack.receive(p.now, &bad, stack::RxChecksum::Unverified);
    // A quoted header of another protocol, another version, or for no connection of ours.
    for (at, value) in [(34 + 8 + 9, 17u8), (34 + 8, 0x65), (34 + 8 + 20, 0x99)] {
        let mut q = quoted;
        q[at - 42] = value;
        let f = stack::testing::icmp_error_frame((PEER_MAC, PEER), (OUR_MAC, OURS), 3, 4, 1000, &q);
        p.stack.receive(p.now, &f, stack::RxChecksum::Unverified);
    }
    // Echo requests and source quench are not for TCP.
    for kind in [8u8, 4] {
        let f = stack::testing::icmp_error_frame((PEER_MAC, PEER), (OUR_MAC, OURS), kind, 0, 0, &quoted);
        p.stack.receive(p.now, &f, stack::RxChecksum::Unverified);
    }
    p.flush();
    p.expect_none();
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_mss, 1460);
    let s = p.stack.stats();
    assert!(s.icmp_malformed >= 2 && s.icmp_ignored >= 3 && s.icmp_no_socket >= 1, "{s:?}");
    assert_eq!(s.tcp_icmp_taken, 0);
}

/// A path MTU learnt from ICMP holds for the destination for 10 minutes (Linux's route
/// exception, ip_rt_mtu_expires): a new connection to it sends in the smaller size from the
/// start; after that it is forgotten.
#[test]
fn a_learnt_path_mtu_starts_new_connections_to_that_peer_for_ten_minutes() {
    let mut p = Script::new();
    let h = p.established();
    p.send(h, &[5u8; 1460]).unwrap();
    data_sent(&mut p);
    p.inject_icmp(UNREACH, FRAG_NEEDED, 1200, 1);
    assert_eq!(p.stack.tcp_info(h).unwrap().snd_mss, 1160);
    let connect_from = |p: &mut Script, port: u16| {
        p.sent.clear();
        let c = p.stack.tcp_open();
        p.stack.tcp_bind(c, std::net::SocketAddrV4::new(OURS, port)).unwrap();
        p.stack.tcp_connect(c, std::net::SocketAddrV4::new(PEER, PEER_PORT), p.now).unwrap();
        p.flush();
        let syn = p.expect();
        assert_eq!((syn.flags.as_str(), syn.options.mss), ("S", Some(1460)), "we still announce the link's MSS");
        p.inject(seg("S.", 7000).dst_port(port).ack(1).mss(1460));
        p.sent.clear();
        p.stack.tcp_info(c).unwrap()
    };
    let info = connect_from(&mut p, OUR_PORT + 1);
    assert_eq!((info.snd_mss, info.pmtu), (1160, 1200));
    p.run_until(p.now.as_nanos() / 1_000_000 + 601_000);
    let info = connect_from(&mut p, OUR_PORT + 2);
    assert_eq!((info.snd_mss, info.pmtu), (1460, 1500), "forgotten after 10 minutes");
}

/// RFC 6069: a host or network unreachable about the head being retransmitted undoes one
/// backoff (the path lost it, not congestion), so the connection tries again sooner; a port
/// unreachable, or one about another segment, does not.
#[test]
fn an_unreachable_about_the_retransmitted_head_undoes_one_backoff() {
    let run = |icmp: Option<(u8, u32)>| {
        let mut p = Script::new();
        let h = p.established();
        p.send(h, b"hello").unwrap();
        data_sent(&mut p);
        let mut times = Vec::new();
        for _ in 0..3 {
            times.push(p.expect_by(100_000).ms());
        }
        if let Some((code, seq)) = icmp {
            p.run_until(times[2] + 100);
            p.inject_icmp(UNREACH, code, 0, seq);
        }
        times.push(p.expect_by(100_000).ms());
        (times, p.stack.tcp_info(h).unwrap().rto_reverts)
    };
    let (plain, _) = run(None);
    assert_eq!(plain, [400, 1_000, 2_200, 4_600], "RTO 300 ms, doubling");
    let (reverted, reverts) = run(Some((1, 1)));
    assert_eq!((reverted, reverts), (vec![400, 1_000, 2_200, 3_400], 1), "the fourth after 1.2 s, not 2.4 s");
    assert_eq!(run(Some((0, 1))).0[3], 3_400, "network unreachable too");
    assert_eq!(run(Some((3, 1))).0[3], 4_600, "port unreachable: no revert");
    assert_eq!(run(Some((1, 3))).0[3], 4_600, "not about the head: no revert");
}
