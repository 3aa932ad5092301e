//! Building IPv4 packets: one frame when the datagram fits the MTU, fragments when it does not,
//! and whole IP packets for the kernel when the neighbour's MAC is unknown.

use crate::stats::Stats;
use crate::Transmit;
use std::net::Ipv4Addr;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet};

/// Ethernet header length (no VLAN).
pub(crate) const ETH_HEADER: usize = 14;
/// IPv4 header length (we send no options).
pub(crate) const IP_HEADER: usize = 20;

/// The fixed part of every packet of one datagram.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PacketHeader {
    pub src: Ipv4Addr,
    pub dst: Ipv4Addr,
    pub protocol: IpProtocol,
    pub ttl: u8,
    pub tos: u8,
    pub ident: u16,
    /// DF on an unfragmented packet (Linux sets it for UDP unless fragmentation was needed).
    pub dont_frag: bool,
}

/// One datagram to send: its IP header fields and its bytes, `l4_header ++ payload`.
pub(crate) struct Datagram<'a> {
    pub header: PacketHeader,
    pub l4_header: &'a [u8],
    pub payload: &'a [u8],
}

/// Where frames go: Ethernet addresses when the MAC is known, the kernel otherwise.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Link {
    Ethernet { src: EthernetAddress, dst: EthernetAddress },
    Kernel,
}

/// Writes the IPv4 header of one packet (fragment) into `buf` (at least 20 bytes).
pub(crate) fn write_ip_header(
    buf: &mut [u8],
    h: &PacketHeader,
    payload_len: usize,
    more: bool,
    offset: usize,
    df: bool,
) {
    let mut ip = Ipv4Packet::new_unchecked(&mut buf[..IP_HEADER]);
    ip.set_version_and_header_len(4, IP_HEADER as u8);
    ip.set_tos(h.tos);
    ip.set_total_len((IP_HEADER + payload_len) as u16);
    ip.set_ident(h.ident);
    ip.set_flags_and_frag_offset(df, more, offset as u16);
    ip.set_ttl(h.ttl);
    ip.set_protocol(h.protocol);
    ip.set_src_addr(h.src);
    ip.set_dst_addr(h.dst);
    ip.fill_checksum();
}

/// Copies bytes `from..from + out.len()` of the virtual datagram `l4_header ++ payload`.
fn copy_datagram(l4_header: &[u8], payload: &[u8], from: usize, out: &mut [u8]) {
    let mut at = 0;
    if from < l4_header.len() {
        let n = (l4_header.len() - from).min(out.len());
        out[..n].copy_from_slice(&l4_header[from..from + n]);
        at = n;
    }
    if at < out.len() {
        let start = from + at - l4_header.len();
        let n = out.len() - at;
        out[at..].copy_from_slice(&payload[start..start + n]);
    }
}

/// Sends the datagram `l4_header ++ payload` as one packet, or as fragments of at most `mtu`
/// bytes each. `kernel_scratch` holds a whole IP packet for the kernel path. Returns the number
/// of packets sent, or 0 when the very first one found no room (nothing was sent).
pub(crate) fn send_datagram(
    tx: &mut dyn Transmit,
    link: &Link,
    datagram: &Datagram<'_>,
    mtu: usize,
    kernel_scratch: &mut [u8],
    stats: &mut Stats,
) -> usize {
    let Datagram { header, l4_header, payload } = datagram;
    let (l4_header, payload): (&[u8], &[u8]) = (l4_header, payload);
    let total = l4_header.len() + payload.len();
    let fragmented = IP_HEADER + total > mtu;
    // Every fragment but the last carries a multiple of 8 bytes.
    let per_packet = if fragmented { (mtu - IP_HEADER) & !7 } else { total };
    if matches!(link, Link::Ethernet { .. }) {
        // Every frame of the datagram, or none: a partial fragment train is a lost datagram.
        let frames = if fragmented { total.div_ceil(per_packet) } else { 1 };
        if tx.reserve(frames).is_err() {
            stats.tx_ring_full += 1;
            return 0;
        }
    }
    let mut offset = 0;
    let mut sent = 0;
    loop {
        let len = per_packet.min(total - offset);
        let more = offset + len < total;
        let df = header.dont_frag && !fragmented;
        let ok = match link {
            Link::Ethernet { src, dst } => tx
                .frame(&mut |buf: &mut [u8]| {
                    let frame_len = ETH_HEADER + IP_HEADER + len;
                    if buf.len() < frame_len {
                        return 0;
                    }
                    let mut eth = EthernetFrame::new_unchecked(&mut buf[..frame_len]);
                    eth.set_dst_addr(*dst);
                    eth.set_src_addr(*src);
                    eth.set_ethertype(EtherType::IPV4);
                    write_ip_header(&mut buf[ETH_HEADER..], header, len, more, offset, df);
                    copy_datagram(l4_header, payload, offset, &mut buf[ETH_HEADER + IP_HEADER..frame_len]);
                    frame_len
                })
                .is_ok(),
            Link::Kernel => {
                let packet = &mut kernel_scratch[..IP_HEADER + len];
                write_ip_header(packet, header, len, more, offset, df);
                copy_datagram(l4_header, payload, offset, &mut packet[IP_HEADER..]);
                tx.to_kernel(packet);
                stats.tx_to_kernel += 1;
                true
            }
        };
        if !ok {
            if sent > 0 {
                stats.tx_dropped += 1;
            }
            return sent;
        }
        if matches!(link, Link::Ethernet { .. }) {
            stats.tx_frames += 1;
        }
        if fragmented {
            stats.frag_created += 1;
        }
        sent += 1;
        offset += len;
        if !more {
            return sent;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn virtual_concatenation_copies_across_the_seam() {
        let (h, p) = ([1u8, 2, 3], [4u8, 5, 6, 7]);
        let mut out = [0u8; 4];
        copy_datagram(&h, &p, 1, &mut out);
        assert_eq!(out, [2, 3, 4, 5]);
        let mut out = [0u8; 2];
        copy_datagram(&h, &p, 5, &mut out);
        assert_eq!(out, [6, 7]);
        let mut out = [0u8; 2];
        copy_datagram(&h, &p, 0, &mut out);
        assert_eq!(out, [1, 2]);
    }
}
