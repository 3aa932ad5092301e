//! Packet scripts for IPv4 and UDP: frames in at simulated times, what the sockets see, frames out.

use stack::route::Route;
use stack::testing::{lan_stack, Capture};
use stack::udp::{SendControl, UdpError, UdpOptions};
use stack::{Event, IfAddr, Instant, Interface, RxChecksum, SocketHandle, Stack, StackConfig};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

const OUR_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x01]);
const PEER_MAC: EthernetAddress = EthernetAddress([0x02, 0, 0, 0, 0, 0x02]);
const OURS: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const PEER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const T0: Instant = Instant::ZERO;

fn stack_with(mtu: usize) -> Stack {
    lan_stack(OURS, OUR_MAC, mtu, PEER, PEER_MAC, StackConfig::default())
}

fn stack() -> Stack {
    stack_with(1500)
}

/// Frames and kernel hand-offs a stack produced (jumbo frames fit).
fn capture() -> Capture {
    Capture { max_frame: 1518 + 9000, ..Capture::default() }
}

/// Options for a hand-built frame.
#[derive(Clone, Copy)]
struct F {
    dst_mac: EthernetAddress,
    src: SocketAddrV4,
    dst: SocketAddrV4,
    ident: u16,
    more: bool,
    offset: usize,
    bad_ip_csum: bool,
    bad_udp_csum: bool,
    zero_udp_csum: bool,
    proto: IpProtocol,
    tos: u8,
    ttl: u8,
}

fn f(src_port: u16, dst: SocketAddrV4) -> F {
    F {
        dst_mac: OUR_MAC,
        src: SocketAddrV4::new(PEER, src_port),
        dst,
        ident: 1,
        more: false,
        offset: 0,
        bad_ip_csum: false,
        bad_udp_csum: false,
        zero_udp_csum: false,
        proto: IpProtocol::UDP,
        tos: 0,
        ttl: 64,
    }
}

/// A whole UDP datagram's bytes (header + payload) with a correct checksum.
fn udp_datagram(o: &F, payload: &[u8]) -> Vec<u8> {
    let mut d = vec![0u8; 8 + payload.len()];
    let mut u = UdpPacket::new_unchecked(&mut d[..]);
    u.set_src_port(o.src.port());
    u.set_dst_port(o.dst.port());
    u.set_len((8 + payload.len()) as u16);
    u.payload_mut().copy_from_slice(payload);
    u.fill_checksum(*o.src.ip(), *o.dst.ip());
    if o.zero_udp_csum {
        u.set_checksum(0);
    } else if o.bad_udp_csum {
        let c = u.checksum();
        u.set_checksum(c ^ 0x0101);
    }
    d
}

/// An Ethernet frame carrying `ip_payload` (a UDP datagram or a fragment of one).
fn frame(o: &F, ip_payload: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; 14 + 20 + ip_payload.len()];
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..]);
    eth.set_dst_addr(o.dst_mac);
    eth.set_src_addr(PEER_MAC);
    eth.set_ethertype(EtherType::IPV4);
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[14..]);
    ip.set_version_and_header_len(4, 20);
    ip.set_total_len((20 + ip_payload.len()) as u16);
    ip.set_ident(o.ident);
    ip.set_flags_and_frag_offset(false, o.more, o.offset as u16);
    ip.set_ttl(o.ttl);
    ip.set_tos(o.tos);
    ip.set_protocol(o.proto);
    ip.set_src_addr(*o.src.ip());
    ip.set_dst_addr(*o.dst.ip());
    ip.fill_checksum();
    if o.bad_ip_csum {
        let c = ip.checksum();
        ip.set_checksum(c ^ 1);
    }
    buf[34..].copy_from_slice(ip_payload);
    buf
}

fn udp_frame(o: &F, payload: &[u8]) -> Vec<u8> {
    frame(o, &udp_datagram(o, payload))
}

fn at(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(OURS, port)
}

fn any(port: u16) -> SocketAddrV4 {
    SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, port)
}

fn bound(s: &mut Stack, addr: SocketAddrV4, opts: impl FnOnce(&mut UdpOptions)) -> SocketHandle {
    let h = s.udp_open();
    opts(s.udp_options_mut(h).unwrap());
    s.udp_bind(h, addr).unwrap();
    h
}

