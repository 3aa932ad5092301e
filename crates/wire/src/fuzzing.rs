//! Fuzzing entry points: one per parser plus [`parse_frame`], which walks a frame the
//! way a receiver does. Each takes arbitrary bytes, goes through `new_checked`,
//! `Repr::parse` and every accessor, re-emits whatever parsed into a stack buffer and
//! checks that the result parses back to the same repr.
//!
//! They live in the library (not in the fuzz crate) so the same code runs under
//! cargo-fuzz, in the corpus replay test and in anything else that wants to throw bytes
//! at the parsers. They must never panic; an `assert!` firing here means a parser or
//! builder bug, which is exactly what a fuzzer should report.

use crate::arp::{ArpPacket, ArpRepr};
use crate::checksum::{self, ChecksumMode};
use crate::ethernet::{EtherType, EthernetFrame, EthernetRepr};
use crate::icmp::{IcmpPacket, IcmpRepr};
use crate::ipv4::{IpProtocol, Ipv4Packet, Ipv4Repr};
use crate::tcp::{TcpRepr, TcpSegment};
use crate::tcp_options::{RawOptionIter, TcpOptions};
use crate::udp::{UdpPacket, UdpRepr};
use core::hint::black_box;
use core::net::Ipv4Addr;

/// Pseudo-header addresses used when a UDP or TCP entry point gets no IPv4 header; the
/// seed corpus was captured between these two hosts, so its checksums verify.
pub const SRC_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 0, 1);
/// See [`SRC_ADDR`].
pub const DST_ADDR: Ipv4Addr = Ipv4Addr::new(10, 77, 1, 2);

/// Size of the stack buffer re-emission uses; larger packets are parsed but not re-emitted.
const SCRATCH: usize = 4096;

/// Ethernet header, VLAN tag and payload.
pub fn ethernet(data: &[u8]) {
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    black_box((
        frame.dst_addr().is_broadcast(),
        frame.src_addr().is_multicast(),
        frame.dst_addr().is_unicast(),
        frame.ethertype(),
        frame.vlan_tag().map(|t| t.to_tci()),
        frame.payload_ethertype(),
        frame.header_len(),
        frame.payload(),
    ));
    let repr = EthernetRepr::parse(&frame).expect("a checked frame always parses");
    let hl = repr.header_len();
    let mut buf = [0u8; 18];
    repr.emit(&mut EthernetFrame::new_unchecked(&mut buf[..hl])).expect("emit into exact header");
    assert_eq!(&buf[..hl], &data[..hl], "Ethernet re-emission must be exact");
}

/// ARP packet (the Ethernet payload).
pub fn arp(data: &[u8]) {
    let Ok(packet) = ArpPacket::new_checked(data) else {
        return;
    };
    black_box((
        packet.hardware_type(),
        packet.protocol_type(),
        packet.hardware_len(),
        packet.protocol_len(),
        packet.operation(),
        packet.source_hardware_addr(),
        packet.source_protocol_addr(),
        packet.target_hardware_addr(),
        packet.target_protocol_addr(),
        packet.packet_len(),
    ));
    let Ok(repr) = ArpRepr::parse(&packet) else {
        return;
    };
    let mut buf = [0u8; 28];
    repr.emit(&mut ArpPacket::new_unchecked(&mut buf[..])).expect("28-byte buffer");
    assert_eq!(&buf[..], &data[..28], "ARP re-emission must be exact");
}

/// IPv4 header (the Ethernet payload); returns the repr if it parsed, ignoring the
/// checksum.
fn ipv4_inner(data: &[u8]) -> Option<(Ipv4Repr, &[u8])> {
    let packet = Ipv4Packet::new_checked(data).ok()?;
    black_box((
        packet.version(),
        packet.header_len(),
        packet.tos(),
        packet.dscp(),
        packet.ecn(),
        packet.total_len(),
        packet.ident(),
        packet.reserved_flag(),
        packet.dont_frag(),
        packet.more_frags(),
        packet.frag_offset(),
        packet.is_fragment(),
        packet.ttl(),
        packet.protocol(),
        packet.checksum(),
        packet.src_addr(),
        packet.dst_addr(),
        packet.options(),
        packet.verify_checksum(),
    ));
    let verified = Ipv4Repr::parse(&packet, ChecksumMode::Verify);
    let repr = Ipv4Repr::parse(&packet, ChecksumMode::Ignore).ok()?;
    if let Ok(v) = verified {
        assert_eq!(v, repr);
    }
    let mut buf = [0u8; 20];
    repr.emit(&mut Ipv4Packet::new_unchecked(&mut buf[..])).expect("20-byte buffer");
    let again = Ipv4Packet::new_unchecked(&buf[..]);
    assert!(again.check_header_len().is_ok() && again.verify_checksum());
    assert_eq!(usize::from(again.total_len()), repr.buffer_len());
    // The emitted header alone is shorter than its total length, so compare fields.
    assert_eq!(Ipv4Repr::parse_quoted(&again), Ok(repr), "IPv4 re-emission must round-trip");
    let payload = data.get(usize::from(packet.header_len())..usize::from(packet.total_len()))?;
    assert_eq!(payload, packet.payload());
    Some((repr, payload))
}

