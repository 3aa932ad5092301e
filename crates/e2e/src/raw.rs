//! Raw UDP frames over a `Port`, with no stack: answer a datagram by swapping its headers.

use nic::steering::{Datapath, Steering};
use nic::{Port, RxFrame};
use wire::{EtherType, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

/// What happened to one received frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Echo {
    /// A UDP datagram to our port, answered.
    Answered,
    /// Not a UDP datagram to our port (the steering should never let one through).
    Foreign,
    /// No transmit slot free.
    RingFull,
    /// A fragment of an IPv4 UDP datagram (counted, not answered: there is no reassembly here).
    Fragment,
}

/// Receives up to `budget` frames and answers each UDP datagram to `udp_port` with the same
/// payload, source and destination swapped at every layer and checksums recomputed; flushes once.
/// Frames are staged in `scratch` (a port lends RX frames only inside its callback). Returns
/// counts indexed by [`Echo`].
pub fn echo_burst(port: &mut dyn Port, budget: usize, udp_port: u16, scratch: &mut Vec<u8>) -> [u64; 4] {
    let mut counts = [0u64; 4];
    scratch.clear();
    port.receive(budget, &mut |frame: RxFrame<'_>| {
        scratch.extend_from_slice(&(frame.data.len() as u32).to_ne_bytes());
        scratch.extend_from_slice(frame.data);
    });
    let mut at = 0;
    while at < scratch.len() {
        let len = u32::from_ne_bytes(scratch[at..at + 4].try_into().unwrap()) as usize;
        let frame = &scratch[at + 4..at + 4 + len];
        counts[echo_frame(port, frame, udp_port) as usize] += 1;
        at += 4 + len;
    }
    if at > 0 {
        let _ = port.flush();
    }
    counts
}

/// Answers one frame if it is a UDP datagram to `udp_port`; anything else is foreign.
pub fn echo_frame(port: &mut dyn Port, data: &[u8], udp_port: u16) -> Echo {
    if is_udp_fragment(data) {
        return Echo::Fragment;
    }
    let Some(l4) = udp_offsets(data, udp_port) else {
        return Echo::Foreign;
    };
    let result = port.transmit(&mut |buf| {
        let out = &mut buf[..data.len()];
        out.copy_from_slice(data);
        swap_headers(out, l4);
        data.len()
    });
    match result {
        Ok(_) => Echo::Answered,
        Err(_) => Echo::RingFull,
    }
}

/// The offset of the UDP header when `frame` is an unfragmented IPv4 UDP datagram to `udp_port`.
pub fn udp_offsets(frame: &[u8], udp_port: u16) -> Option<usize> {
    let eth = EthernetFrame::new_checked(frame).ok()?;
    if eth.ethertype() != EtherType::IPV4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    if ip.protocol() != IpProtocol::UDP || ip.is_fragment() {
        return None;
    }
    let udp = UdpPacket::new_checked(ip.payload()).ok()?;
    (udp.dst_port() == udp_port).then(|| eth.header_len() + usize::from(ip.header_len()))
}

/// Whether `frame` is a fragment (first or later) of an IPv4 UDP datagram.
pub fn is_udp_fragment(frame: &[u8]) -> bool {
    let Ok(eth) = EthernetFrame::new_checked(frame) else { return false };
    let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else { return false };
    eth.ethertype() == EtherType::IPV4 && ip.protocol() == IpProtocol::UDP && ip.is_fragment()
}

/// Swaps MACs, IPv4 addresses and UDP ports in place and recomputes both checksums.
pub fn swap_headers(frame: &mut [u8], l4: usize) {
    let mut eth = EthernetFrame::new_unchecked(&mut *frame);
    let (src, dst) = (eth.src_addr(), eth.dst_addr());
    eth.set_src_addr(dst);
    eth.set_dst_addr(src);
    let l3 = eth.header_len();
    let mut ip = Ipv4Packet::new_unchecked(&mut frame[l3..]);
    let (src, dst) = (ip.src_addr(), ip.dst_addr());
    ip.set_src_addr(dst);
    ip.set_dst_addr(src);
    ip.set_ttl(64);
    ip.fill_checksum();
    let mut udp = UdpPacket::new_unchecked(&mut frame[l4..]);
    let (sp, dp) = (udp.src_port(), udp.dst_port());
    udp.set_src_port(dp);
    udp.set_dst_port(sp);
    udp.fill_checksum(dst, src);
}

/// Opens the datapath the process's `EXASOCK_DATAPATH` and the interface's attach choose (see
/// `nic::select`), named by `steering`'s anchor token.
pub fn open_port(iface: &str, steering: &mut Steering) -> Result<(Box<dyn Port>, Datapath), String> {
    let request = nic::select::Request::from_env()?;
    let token = steering.owner_token().map_err(|e| e.to_string())?;
    let (port, datapath) = nic::select::open_port(iface, request, token).map_err(|e| e.to_string())?;
    Ok((port, datapath))
}
