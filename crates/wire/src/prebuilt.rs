//! Frames an application completes itself: the Ethernet, IPv4 and TCP headers of a segment
//! built ahead of time (`exasock_tcp_build_header`), whose payload is filled in at the last
//! moment. [`TcpFrameLayout::parse`] finds the headers; [`set_tcp_length`] and
//! [`fill_tcp_checksum`] are the two steps the caller takes once the payload is known
//! (`exasock_tcp_set_length`, `exasock_tcp_calc_checksum`).
//!
//! The original located the IPv4 and TCP headers from the end of the header block, assuming
//! neither carries options; a header here may carry TCP options (RFC 7323 timestamps), so
//! the headers are found from the front, and the block must end where the TCP header does.

use crate::checksum;
use crate::ethernet::EtherType;
use crate::ipv4::IpProtocol;
use crate::{Error, Result};
use core::net::Ipv4Addr;

/// Ethernet header length without and with one 802.1Q tag.
const ETH_LEN: usize = 14;
const VLAN_LEN: usize = 4;
/// Offsets inside the IPv4 header.
const IP_LENGTH: usize = 2;
const IP_CHECKSUM: usize = 10;
/// Offset of the checksum inside the TCP header.
const TCP_CHECKSUM: usize = 16;

/// Where the headers of an Ethernet/IPv4/TCP frame lie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpFrameLayout {
    /// Offset of the IPv4 header (after Ethernet and any VLAN tag).
    pub ip_at: usize,
    /// Offset of the TCP header.
    pub tcp_at: usize,
    /// Offset of the payload: the length of all the headers.
    pub payload_at: usize,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

impl TcpFrameLayout {
    /// Finds the headers at the start of `frame`: Ethernet (one 802.1Q tag allowed), IPv4 of
    /// version 4 carrying TCP, its TCP header with any options. [`Error::Truncated`] when
    /// `frame` ends inside a header, [`Error::Malformed`] for anything else.
    pub fn parse(frame: &[u8]) -> Result<TcpFrameLayout> {
        if frame.len() < ETH_LEN {
            return Err(Error::Truncated);
        }
        let mut ip_at = ETH_LEN;
        let mut ethertype = be16(frame, 12);
        if ethertype == EtherType::VLAN.0 {
            if frame.len() < ETH_LEN + VLAN_LEN {
                return Err(Error::Truncated);
            }
            ethertype = be16(frame, 16);
            ip_at += VLAN_LEN;
        }
        if ethertype != EtherType::IPV4.0 {
            return Err(Error::Malformed);
        }
        if frame.len() < ip_at + crate::ipv4::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let ver_ihl = frame[ip_at];
        let ihl = usize::from(ver_ihl & 0x0f) * 4;
        if ver_ihl >> 4 != 4 || ihl < crate::ipv4::HEADER_LEN || frame[ip_at + 9] != IpProtocol::TCP.0 {
            return Err(Error::Malformed);
        }
        let tcp_at = ip_at + ihl;
        if frame.len() < tcp_at + crate::tcp::HEADER_LEN {
            return Err(Error::Truncated);
        }
        let thl = usize::from(frame[tcp_at + 12] >> 4) * 4;
        if thl < crate::tcp::HEADER_LEN {
            return Err(Error::Malformed);
        }
        let payload_at = tcp_at + thl;
        if frame.len() < payload_at {
            return Err(Error::Truncated);
        }
        Ok(TcpFrameLayout { ip_at, tcp_at, payload_at })
    }

    /// The IPv4 source and destination addresses.
    pub fn addresses(&self, frame: &[u8]) -> (Ipv4Addr, Ipv4Addr) {
        let a = |at: usize| Ipv4Addr::new(frame[at], frame[at + 1], frame[at + 2], frame[at + 3]);
        (a(self.ip_at + 12), a(self.ip_at + 16))
    }
}

/// The headers of a header block of exactly `hdr.len()` bytes (nothing may follow them).
fn header_block(hdr: &[u8]) -> Result<TcpFrameLayout> {
    let layout = TcpFrameLayout::parse(hdr)?;
    if layout.payload_at != hdr.len() {
        return Err(Error::Malformed);
    }
    Ok(layout)
}

/// Sets the IPv4 total length in the header block `hdr` (Ethernet, IPv4 and TCP headers, as
/// `exasock_tcp_build_header` makes it) for `data_len` bytes of payload, updating the header
/// checksum incrementally (RFC 1624). [`Error::Malformed`] when `hdr` is not exactly such a
/// block or the packet would exceed 65535 bytes.
pub fn set_tcp_length(hdr: &mut [u8], data_len: usize) -> Result<()> {
    let layout = header_block(hdr)?;
    let total = (hdr.len() - layout.ip_at).checked_add(data_len).filter(|t| *t <= 0xFFFF).ok_or(Error::Malformed)?;
    let at = layout.ip_at + IP_LENGTH;
    let old = be16(hdr, at);
    let new = total as u16;
    hdr[at..at + 2].copy_from_slice(&new.to_be_bytes());
    let sum_at = layout.ip_at + IP_CHECKSUM;
    let sum = checksum::update(be16(hdr, sum_at), old, new);
    hdr[sum_at..sum_at + 2].copy_from_slice(&sum.to_be_bytes());
    Ok(())
}