/// IPv4 header (the Ethernet payload).
pub fn ipv4(data: &[u8]) {
    let _ = ipv4_inner(data);
}

/// ICMP message (the IPv4 payload).
pub fn icmp(data: &[u8]) {
    let Ok(packet) = IcmpPacket::new_checked(data) else {
        return;
    };
    black_box((
        packet.msg_type(),
        packet.msg_code(),
        packet.checksum(),
        packet.rest_of_header(),
        packet.echo_ident(),
        packet.echo_seq_no(),
        packet.next_hop_mtu(),
        packet.pointer(),
        packet.gateway(),
        packet.data(),
        packet.verify_checksum(),
    ));
    let _ = black_box(IcmpRepr::parse(&packet, ChecksumMode::Verify));
    let Ok(repr) = IcmpRepr::parse(&packet, ChecksumMode::Ignore) else {
        return;
    };
    let len = repr.buffer_len();
    if len > SCRATCH {
        return;
    }
    let mut buf = [0u8; SCRATCH];
    repr.emit(&mut IcmpPacket::new_unchecked(&mut buf[..len])).expect("emit into buffer_len bytes");
    let again = IcmpPacket::new_checked(&buf[..len]).expect("emitted ICMP is long enough");
    assert!(again.verify_checksum());
    assert_eq!(IcmpRepr::parse(&again, ChecksumMode::Verify), Ok(repr), "ICMP re-emission must round-trip");
}

fn udp_with(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(packet) = UdpPacket::new_checked(data) else {
        return;
    };
    black_box((
        packet.src_port(),
        packet.dst_port(),
        packet.len(),
        packet.is_empty(),
        packet.checksum(),
        packet.payload(),
        packet.verify_checksum(src, dst),
    ));
    let _ = black_box(UdpRepr::parse(&packet, src, dst, ChecksumMode::Verify));
    let Ok(repr) = UdpRepr::parse(&packet, src, dst, ChecksumMode::Ignore) else {
        return;
    };
    let len = repr.buffer_len();
    if len > SCRATCH {
        return;
    }
    let mut buf = [0u8; SCRATCH];
    buf[8..len].copy_from_slice(packet.payload());
    repr.emit(&mut UdpPacket::new_unchecked(&mut buf[..len]), src, dst).expect("emit into buffer_len bytes");
    let again = UdpPacket::new_checked(&buf[..len]).expect("emitted UDP is long enough");
    assert!(again.checksum() != 0 && again.verify_checksum(src, dst));
    assert_eq!(UdpRepr::parse(&again, src, dst, ChecksumMode::Verify), Ok(repr));
    assert_eq!(&buf[..6], &data[..6], "UDP ports and length must be re-emitted exactly");
}

/// UDP datagram (the IPv4 payload), with [`SRC_ADDR`]/[`DST_ADDR`] as pseudo-header.
pub fn udp(data: &[u8]) {
    udp_with(data, SRC_ADDR, DST_ADDR);
}

fn tcp_with(data: &[u8], src: Ipv4Addr, dst: Ipv4Addr) {
    let Ok(segment) = TcpSegment::new_checked(data) else {
        return;
    };
    black_box((
        segment.src_port(),
        segment.dst_port(),
        segment.seq_number(),
        segment.ack_number(),
        segment.header_len(),
        segment.reserved_bits(),
        segment.flags(),
        segment.window_len(),
        segment.checksum(),
        segment.urgent_at(),
        segment.payload(),
        segment.segment_len(),
        segment.verify_checksum(src, dst),
    ));
    let mut raw = RawOptionIter::new(segment.options());
    for opt in raw.by_ref() {
        black_box(opt);
    }
    black_box(raw.is_malformed());
    let options = TcpOptions::parse(segment.options());
    black_box((options.encoded_len(), options.sack_block_count(), options.is_empty()));
    let _ = black_box(TcpRepr::parse(&segment, src, dst, ChecksumMode::Verify));
    let Ok(repr) = TcpRepr::parse(&segment, src, dst, ChecksumMode::Ignore) else {
        return;
    };
    assert_eq!(repr.options, options);
    let len = repr.buffer_len();
    if len > SCRATCH {
        return;
    }
    let mut buf = [0u8; SCRATCH];
    let hl = repr.header_len();
    if hl <= crate::tcp::MAX_HEADER_LEN {
        buf[hl..len].copy_from_slice(segment.payload());
    }
    match repr.emit(&mut TcpSegment::new_unchecked(&mut buf[..len]), src, dst) {
        Ok(()) => {
            let again = TcpSegment::new_checked(&buf[..len]).expect("emitted TCP is long enough");
            assert!(again.verify_checksum(src, dst));
            assert_eq!(TcpRepr::parse(&again, src, dst, ChecksumMode::Verify), Ok(repr));
            assert_eq!(&buf[..8], &data[..8], "TCP ports and sequence number must be re-emitted exactly");
        }
        // Options parsed leniently may need more than 40 bytes in canonical form.
        Err(e) => assert_eq!(e, crate::Error::Malformed),
    }
}