fn recv(s: &mut Stack, h: SocketHandle) -> Option<(Vec<u8>, SocketAddrV4)> {
    let mut buf = vec![0u8; 70_000];
    s.udp_recv(h, &mut buf, false).ok().map(|i| (buf[..i.copied].to_vec(), i.src))
}

#[test]
fn demux_prefers_connected_then_specific_then_wildcard() {
    let mut s = stack();
    let wild = bound(&mut s, any(53), |_| {});
    let mut s2 = stack();
    let wild2 = bound(&mut s2, any(53), |o| o.reuse_addr = true);
    let specific = bound(&mut s2, at(53), |o| o.reuse_addr = true);
    let connected = bound(&mut s2, at(53), |o| o.reuse_addr = true);
    s2.udp_connect(connected, SocketAddrV4::new(PEER, 7000)).unwrap();

    s2.receive(T0, &udp_frame(&f(7000, at(53)), b"to-connected"), RxChecksum::Unverified);
    s2.receive(T0, &udp_frame(&f(7001, at(53)), b"to-specific"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s2, connected).unwrap().0, b"to-connected");
    assert_eq!(recv(&mut s2, specific).unwrap().0, b"to-specific");
    assert!(recv(&mut s2, wild2).is_none());

    // Only a wildcard socket on the port: it gets everything for our address.
    s.receive(T0, &udp_frame(&f(9, at(53)), b"x"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s, wild).unwrap(), (b"x".to_vec(), SocketAddrV4::new(PEER, 9)));
    // No socket on the port: dropped and counted.
    s.receive(T0, &udp_frame(&f(9, at(54)), b"x"), RxChecksum::Unverified);
    assert_eq!(s.stats().udp_no_socket, 1);
}

#[test]
fn a_connected_socket_takes_only_its_peers_datagrams() {
    let mut s = stack();
    let h = bound(&mut s, any(5000), |_| {});
    s.udp_connect(h, SocketAddrV4::new(PEER, 6000)).unwrap();
    s.receive(T0, &udp_frame(&f(6001, at(5000)), b"stranger"), RxChecksum::Unverified);
    assert!(recv(&mut s, h).is_none());
    assert_eq!(s.stats().udp_no_socket, 1);
    s.receive(T0, &udp_frame(&f(6000, at(5000)), b"peer"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s, h).unwrap().0, b"peer");
    // getsockname shows the source address picked at connect.
    assert_eq!(s.udp_addresses(h).unwrap(), (Some(at(5000)), Some(SocketAddrV4::new(PEER, 6000))));
    s.udp_disconnect(h).unwrap();
    s.receive(T0, &udp_frame(&f(6001, at(5000)), b"anyone"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s, h).unwrap().0, b"anyone");
}

#[test]
fn reuseport_spreads_flows_and_keeps_each_flow_on_one_socket() {
    let mut s = stack();
    let socks: Vec<_> = (0..4).map(|_| bound(&mut s, any(8000), |o| o.reuse_port = true)).collect();
    let mut owner_of = std::collections::HashMap::new();
    for round in 0..2 {
        for port in 10_000..10_400u16 {
            s.receive(T0, &udp_frame(&f(port, at(8000)), &port.to_be_bytes()), RxChecksum::Unverified);
            let who: Vec<_> = socks.iter().filter(|h| recv(&mut s, **h).is_some()).copied().collect();
            assert_eq!(who.len(), 1, "a unicast datagram goes to exactly one socket");
            let first = *owner_of.entry(port).or_insert(who[0]);
            assert_eq!(first, who[0], "flow {port} moved between sockets in round {round}");
        }
    }
    for h in &socks {
        let n = owner_of.values().filter(|o| *o == h).count();
        assert!((50..150).contains(&n), "uneven spread: {n} of 400 flows on one socket");
    }
}

