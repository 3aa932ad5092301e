//! Unit tests of the parsers and builders over captured kernel messages.

use super::*;

/// A message: header with `kind`, `flags`, `seq`, then `payload` (already padded).
fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
    let mut m = Vec::new();
    m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
    m.extend_from_slice(&kind.to_ne_bytes());
    m.extend_from_slice(&flags.to_ne_bytes());
    m.extend_from_slice(&seq.to_ne_bytes());
    m.extend_from_slice(&0u32.to_ne_bytes());
    m.extend_from_slice(payload);
    m
}

// Captured from Linux 6.18 (x86_64, so little-endian), in a namespace with a veth `v0`
// (ifindex 3) holding 10.99.0.1/24 brd 10.99.0.255 and a route 10.201.0.0/16 via 10.99.0.2
// mtu 1400.

/// RTM_NEWROUTE payload answering RTM_GETROUTE for 10.201.3.4 (`ip route get 10.201.3.4`).
#[rustfmt::skip]
const ROUTE_GET: [u8; 108] = [
    // rtmsg: AF_INET, dst_len 32, src_len 0, tos 0, table 254, proto 0, scope 0, RTN_UNICAST,
    // flags RTM_F_CLONED
    2, 32, 0, 0, 254, 0, 0, 1, 0, 2, 0, 0,
    8, 0, 15, 0, 254, 0, 0, 0,                    // RTA_TABLE 254
    8, 0, 1, 0, 10, 201, 3, 4,                    // RTA_DST 10.201.3.4
    8, 0, 4, 0, 3, 0, 0, 0,                       // RTA_OIF 3
    8, 0, 7, 0, 10, 99, 0, 1,                     // RTA_PREFSRC 10.99.0.1
    8, 0, 5, 0, 10, 99, 0, 2,                     // RTA_GATEWAY 10.99.0.2
    12, 0, 8, 0, 8, 0, 2, 0, 120, 5, 0, 0,        // RTA_METRICS { RTAX_MTU 1400 }
    8, 0, 25, 0, 0, 0, 0, 0,                      // RTA_UID 0
    36, 0, 12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RTA_CACHEINFO
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
];

/// RTM_NEWNEIGH payload answering RTM_GETNEIGH for 10.99.0.2 on ifindex 3, after
/// `ip neigh add 10.99.0.2 lladdr 02:11:22:33:44:55 dev v0 nud reachable`.
#[rustfmt::skip]
const NEIGH: [u8; 60] = [
    2, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 1,           // ndmsg: AF_INET, ifindex 3, NUD_REACHABLE, type 1
    8, 0, 1, 0, 10, 99, 0, 2,                     // NDA_DST 10.99.0.2
    10, 0, 2, 0, 2, 17, 34, 51, 68, 85, 0, 0,     // NDA_LLADDR (+2 padding)
    8, 0, 4, 0, 0, 0, 0, 0,                       // NDA_PROBES
    20, 0, 3, 0, 15, 0, 0, 0, 15, 0, 0, 0, 15, 0, 0, 0, 2, 0, 0, 0, // NDA_CACHEINFO
];

/// RTM_NEWADDR payload from an RTM_GETADDR dump: 10.99.0.1/24 brd 10.99.0.255 on ifindex 3.
#[rustfmt::skip]
const ADDR: [u8; 68] = [
    2, 24, 128, 0, 3, 0, 0, 0,                    // ifaddrmsg: AF_INET, /24, IFA_F_PERMANENT, ifindex 3
    8, 0, 1, 0, 10, 99, 0, 1,                     // IFA_ADDRESS
    8, 0, 2, 0, 10, 99, 0, 1,                     // IFA_LOCAL
    8, 0, 4, 0, 10, 99, 0, 255,                   // IFA_BROADCAST
    7, 0, 3, 0, 118, 48, 0, 0,                    // IFA_LABEL "v0" (+1 padding)
    8, 0, 8, 0, 128, 0, 0, 0,                     // IFA_FLAGS
    20, 0, 6, 0, 255, 255, 255, 255, 255, 255, 255, 255, 182, 76, 5, 0, 182, 76, 5, 0, // IFA_CACHEINFO
];