/// TCP segment (the IPv4 payload), with [`SRC_ADDR`]/[`DST_ADDR`] as pseudo-header.
pub fn tcp(data: &[u8]) {
    tcp_with(data, SRC_ADDR, DST_ADDR);
}

/// A whole Ethernet frame, walked as a receiver would: Ethernet (and VLAN tag), then
/// ARP, or IPv4 and, for unfragmented packets, UDP, TCP or ICMP with the packet's own
/// addresses as pseudo-header.
pub fn parse_frame(data: &[u8]) {
    ethernet(data);
    let Ok(frame) = EthernetFrame::new_checked(data) else {
        return;
    };
    match frame.payload_ethertype() {
        EtherType::ARP => arp(frame.payload()),
        EtherType::IPV4 => {
            let Some((ip, payload)) = ipv4_inner(frame.payload()) else {
                return;
            };
            if ip.more_frags || ip.frag_offset != 0 {
                // Fragments go to reassembly, not straight to the transport layer.
                return;
            }
            black_box(checksum::pseudo_header(ip.src_addr, ip.dst_addr, ip.protocol, payload.len() as u16));
            match ip.protocol {
                IpProtocol::UDP => udp_with(payload, ip.src_addr, ip.dst_addr),
                IpProtocol::TCP => tcp_with(payload, ip.src_addr, ip.dst_addr),
                IpProtocol::ICMP => icmp(payload),
                _ => {}
            }
        }
        _ => {}
    }
}

/// The signature every entry point shares.
pub type EntryPoint = fn(&[u8]);

/// Every entry point by name, so the corpus replay and tooling can iterate them.
pub const TARGETS: &[(&str, EntryPoint)] = &[
    ("ethernet", ethernet),
    ("arp", arp),
    ("ipv4", ipv4),
    ("icmp", icmp),
    ("udp", udp),
    ("tcp", tcp),
    ("parse_frame", parse_frame),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    /// The layer of a fixture each entry point expects.
    fn layer(name: &str, frame: &[u8]) -> Option<std::vec::Vec<u8>> {
        let eth = EthernetFrame::new_checked(frame).ok()?;
        let l3 = eth.payload();
        let l4 = || {
            let ip = Ipv4Packet::new_checked(l3).ok()?;
            Some((ip.protocol(), ip.payload().to_vec()))
        };
        match name {
            "ethernet" | "parse_frame" => Some(frame.to_vec()),
            "arp" if eth.payload_ethertype() == EtherType::ARP => Some(l3.to_vec()),
            "ipv4" if eth.payload_ethertype() == EtherType::IPV4 => Some(l3.to_vec()),
            "icmp" => l4().filter(|(p, _)| *p == IpProtocol::ICMP).map(|(_, d)| d),
            "udp" => l4().filter(|(p, _)| *p == IpProtocol::UDP).map(|(_, d)| d),
            "tcp" => l4().filter(|(p, _)| *p == IpProtocol::TCP).map(|(_, d)| d),
            _ => None,
        }
    }

    #[test]
    fn every_prefix_of_every_fixture() {
        let mut runs = 0usize;
        for (target, entry) in TARGETS {
            for (_, frame) in fixtures::ALL {
                let Some(bytes) = layer(target, frame) else {
                    continue;
                };
                for cut in 0..=bytes.len() {
                    entry(&bytes[..cut]);
                    runs += 1;
                }
            }
        }
        assert!(runs > 10_000, "{runs}");
    }

    #[test]
    fn corrupted_fixtures() {
        // Flip each byte of each fixture in turn (a cheap deterministic mutation pass).
        for (_, frame) in fixtures::ALL.iter().filter(|(_, f)| f.len() < 200) {
            let mut copy = frame.to_vec();
            for i in 0..copy.len() {
                for mask in [0x01u8, 0x80, 0xff] {
                    copy[i] ^= mask;
                    parse_frame(&copy);
                    copy[i] ^= mask;
                }
            }
        }
    }
}
