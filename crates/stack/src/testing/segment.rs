//! The kernel's GSO in software, for tests: cuts a TCP super-frame (as the stack hands it to a
//! datapath with a [`Segmentation`]) into the segments Linux's `tcp_gso_segment` and
//! `inet_gso_segment` would put on the wire, so two stacks can talk through a link that loses
//! single pieces of a super-segment.

use crate::engine::Segmentation;
use wire::{Ipv4Packet, TcpFlags, TcpSegment};

/// Ethernet header before the IP header (no VLAN tag: the stack sends none).
const ETH: usize = 14;

/// A datapath's transmit call: gets a frame builder, says whether a slot took the frame.
pub type SendFrame<'a> = dyn FnMut(&mut dyn FnMut(&mut [u8]) -> usize) -> bool + 'a;

/// Cuts `frame` per `cut`: every piece gets the headers, its share of the payload, the
/// sequence number of its first byte, the IP length of its own and the identification counted
/// on from the first; FIN and PSH only on the last piece, CWR only on the first; IP and TCP
/// checksums complete. `send` gets a builder per piece (as `Port::transmit` takes one) and
/// says whether a slot took it; returns how many pieces were taken. Writes nothing for a
/// frame whose headers do not parse.
pub fn segment_frame(frame: &[u8], cut: Segmentation, send: &mut SendFrame<'_>) -> usize {
    let (h, tcp_at, seg) = (cut.header_len as usize, cut.csum_start as usize, cut.segment_size as usize);
    if seg == 0 || h > frame.len() || tcp_at < ETH + 20 || tcp_at + 20 > h {
        return 0;
    }
    let Ok(ip) = Ipv4Packet::new_checked(&frame[ETH..]) else { return 0 };
    let (src, dst, ident) = (ip.src_addr(), ip.dst_addr(), ip.ident());
    let Ok(tcp) = TcpSegment::new_checked(&frame[tcp_at..]) else { return 0 };
    let (seq, flags) = (tcp.seq_number(), tcp.flags());
    let payload = &frame[h..];
    let pieces = payload.len().div_ceil(seg);
    let mut taken = 0;
    for (i, chunk) in payload.chunks(seg).enumerate() {
        let ok = send(&mut |buf: &mut [u8]| {
            let len = h + chunk.len();
            if buf.len() < len {
                return 0;
            }
            buf[..h].copy_from_slice(&frame[..h]);
            buf[h..len].copy_from_slice(chunk);
            let mut ip = Ipv4Packet::new_unchecked(&mut buf[ETH..len]);
            ip.set_total_len((len - ETH) as u16);
            ip.set_ident(ident.wrapping_add(i as u16));
            ip.fill_checksum();
            let mut tcp = TcpSegment::new_unchecked(&mut buf[tcp_at..len]);
            tcp.set_seq_number(seq.wrapping_add((i * seg) as u32));
            let mut f = flags;
            if i + 1 < pieces {
                f = f.without(TcpFlags::FIN).without(TcpFlags::PSH);
            }
            if i > 0 {
                f = f.without(TcpFlags::CWR);
            }
            tcp.set_flags(f);
            tcp.fill_checksum(src, dst);
            len
        });
        if ok {
            taken += 1;
        }
    }
    taken
}