#[test]
fn reuseaddr_unicast_goes_to_the_newest_broadcast_and_multicast_to_all_members() {
    let mut s = stack();
    let old = bound(&mut s, any(9000), |o| o.reuse_addr = true);
    let new = bound(&mut s, any(9000), |o| {
        o.reuse_addr = true;
        o.multicast_all = false;
    });
    let member = bound(&mut s, any(9000), |o| o.reuse_addr = true);
    let group = Ipv4Addr::new(239, 1, 2, 3);
    s.udp_join(old, group).unwrap();
    s.udp_join(member, group).unwrap();
    assert_eq!(s.udp_join(member, group), Err(UdpError::Membership), "duplicate membership");

    s.receive(T0, &udp_frame(&f(1, at(9000)), b"uni"), RxChecksum::Unverified);
    let receivers: Vec<_> = [old, new, member].into_iter().filter(|h| recv(&mut s, *h).is_some()).collect();
    assert_eq!(receivers, vec![member], "unicast goes to one socket, the newest");

    let mut b = f(1, SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), 9000));
    b.dst_mac = EthernetAddress::BROADCAST;
    s.receive(T0, &udp_frame(&b, b"bcast"), RxChecksum::Unverified);
    for h in [old, new, member] {
        assert_eq!(recv(&mut s, h).unwrap().0, b"bcast");
    }
    let mut m = f(1, SocketAddrV4::new(group, 9000));
    m.dst_mac = EthernetAddress([0x01, 0x00, 0x5e, 1, 2, 3]);
    s.receive(T0, &udp_frame(&m, b"mcast"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s, old).unwrap().0, b"mcast");
    assert_eq!(recv(&mut s, member).unwrap().0, b"mcast");
    assert!(recv(&mut s, new).is_none(), "with IP_MULTICAST_ALL off, a socket that did not join gets no group traffic");
    s.udp_leave(member, group).unwrap();
    assert_eq!(s.udp_leave(member, group), Err(UdpError::Membership));
    // Without reuse flags a second bind is refused.
    let h = s.udp_open();
    assert_eq!(s.udp_bind(h, at(9000)), Err(UdpError::AddressInUse));
}

/// IP_MULTICAST_ALL (on by default): a wildcard socket of the port receives every group joined
/// on the interface, not only its own joins; off, only its own; a group nobody joined reaches
/// no one; the last member leaving (or closing) ends it.
#[test]
fn multicast_all_delivers_every_joined_group_to_the_ports_wildcard_sockets() {
    let mut s = stack();
    let member = bound(&mut s, any(9100), |o| o.reuse_addr = true);
    let all = bound(&mut s, any(9100), |o| o.reuse_addr = true);
    let own_only = bound(&mut s, any(9100), |o| {
        o.reuse_addr = true;
        o.multicast_all = false;
    });
    let (g1, g2) = (Ipv4Addr::new(239, 1, 1, 1), Ipv4Addr::new(239, 1, 1, 2));
    s.udp_join(member, g1).unwrap();
    let send = |s: &mut Stack, g: Ipv4Addr| {
        let o = g.octets();
        let m = F {
            dst_mac: EthernetAddress([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]]),
            ..f(1, SocketAddrV4::new(g, 9100))
        };
        s.receive(T0, &udp_frame(&m, b"m"), RxChecksum::Unverified);
    };
    let got = |s: &mut Stack| [member, all, own_only].map(|h| recv(s, h).is_some());
    send(&mut s, g1);
    assert_eq!(got(&mut s), [true, true, false]);
    send(&mut s, g2);
    assert_eq!(got(&mut s), [false, false, false], "nobody joined it");
    let other_port = bound(&mut s, any(9200), |_| {});
    s.udp_join(other_port, g2).unwrap();
    send(&mut s, g2);
    assert_eq!(got(&mut s), [true, true, false], "joined on the interface by a socket of another port");
    s.udp_close(other_port).unwrap();
    s.udp_leave(member, g1).unwrap();
    send(&mut s, g1);
    send(&mut s, g2);
    assert_eq!(got(&mut s), [false, false, false], "left and closed: joined no more");
    // A group a socket receives with a source filter (kept by its kernel socket) is never
    // the stack's to give it, as a member or through IP_MULTICAST_ALL; cleared, it is again.
    s.udp_join(member, g1).unwrap();
    s.udp_set_source_filtered(member, g1, true).unwrap();
    s.udp_set_source_filtered(all, g1, true).unwrap();
    send(&mut s, g1);
    assert_eq!(got(&mut s), [false, false, false], "source-filtered");
    assert_eq!(s.udp_source_filtered(all).unwrap(), &[g1]);
    s.udp_set_source_filtered(member, g1, false).unwrap();
    s.udp_set_source_filtered(all, g1, false).unwrap();
    send(&mut s, g1);
    assert_eq!(got(&mut s), [true, true, false], "filters gone");
}