/// Computes the TCP checksum of the header block `hdr` followed by the payload `data` (the
/// pseudo-header's length is the TCP header's plus `data.len()`) into the header's checksum
/// field. [`Error::Malformed`] when `hdr` is not exactly a header block or the segment would
/// exceed 65535 bytes.
pub fn fill_tcp_checksum(hdr: &mut [u8], data: &[u8]) -> Result<()> {
    let layout = header_block(hdr)?;
    let tcp_len =
        (hdr.len() - layout.tcp_at).checked_add(data.len()).filter(|t| *t <= 0xFFFF).ok_or(Error::Malformed)?;
    let (src, dst) = layout.addresses(hdr);
    let at = layout.tcp_at + TCP_CHECKSUM;
    hdr[at..at + 2].copy_from_slice(&[0, 0]);
    let pseudo = checksum::pseudo_header(src, dst, IpProtocol::TCP, tcp_len as u16);
    let header = &hdr[layout.tcp_at..];
    // An even-length header (TCP headers are whole 32-bit words) keeps the payload's words
    // aligned, so the two sums combine.
    let sum = checksum::combine(&[pseudo, checksum::data(header), checksum::data(data)]);
    hdr[at..at + 2].copy_from_slice(&checksum::finish(sum).to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Ipv4Packet, TcpSegment};
    use std::vec::Vec;

    /// A header block: Ethernet, IPv4 (total length for no payload) and a TCP header with the
    /// timestamp option (32 bytes), as the stack builds one.
    fn block(vlan: bool) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
        if vlan {
            f.extend_from_slice(&[0x81, 0x00, 0x00, 0x07]);
        }
        f.extend_from_slice(&[0x08, 0x00]);
        let ip_at = f.len();
        f.extend_from_slice(&[0x45, 0, 0, 52, 0x12, 0x34, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2]);
        let mut ip = Ipv4Packet::new_unchecked(&mut f[ip_at..]);
        ip.fill_checksum();
        f.extend_from_slice(&[0x1f, 0x90, 0x30, 0x39, 0, 0, 0, 100, 0, 0, 0, 200, 0x80, 0x18, 0x01, 0xf5, 0, 0, 0, 0]);
        f.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 7, 0, 0, 0, 9]);
        f
    }

    #[test]
    fn length_and_checksum_make_a_segment_that_verifies() {
        for vlan in [false, true] {
            let mut hdr = block(vlan);
            let payload = b"hello, world";
            set_tcp_length(&mut hdr, payload.len()).unwrap();
            fill_tcp_checksum(&mut hdr, payload).unwrap();
            let mut frame = hdr.clone();
            frame.extend_from_slice(payload);
            let ip_at = if vlan { 18 } else { 14 };
            let ip = Ipv4Packet::new_checked(&frame[ip_at..]).unwrap();
            assert_eq!(usize::from(ip.total_len()), 20 + 32 + payload.len());
            assert!(ip.verify_checksum(), "IPv4 checksum after the incremental update");
            let tcp = TcpSegment::new_checked(&frame[ip_at + 20..]).unwrap();
            assert!(tcp.verify_checksum(ip.src_addr(), ip.dst_addr()));
            assert_eq!(tcp.payload(), payload);
        }
    }

    #[test]
    fn an_odd_payload_and_a_second_length_verify_too() {
        let mut hdr = block(false);
        set_tcp_length(&mut hdr, 1000).unwrap();
        let payload = [0xabu8; 7];
        set_tcp_length(&mut hdr, payload.len()).unwrap();
        fill_tcp_checksum(&mut hdr, &payload).unwrap();
        let mut frame = hdr.clone();
        frame.extend_from_slice(&payload);
        let ip = Ipv4Packet::new_checked(&frame[14..]).unwrap();
        assert!(ip.verify_checksum());
        assert!(TcpSegment::new_checked(&frame[34..]).unwrap().verify_checksum(ip.src_addr(), ip.dst_addr()));
    }

    #[test]
    fn anything_but_a_whole_header_block_is_refused_and_left_alone() {
        let good = block(false);
        for len in 0..good.len() {
            let mut short = good[..len].to_vec();
            assert!(set_tcp_length(&mut short, 1).is_err(), "prefix of {len} bytes");
            assert!(fill_tcp_checksum(&mut short, b"x").is_err(), "prefix of {len} bytes");
            assert_eq!(short, good[..len], "a refused block is not written");
        }
        let mut longer = good.clone();
        longer.push(0);
        assert_eq!(set_tcp_length(&mut longer, 1), Err(Error::Malformed));
        let mut arp = good.clone();
        arp[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(fill_tcp_checksum(&mut arp, b""), Err(Error::Malformed));
        let mut udp = good.clone();
        udp[14 + 9] = 17;
        assert_eq!(set_tcp_length(&mut udp, 1), Err(Error::Malformed));
        let mut huge = good.clone();
        assert_eq!(set_tcp_length(&mut huge, 0xFFFF), Err(Error::Malformed));
        assert_eq!(huge, good);
    }
}
