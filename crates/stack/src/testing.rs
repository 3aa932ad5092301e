//! Building blocks for the stack's tests, benchmarks and fuzz targets (and the interop harness
//! in crates/e2e): a stack on a /24 with its one peer's MAC known, and the frames that peer
//! sends. Not used by the driver, which fills routes and neighbours from the kernel.

use crate::route::Route;
use crate::{IfAddr, Interface, Stack, StackConfig};
use std::net::Ipv4Addr;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, TcpRepr, TcpSegment};

/// A stack at `addr`/24 with `mac` and `mtu`, the /24 routed directly, and `peer`'s MAC known.
pub fn lan_stack(
    addr: Ipv4Addr,
    mac: EthernetAddress,
    mtu: usize,
    peer: Ipv4Addr,
    peer_mac: EthernetAddress,
    config: StackConfig,
) -> Stack {
    let iface = Interface { mac, addrs: vec![IfAddr { addr, prefix_len: 24 }], mtu };
    let mut stack = Stack::new(iface, config);
    let o = addr.octets();
    stack.routes_mut().insert(Route {
        prefix: Ipv4Addr::new(o[0], o[1], o[2], 0),
        prefix_len: 24,
        gateway: None,
        src: None,
        mtu: None,
    });
    stack.neighbours_mut().insert(peer, peer_mac);
    stack
}

/// One end of a frame: MAC and IPv4 address.
pub type Endpoint = (EthernetAddress, Ipv4Addr);

/// The Ethernet frame carrying the TCP segment `repr` with `payload` from `src` to `dst` (DF
/// set, TTL 64, checksums filled).
pub fn tcp_frame(src: Endpoint, dst: Endpoint, repr: &TcpRepr, payload: &[u8]) -> Vec<u8> {
    let tcp_len = repr.buffer_len();
    let mut frame = vec![0u8; 14 + 20 + tcp_len];
    {
        let mut eth = EthernetFrame::new_unchecked(&mut frame[..]);
        eth.set_dst_addr(dst.0);
        eth.set_src_addr(src.0);
        eth.set_ethertype(EtherType::IPV4);
    }
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut frame[14..34]);
        ip.set_version_and_header_len(4, 20);
        ip.set_total_len((20 + tcp_len) as u16);
        ip.set_flags_and_frag_offset(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(src.1);
        ip.set_dst_addr(dst.1);
        ip.fill_checksum();
    }
    let hl = repr.header_len();
    let n = payload.len().min(frame.len() - 34 - hl);
    frame[34 + hl..34 + hl + n].copy_from_slice(&payload[..n]);
    let mut tcp = TcpSegment::new_unchecked(&mut frame[34..]);
    let _ = repr.emit(&mut tcp, src.1, dst.1);
    frame
}