#[test]
fn receive_checks_count_every_drop() {
    let mut s = stack();
    let h = bound(&mut s, any(7), |_| {});
    let good = f(1, at(7));
    let cases: Vec<(F, &str)> = vec![
        (F { bad_ip_csum: true, ..good }, "ip_bad_checksum"),
        (F { bad_udp_csum: true, ..good }, "udp_bad_checksum"),
        (F { dst_mac: EthernetAddress([2, 9, 9, 9, 9, 9]), ..good }, "rx_not_our_mac"),
        (F { dst: SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 77), 7), ..good }, "ip_not_ours"),
        (F { proto: IpProtocol(47), ..good }, "ip_unknown_protocol"),
    ];
    for (o, _) in &cases {
        s.receive(T0, &udp_frame(o, b"bad"), RxChecksum::Unverified);
    }
    let st = *s.stats();
    assert_eq!(
        [st.ip_bad_checksum, st.udp_bad_checksum, st.rx_not_our_mac, st.ip_not_ours, st.ip_unknown_protocol],
        [1; 5],
        "{st:?}"
    );
    assert!(recv(&mut s, h).is_none());
    // Truncated at every length: counted as malformed, never delivered, never a panic.
    let whole = udp_frame(&good, b"0123456789");
    for cut in 0..whole.len() {
        s.receive(T0, &whole[..cut], RxChecksum::Unverified);
    }
    assert!(recv(&mut s, h).is_none());
    // A zero UDP checksum means "none": accepted. A device-verified frame is not re-checked,
    // and a locally originated (partial) one has no layer-4 checksum to check.
    s.receive(T0, &udp_frame(&F { zero_udp_csum: true, ..good }, b"nocsum"), RxChecksum::Unverified);
    s.receive(T0, &udp_frame(&F { bad_udp_csum: true, ..good }, b"partial"), RxChecksum::Partial);
    assert_eq!(recv(&mut s, h).unwrap().0, b"nocsum");
    assert_eq!(recv(&mut s, h).unwrap().0, b"partial");
    s.receive(T0, &udp_frame(&good, b"ok"), RxChecksum::Unverified);
    assert_eq!(recv(&mut s, h).unwrap().0, b"ok");
}

#[test]
fn queue_overflow_drops_and_counts_and_peek_and_truncation_work() {
    let mut s = stack();
    let h = bound(&mut s, any(7), |_| {});
    s.udp_set_rcvbuf(h, 4 * (256 + 1000)).unwrap();
    for i in 0..10u8 {
        s.receive(Instant::from_nanos(u64::from(i)), &udp_frame(&f(1, at(7)), &[i; 1000]), RxChecksum::Unverified);
    }
    assert_eq!(s.stats().udp_rcvbuf_full, 6);
    assert_eq!(s.udp_drops(h).unwrap(), 6);
    assert_eq!(s.udp_next_len(h).unwrap(), 1000);
    let mut small = [0u8; 10];
    let peeked = s.udp_recv(h, &mut small, true).unwrap();
    assert_eq!((peeked.len, peeked.copied, small), (1000, 10, [0; 10]));
    let info = s.udp_recv(h, &mut small, false).unwrap();
    assert_eq!((info.len, info.timestamp), (1000, Instant::from_nanos(0)));
    assert_eq!(recv(&mut s, h).unwrap().0, vec![1u8; 1000]);
    // One Readable event per datagram queued (edge-triggered waiters see each), none for drops.
    let events: Vec<_> = std::iter::from_fn(|| s.poll_event()).collect();
    assert_eq!(events, vec![Event::Readable(h); 4]);
}

fn parse_sent(frame: &[u8]) -> (Ipv4Addr, Ipv4Addr, u8, bool, u16, Vec<u8>) {
    let eth = EthernetFrame::new_checked(frame).unwrap();
    let ip = Ipv4Packet::new_checked(eth.payload()).unwrap();
    assert!(ip.verify_checksum());
    let udp = UdpPacket::new_checked(ip.payload()).unwrap();
    assert!(udp.verify_checksum(ip.src_addr(), ip.dst_addr()) && udp.checksum() != 0);
    (ip.src_addr(), ip.dst_addr(), ip.ttl(), ip.dont_frag(), udp.src_port(), udp.payload().to_vec())
}