#[cfg(target_endian = "little")]
#[test]
fn parses_a_route_get_answer() {
    let route = parse_route(&ROUTE_GET).unwrap().unwrap();
    assert_eq!(route.prefix, Ipv4Addr::new(10, 201, 3, 4));
    assert_eq!(route.prefix_len, 32);
    assert_eq!(route.gateway, Some(Ipv4Addr::new(10, 99, 0, 2)));
    assert_eq!(route.prefsrc, Some(Ipv4Addr::new(10, 99, 0, 1)));
    assert_eq!(route.oif, 3);
    assert_eq!(route.table, RT_TABLE_MAIN);
    assert_eq!(route.kind, RTN_UNICAST);
    assert_eq!(route.mtu, Some(1400));
    // Newer kernels may flag the metrics nested: same meaning.
    let mut nested = ROUTE_GET;
    nested[55] |= 0x80;
    assert_eq!(parse_route(&nested).unwrap(), Some(route));
}

#[cfg(target_endian = "little")]
#[test]
fn parses_a_neighbour_and_an_address() {
    let n = parse_neighbour(&NEIGH).unwrap().unwrap();
    assert_eq!(n.ip, Ipv4Addr::new(10, 99, 0, 2));
    assert_eq!(n.mac, Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
    assert_eq!((n.ifindex, n.state), (3, NUD_REACHABLE));
    assert!(n.is_usable());
    assert!(!Neighbour { state: NUD_INCOMPLETE, ..n }.is_usable());
    assert!(!Neighbour { state: NUD_FAILED, ..n }.is_usable());
    assert!(!Neighbour { mac: None, ..n }.is_usable());

    let a = parse_address(&ADDR).unwrap().unwrap();
    let want = Address {
        ifindex: 3,
        addr: Ipv4Addr::new(10, 99, 0, 1),
        prefix_len: 24,
        broadcast: Some(Ipv4Addr::new(10, 99, 0, 255)),
    };
    assert_eq!(a, want);
}

#[test]
fn other_families_and_proxies_are_skipped() {
    let mut route = ROUTE_GET;
    route[0] = libc::AF_INET6 as u8;
    assert_eq!(parse_route(&route).unwrap(), None);
    let mut neigh = NEIGH;
    neigh[0] = libc::AF_BRIDGE as u8;
    assert_eq!(parse_neighbour(&neigh).unwrap(), None);
    let mut proxy = NEIGH;
    proxy[10] = NTF_PROXY;
    assert_eq!(parse_neighbour(&proxy).unwrap(), None);
    let mut addr = ADDR;
    addr[0] = libc::AF_INET6 as u8;
    assert_eq!(parse_address(&addr).unwrap(), None);
}

#[test]
fn garbled_attributes_are_errors() {
    // RTA_DST of 3 bytes.
    let mut route = ROUTE_GET.to_vec();
    route[20] = 7;
    assert!(parse_route(&route).is_err());
    // Attribute length running past the end.
    let mut neigh = NEIGH;
    neigh[20] = 200;
    assert!(parse_neighbour(&neigh).is_err());
    // Attribute length below its own header.
    let mut addr = ADDR;
    addr[8] = 2;
    assert!(parse_address(&addr).is_err());
    // Prefix longer than 32.
    let mut route = ROUTE_GET;
    route[1] = 33;
    assert!(parse_route(&route).is_err());
    // Neighbour without NDA_DST.
    assert!(parse_neighbour(&NEIGH[..12]).is_err());
    // Address without any address attribute.
    assert!(parse_address(&ADDR[..8]).is_err());
    // Nested metrics with a bad MTU size.
    let mut route = ROUTE_GET;
    route[56] = 7;
    assert!(parse_route(&route).is_err());
}

#[test]
fn every_truncation_is_handled_without_panic() {
    for len in 0..ROUTE_GET.len() {
        let r = parse_route(&ROUTE_GET[..len]);
        if len < RTMSG_LEN {
            assert!(r.is_err(), "{len}");
        }
    }
    for len in 0..NEIGH.len() {
        let r = parse_neighbour(&NEIGH[..len]);
        assert!(r.is_err() || len >= 20, "{len}: {r:?}");
    }
    for len in 0..ADDR.len() {
        let r = parse_address(&ADDR[..len]);
        assert!(r.is_err() || len >= 16, "{len}: {r:?}");
    }
    // Whole messages: every strict prefix is an error.
    let full = msg(RTM_NEWROUTE, 0, 1, &ROUTE_GET);
    for len in 1..full.len() {
        let mut out = Vec::new();
        assert!(parse_changes(&full[..len], &mut out).is_err(), "{len}");
    }
    let mut out = Vec::new();
    assert_eq!(parse_changes(&full, &mut out).unwrap(), 1);
}

#[test]
fn random_mutations_never_panic() {
    let mut datagram = msg(RTM_NEWROUTE, 0, 1, &ROUTE_GET);
    datagram.extend(msg(RTM_DELNEIGH, 0, 1, &NEIGH));
    datagram.extend(msg(RTM_NEWADDR, 0, 1, &ADDR));
    let mut out = Vec::new();
    assert_eq!(parse_changes(&datagram, &mut out).unwrap(), 3);
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..20_000 {
        let mut m = datagram.clone();
        for _ in 0..(next() % 4 + 1) {
            let at = next() as usize % m.len();
            m[at] = next() as u8;
        }
        let cut = next() as usize % (m.len() + 1);
        out.clear();
        let _ = parse_changes(&m[..cut], &mut out);
        let _ = parse_route(&m[NLMSG_HDRLEN.min(cut)..cut]);
        let _ = parse_neighbour(&m[..cut]);
        let _ = parse_address(&m[..cut]);
    }
}

#[test]
fn monitor_messages_map_to_changes() {
    let mut datagram = msg(RTM_NEWNEIGH, 0, 0, &NEIGH);
    datagram.extend(msg(RTM_DELNEIGH, 0, 0, &NEIGH));
    datagram.extend(msg(RTM_NEWROUTE, 0, 0, &ROUTE_GET));
    datagram.extend(msg(RTM_DELROUTE, 0, 0, &ROUTE_GET));
    datagram.extend(msg(RTM_NEWADDR, 0, 0, &ADDR));
    datagram.extend(msg(RTM_DELADDR, 0, 0, &ADDR));
    datagram.extend(msg(NLMSG_NOOP, 0, 0, &[]));
    let mut out = Vec::new();
    assert_eq!(parse_changes(&datagram, &mut out).unwrap(), 6);
    assert!(matches!(out[0], Change::Neighbour(_)));
    assert!(matches!(out[1], Change::NeighbourGone(_)));
    assert!(matches!(out[2], Change::Route(_)));
    assert!(matches!(out[3], Change::RouteGone(_)));
    assert!(matches!(out[4], Change::Address(_)));
    assert!(matches!(out[5], Change::AddressGone(_)));
}

#[test]
fn error_messages_carry_the_errno() {
    let mut payload = (-libc::ENETUNREACH).to_ne_bytes().to_vec();
    payload.extend_from_slice(&[0; 16]);
    assert_eq!(parse_error(&payload).unwrap_err().raw_os_error(), Some(libc::ENETUNREACH));
    assert!(parse_error(&0i32.to_ne_bytes()).is_ok());
    assert!(parse_error(&i32::MIN.to_ne_bytes()).is_err());
    assert_eq!(parse_error(&5i32.to_ne_bytes()).unwrap_err().kind(), io::ErrorKind::InvalidData);
    for len in 0..4 {
        assert_eq!(parse_error(&payload[..len]).unwrap_err().kind(), io::ErrorKind::InvalidData);
    }
}

#[test]
fn message_framing_rejects_bad_lengths() {
    let good = msg(NLMSG_DONE, 2, 9, &0i32.to_ne_bytes());
    let all: Vec<_> = Messages::new(&good).collect();
    assert_eq!(all.len(), 1);
    let m = all[0].as_ref().unwrap();
    assert_eq!((m.kind, m.flags, m.seq, m.payload.len()), (NLMSG_DONE, 2, 9, 4));
    // Length below the header, beyond the buffer, and a header cut short.
    for len in [0u32, 15, 21, u32::MAX] {
        let mut bad_len = good.clone();
        bad_len[0..4].copy_from_slice(&len.to_ne_bytes());
        let first = Messages::new(&bad_len).next().unwrap();
        assert!(first.is_err(), "{len}");
    }
    assert!(Messages::new(&good[..10]).next().unwrap().is_err());
    // Iteration stops after an error.
    let mut two = good.clone();
    two.extend_from_slice(&[1, 2, 3]);
    let all: Vec<_> = Messages::new(&two).collect();
    assert_eq!(all.len(), 2);
    assert!(all[1].is_err());
}

#[test]
fn requests_are_built_aligned() {
    let req = build_message(RTM_GETNEIGH, NLM_F_REQUEST, 42, &ndmsg(7), &[(NDA_DST, &[10, 99, 0, 2])]);
    assert_eq!(req.len(), NLMSG_HDRLEN + NDMSG_LEN + 8);
    let m = Messages::new(&req).next().unwrap().unwrap();
    assert_eq!((m.kind, m.flags, m.seq), (RTM_GETNEIGH, NLM_F_REQUEST, 42));
    let attrs: Vec<_> = attrs_after(m.payload, NDMSG_LEN, "x").unwrap().map(Result::unwrap).collect();
    assert_eq!(attrs, vec![(NDA_DST, &[10u8, 99, 0, 2][..])]);
    // An odd-sized attribute is padded.
    let req = build_message(RTM_GETROUTE, NLM_F_REQUEST, 1, &rtmsg(2, 32, 0), &[(99, &[1, 2, 3])]);
    assert_eq!(req.len() % 4, 0);
    assert_eq!(u16_at(&req, NLMSG_HDRLEN + RTMSG_LEN), Some(7));
}

#[test]
fn multipath_routes_take_the_first_nexthop() {
    #[rustfmt::skip]
    let mut payload = vec![
        2, 16, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // rtmsg: AF_INET /16 main, boot, universe, unicast
        8, 0, 1, 0, 10, 200, 0, 0,             // RTA_DST 10.200.0.0
        36, 0, 9, 0,                           // RTA_MULTIPATH, two nexthops
        16, 0, 0, 0, 3, 0, 0, 0, 8, 0, 5, 0, 10, 99, 0, 2, // rtnexthop ifindex 3 via 10.99.0.2
        16, 0, 0, 0, 4, 0, 0, 0, 8, 0, 5, 0, 10, 98, 0, 2, // rtnexthop ifindex 4 via 10.98.0.2
    ];
    if cfg!(target_endian = "little") {
        let r = parse_route(&payload).unwrap().unwrap();
        assert_eq!((r.prefix, r.prefix_len), (Ipv4Addr::new(10, 200, 0, 0), 16));
        assert_eq!((r.oif, r.gateway), (3, Some(Ipv4Addr::new(10, 99, 0, 2))));
    }
    payload[24] = 40; // rtnexthop longer than the attribute
    assert!(parse_route(&payload).is_err());
}

#[test]
fn udp_diag_messages_parse_and_short_ones_are_errors() {
    let mut m = [0u8; 72];
    m[0] = libc::AF_INET as u8;
    m[4..6].copy_from_slice(&7921u16.to_be_bytes());
    m[8..12].copy_from_slice(&[10, 99, 0, 1]);
    m[68..72].copy_from_slice(&12345u32.to_ne_bytes());
    let s = parse_udp_diag(&m).unwrap().unwrap();
    assert_eq!(s.local, std::net::SocketAddrV4::new(Ipv4Addr::new(10, 99, 0, 1), 7921));
    assert_eq!(s.inode, 12345);
    for len in 0..72 {
        assert!(parse_udp_diag(&m[..len]).is_err(), "{len} bytes");
    }
    m[0] = libc::AF_INET6 as u8;
    assert_eq!(parse_udp_diag(&m).unwrap(), None);
}

/// RTM_NEWMULTICAST payload (Linux 6.18, x86_64): ifindex 4 joined 239.9.9.9.
#[rustfmt::skip]
const GROUP: [u8; 36] = [
    2, 32, 128, 0, 4, 0, 0, 0,                    // ifaddrmsg: AF_INET, /32, IFA_F_PERMANENT, ifindex 4
    8, 0, 7, 0, 239, 9, 9, 9,                     // IFA_MULTICAST
    20, 0, 6, 0, 255, 255, 255, 255, 255, 255, 255, 255, 136, 83, 58, 0, 136, 83, 58, 0, // IFA_CACHEINFO
];

#[cfg(target_endian = "little")]
#[test]
fn parses_a_group_joined_and_left() {
    let g = Group { ifindex: 4, group: Ipv4Addr::new(239, 9, 9, 9) };
    assert_eq!(parse_group(&GROUP).unwrap(), Some(g));
    let mut datagram = msg(RTM_NEWMULTICAST, 0, 0, &GROUP);
    datagram.extend(msg(RTM_DELMULTICAST, 0, 0, &GROUP));
    let mut out = Vec::new();
    assert_eq!(parse_changes(&datagram, &mut out).unwrap(), 2);
    assert_eq!(out, vec![Change::Group(g), Change::GroupGone(g)]);
    for len in 0..GROUP.len() {
        assert!(parse_group(&GROUP[..len]).is_err() || len >= 16, "{len}");
    }
}