#[test]
fn send_builds_correct_frames_and_honours_options() {
    let mut s = stack();
    let h = bound(&mut s, any(4000), |_| {});
    let mut tx = capture();
    assert_eq!(s.udp_send(h, b"hello", Some(SocketAddrV4::new(PEER, 5)), &mut tx), Ok(5));
    let eth = EthernetFrame::new_checked(&tx.frames[0][..]).unwrap();
    assert_eq!((eth.src_addr(), eth.dst_addr()), (OUR_MAC, PEER_MAC));
    assert_eq!(parse_sent(&tx.frames[0]), (OURS, PEER, 64, true, 4000, b"hello".to_vec()));

    s.udp_options_mut(h).unwrap().ttl = 7;
    s.udp_send(h, b"", Some(SocketAddrV4::new(PEER, 5)), &mut tx).unwrap();
    assert_eq!(parse_sent(&tx.frames[1]).2, 7);

    let group = Ipv4Addr::new(239, 9, 9, 9);
    assert_eq!(
        s.udp_send(h, b"m", Some(SocketAddrV4::new(group, 5)), &mut tx),
        Err(UdpError::NetworkUnreachable),
        "a group with no source chosen and no route: the kernel's (ENETUNREACH there)"
    );
    s.udp_options_mut(h).unwrap().multicast_src = Some(OURS);
    s.udp_send(h, b"m", Some(SocketAddrV4::new(group, 5)), &mut tx).unwrap();
    let eth = EthernetFrame::new_checked(&tx.frames[2][..]).unwrap();
    assert_eq!(eth.dst_addr(), EthernetAddress([0x01, 0x00, 0x5e, 9, 9, 9]));
    assert_eq!(parse_sent(&tx.frames[2]).2, 1, "multicast TTL defaults to 1");

    let bcast = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 255), 5);
    assert_eq!(s.udp_send(h, b"b", Some(bcast), &mut tx), Err(UdpError::BroadcastDenied));
    s.udp_options_mut(h).unwrap().broadcast = true;
    s.udp_send(h, b"b", Some(bcast), &mut tx).unwrap();
    assert!(EthernetFrame::new_checked(&tx.frames[3][..]).unwrap().dst_addr().is_broadcast());
    s.udp_options_mut(h).unwrap().broadcast_via_kernel = true;
    assert_eq!(s.udp_send(h, b"b", Some(bcast), &mut tx), Err(UdpError::NetworkUnreachable), "the kernel's to loop");
    s.udp_options_mut(h).unwrap().broadcast_via_kernel = false;
    let limited = Some(SocketAddrV4::new(Ipv4Addr::BROADCAST, 5));
    assert_eq!(s.udp_send(h, b"l", limited, &mut tx), Err(UdpError::NetworkUnreachable), "no source, no route");
    let from_ours = SendControl { src: Some(OURS), ..Default::default() };
    s.udp_send_with(h, b"l", limited, &from_ours, &mut tx).unwrap();
    s.udp_send(h, b"", Some(SocketAddrV4::new(PEER, 5)), &mut tx).unwrap();

    assert_eq!(
        s.udp_send(h, b"x", Some(SocketAddrV4::new(Ipv4Addr::new(192, 0, 2, 1), 5)), &mut tx),
        Err(UdpError::NetworkUnreachable)
    );
    assert_eq!(s.udp_send(h, b"x", None, &mut tx), Err(UdpError::NoDestination));
    assert_eq!(
        s.udp_send(h, &vec![0; 65_508], Some(SocketAddrV4::new(PEER, 5)), &mut tx),
        Err(UdpError::MessageTooLong)
    );
    let unbound = s.udp_open();
    assert_eq!(s.udp_send(unbound, b"x", Some(SocketAddrV4::new(PEER, 5)), &mut tx), Err(UdpError::NotBound));
    tx.room = Some(0);
    assert_eq!(s.udp_send(h, b"x", Some(SocketAddrV4::new(PEER, 5)), &mut tx), Err(UdpError::WouldBlock));
    assert_eq!(s.stats().udp_sent, 6);
}

/// What recvmsg's control messages report comes with each datagram: its destination (a group
/// says which), the reply source, TOS, TTL, interface, and the drops before it (SO_RXQ_OVFL).
#[test]
fn each_datagram_keeps_its_header_facts_for_control_messages() {
    let mut s = stack();
    let h = bound(&mut s, any(53), |_| {});
    let group = Ipv4Addr::new(239, 1, 2, 3);
    s.udp_join(h, group).unwrap();
    s.receive(T0, &udp_frame(&F { tos: 0x2e, ttl: 9, ..f(1000, at(53)) }, b"u"), RxChecksum::Unverified);
    let m = F {
        dst_mac: EthernetAddress([0x01, 0x00, 0x5e, 1, 2, 3]),
        tos: 0x10,
        ttl: 3,
        ..f(1001, SocketAddrV4::new(group, 53))
    };
    s.receive(T0, &udp_frame(&m, b"g"), RxChecksum::Unverified);
    let mut buf = [0u8; 8];
    let i = s.udp_recv(h, &mut buf, false).unwrap();
    assert_eq!((i.dst, i.spec_dst, i.tos, i.ttl, i.ifindex, i.drops), (at(53), OURS, 0x2e, 9, 2, 0));
    let i = s.udp_recv(h, &mut buf, false).unwrap();
    assert_eq!(
        (i.dst, i.spec_dst, i.tos, i.ttl),
        (SocketAddrV4::new(group, 53), OURS, 0x10, 3),
        "a group's reply source is ours"
    );

    // Fill a small queue, drop two, drain: the next datagram carries the drop count.
    s.udp_set_rcvbuf(h, 2 * (256 + 100)).unwrap();
    for _ in 0..4 {
        s.receive(T0, &udp_frame(&f(1000, at(53)), &[7; 100]), RxChecksum::Unverified);
    }
    let mut big = [0u8; 200];
    assert_eq!(s.udp_recv(h, &mut big, false).unwrap().drops, 0);
    assert_eq!(s.udp_recv(h, &mut big, false).unwrap().drops, 0);
    s.receive(T0, &udp_frame(&f(1000, at(53)), b"after"), RxChecksum::Unverified);
    assert_eq!(s.udp_recv(h, &mut big, false).unwrap().drops, 2);
}

/// sendmsg's control messages win for one datagram; a source or interface that is not this
/// stack's is the kernel's to send; a socket bound to a group sends from our address.
#[test]
fn a_sends_control_messages_win_for_that_datagram_only() {
    let mut s = stack();
    let h = bound(&mut s, any(4000), |_| {});
    let mut tx = capture();
    let peer = Some(SocketAddrV4::new(PEER, 5));
    let tos_ttl = SendControl { tos: Some(0x10), ttl: Some(33), ..Default::default() };
    s.udp_send_with(h, b"a", peer, &tos_ttl, &mut tx).unwrap();
    s.udp_send(h, b"b", peer, &mut tx).unwrap();
    let header = |f: &[u8]| {
        let ip = Ipv4Packet::new_checked(&f[14..]).unwrap();
        (ip.src_addr(), ip.tos(), ip.ttl())
    };
    assert_eq!(header(&tx.frames[0]), (OURS, 0x10, 33));
    assert_eq!(header(&tx.frames[1]), (OURS, 0, 64), "only that datagram");
    let ours = SendControl { src: Some(OURS), ifindex: 2, ..Default::default() };
    s.udp_send_with(h, b"c", peer, &ours, &mut tx).unwrap();
    let route_picks = SendControl { src: Some(Ipv4Addr::UNSPECIFIED), ..Default::default() };
    s.udp_send_with(h, b"d", peer, &route_picks, &mut tx).unwrap();
    assert_eq!(header(&tx.frames[3]).0, OURS);
    for elsewhere in [
        SendControl { src: Some(Ipv4Addr::new(10, 0, 0, 77)), ..Default::default() },
        SendControl { ifindex: 9, ..Default::default() },
    ] {
        assert_eq!(s.udp_send_with(h, b"x", peer, &elsewhere, &mut tx), Err(UdpError::NetworkUnreachable));
    }
    let group = Ipv4Addr::new(239, 1, 2, 3);
    let g = bound(&mut s, SocketAddrV4::new(group, 4001), |_| {});
    s.udp_send(g, b"e", peer, &mut tx).unwrap();
    assert_eq!(header(&tx.frames[4]).0, OURS, "a group is never a source");
    s.udp_options_mut(h).unwrap().multicast_src = Some(Ipv4Addr::new(10, 0, 0, 77));
    let to_group = Some(SocketAddrV4::new(group, 5));
    assert_eq!(s.udp_send(h, b"f", to_group, &mut tx), Err(UdpError::NetworkUnreachable), "IP_MULTICAST_IF elsewhere");
    s.udp_options_mut(h).unwrap().multicast_src = Some(OURS);
    s.udp_send(h, b"f", to_group, &mut tx).unwrap();
}

/// IP_MULTICAST_LOOP (on by default): a datagram to a group also goes to the kernel whole with
/// TTL 0, which loops it to the host's members and never sends it; off, only the frame.
#[test]
fn a_group_datagram_is_looped_through_the_kernel_with_ttl_0_unless_loop_is_off() {
    let mut s = stack();
    let h = bound(&mut s, at(4000), |_| {});
    let mut tx = capture();
    let group = Some(SocketAddrV4::new(Ipv4Addr::new(239, 1, 2, 3), 5));
    s.udp_send(h, b"none", group, &mut tx).unwrap();
    assert_eq!((tx.frames.len(), tx.to_kernel.len()), (1, 0), "no member on the host: nothing to loop");
    s.set_host_group(Ipv4Addr::new(239, 1, 2, 3), true);
    tx.frames.clear();
    s.udp_send(h, b"loop", group, &mut tx).unwrap();
    assert_eq!((tx.frames.len(), tx.to_kernel.len()), (1, 1));
    let frame_ip = Ipv4Packet::new_checked(&tx.frames[0][14..]).unwrap();
    let looped = Ipv4Packet::new_checked(&tx.to_kernel[0][..]).unwrap();
    assert_eq!((frame_ip.ttl(), looped.ttl()), (1, 0));
    assert!(looped.verify_checksum());
    let (a, b) =
        (UdpPacket::new_checked(frame_ip.payload()).unwrap(), UdpPacket::new_checked(looped.payload()).unwrap());
    assert_eq!(
        (a.src_port(), a.dst_port(), a.payload()),
        (b.src_port(), b.dst_port(), b.payload()),
        "the same datagram"
    );
    assert!(!b.verify_checksum(looped.src_addr(), looped.dst_addr()), "a leaked copy is dropped by its receivers");
    s.udp_send(h, b"uni", Some(SocketAddrV4::new(PEER, 5)), &mut tx).unwrap();
    assert_eq!(tx.to_kernel.len(), 1, "unicast is not looped");
    s.udp_options_mut(h).unwrap().multicast_ttl = 0;
    s.udp_send(h, b"host", group, &mut tx).unwrap();
    assert_eq!((tx.frames.len(), tx.to_kernel.len()), (2, 2), "TTL 0 with a member here: the loop only");
    s.set_host_group(Ipv4Addr::new(239, 1, 2, 3), false);
    s.udp_send(h, b"wire", group, &mut tx).unwrap();
    assert_eq!((tx.frames.len(), tx.to_kernel.len()), (3, 2), "TTL 0 and no member here: the wire, as Linux");
    s.set_host_group(Ipv4Addr::new(239, 1, 2, 3), true);
    tx.frames.pop();
    s.udp_options_mut(h).unwrap().multicast_ttl = 1;
    s.udp_options_mut(h).unwrap().multicast_loop = false;
    s.udp_send(h, b"no", group, &mut tx).unwrap();
    assert_eq!((tx.frames.len(), tx.to_kernel.len()), (3, 2));
    assert_eq!((s.stats().udp_looped, s.stats().tx_to_kernel), (2, 0));
}

#[test]
fn a_gateway_route_sends_to_the_gateways_mac_and_an_unknown_neighbour_goes_via_the_kernel() {
    let mut s = stack();
    let gw = Ipv4Addr::new(10, 0, 0, 254);
    s.routes_mut().insert(Route {
        prefix: Ipv4Addr::new(0, 0, 0, 0),
        prefix_len: 0,
        gateway: Some(gw),
        src: None,
        mtu: None,
    });
    let h = bound(&mut s, any(4000), |_| {});
    let far = SocketAddrV4::new(Ipv4Addr::new(203, 0, 113, 9), 53);
    let mut tx = capture();
    s.udp_send(h, b"q", Some(far), &mut tx).unwrap();
    assert!(tx.frames.is_empty());
    assert_eq!(tx.to_kernel.len(), 1, "the whole IP packet goes to the kernel");
    let ip = Ipv4Packet::new_checked(&tx.to_kernel[0][..]).unwrap();
    assert!(ip.verify_checksum());
    assert_eq!((ip.src_addr(), ip.dst_addr()), (OURS, *far.ip()));
    assert_eq!(s.poll_event(), Some(Event::NeighbourMissing(gw)), "the gateway's MAC is what is missing");
    assert_eq!(s.stats().tx_to_kernel, 1);
    let gw_mac = EthernetAddress([2, 0, 0, 0, 0, 0xfe]);
    s.neighbours_mut().insert(gw, gw_mac);
    s.udp_send(h, b"q", Some(far), &mut tx).unwrap();
    assert_eq!(EthernetFrame::new_checked(&tx.frames[0][..]).unwrap().dst_addr(), gw_mac);
}

#[test]
fn large_datagrams_fragment_and_reassemble_byte_exact() {
    let (mut a, mut b) = (stack(), stack());
    // b plays the peer: its address is PEER and it knows our MAC.
    *b.interface_mut() = Interface { mac: PEER_MAC, addrs: vec![IfAddr::new(PEER, 24)], mtu: 1500, ifindex: 2 };
    b.neighbours_mut().insert(OURS, OUR_MAC);
    let ha = bound(&mut a, any(1000), |_| {});
    let hb = bound(&mut b, any(2000), |_| {});
    for len in [1472usize, 1473, 2952, 2953, 4000, 65_507] {
        let payload: Vec<u8> = (0..len).map(|i| (i * 7 + len) as u8).collect();
        let mut tx = capture();
        a.udp_send(ha, &payload, Some(SocketAddrV4::new(PEER, 2000)), &mut tx).unwrap();
        let expect_frames = if len <= 1472 { 1 } else { (len + 8).div_ceil(1480) };
        assert_eq!(tx.frames.len(), expect_frames, "{len} bytes");
        for fr in &tx.frames {
            assert!(fr.len() <= 1514);
            let ip = Ipv4Packet::new_checked(&fr[14..]).unwrap();
            assert_eq!(ip.dont_frag(), len <= 1472, "DF only on unfragmented datagrams");
        }
        // Deliver in reverse order: reassembly does not care.
        for fr in tx.frames.iter().rev() {
            b.receive(T0, fr, RxChecksum::Unverified);
        }
        let (got, from) = recv(&mut b, hb).unwrap_or_else(|| panic!("{len}-byte datagram lost: {:?}", b.stats()));
        assert_eq!(from, SocketAddrV4::new(OURS, 1000));
        assert!(got == payload, "{len}-byte datagram corrupted");
    }
    assert!(a.stats().frag_created > 0 && b.stats().frag_reassembled == 5);
    // IP_PMTUDISC_DO: never fragment.
    a.udp_options_mut(ha).unwrap().dont_fragment = true;
    let mut tx = capture();
    assert_eq!(a.udp_send(ha, &[0; 1473], Some(SocketAddrV4::new(PEER, 2000)), &mut tx), Err(UdpError::MessageTooLong));
    assert_eq!(a.udp_send(ha, &[0; 1472], Some(SocketAddrV4::new(PEER, 2000)), &mut tx), Ok(1472));
    // A route MTU below the interface's is honoured.
    a.udp_options_mut(ha).unwrap().dont_fragment = false;
    a.routes_mut().insert(Route { prefix: PEER, prefix_len: 32, gateway: None, src: None, mtu: Some(1000) });
    let mut tx = capture();
    a.udp_send(ha, &[0; 1500], Some(SocketAddrV4::new(PEER, 2000)), &mut tx).unwrap();
    assert!(tx.frames.len() == 2 && tx.frames.iter().all(|f| f.len() <= 1014));
}

#[test]
fn an_incomplete_datagram_expires_at_the_reassembly_timeout() {
    let mut s = stack();
    let h = bound(&mut s, any(7), |_| {});
    let o = f(1, at(7));
    let whole = udp_datagram(&o, &[5u8; 3000]);
    s.receive(T0, &frame(&F { more: true, ident: 9, ..o }, &whole[..1480]), RxChecksum::Unverified);
    let deadline = s.poll_timeout().expect("a timer for the datagram in progress");
    assert_eq!(deadline, T0 + Duration::from_secs(30));
    s.handle_timeout(deadline - Duration::from_millis(1));
    s.receive(
        deadline - Duration::from_millis(1),
        &frame(&F { more: true, ident: 9, offset: 1480, ..o }, &whole[1480..2960]),
        RxChecksum::Unverified,
    );
    s.handle_timeout(deadline);
    assert_eq!(s.poll_timeout(), None);
    // The last fragment arrives too late: nothing is delivered.
    s.receive(deadline, &frame(&F { ident: 9, offset: 2960, ..o }, &whole[2960..]), RxChecksum::Unverified);
    assert!(recv(&mut s, h).is_none());
    assert!(s.stats().frag_dropped >= 1);
}
