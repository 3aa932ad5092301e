//! The transmit path: every connection listed as having something to send gives its segments,
//! built in place in the datapath's transmit slots (a full ring loses nothing), plus the RSTs
//! owed to segments that matched no socket.

use super::tables::{PendingReset, PendingSynAck};
use crate::engine::{Event, Segmentation, Stack, Transmit};
use crate::ipv4::output::{send_datagram, write_ip_header, Datagram, Link, PacketHeader, ETH_HEADER, IP_HEADER};
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::net::Ipv4Addr;
use wire::{EtherType, EthernetAddress, EthernetFrame, IpProtocol, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// Offset of the checksum field in a TCP header.
const TCP_CHECKSUM_AT: u16 = 16;

impl Stack {
    /// What the stack's tables did so far, counted (see [`Work`](crate::stats::Work)).
    pub fn work(&self) -> crate::stats::Work {
        crate::stats::Work {
            demux_lookups: self.tcp.demux_lookups,
            timer_visits: self.tcp.timers.visits(),
            transmit_visits: self.tcp.transmit_visits,
        }
    }

    /// Whether some TCP socket has something to send: a driver that did not call
    /// [`Stack::transmit`] after its last call into the stack must do so.
    pub fn tcp_transmit_pending(&self) -> bool {
        !self.tcp.dirty.is_empty() || !self.tcp.resets.is_empty() || !self.tcp.synacks.is_empty()
    }

    /// Sends every segment TCP has due (handshakes, data, ACKs, retransmissions, RSTs) as
    /// frames. Returns the number of segments sent.
    pub fn transmit(&mut self, now: Instant, tx: &mut dyn Transmit) -> usize {
        let mut sent = 0;
        while let Some(rst) = self.tcp.resets.front().copied() {
            if !self.tcp_send_reset(&rst, tx) {
                // Kept for the next call.
                break;
            }
            self.tcp.resets.pop_front();
            sent += 1;
        }
        while let Some(synack) = self.tcp.synacks.front().copied() {
            if !self.tcp_send_cookie_synack(&synack, tx) {
                break;
            }
            self.tcp.synacks.pop_front();
            sent += 1;
        }
        let mut i = 0;
        while i < self.tcp.dirty.len() {
            let h = self.tcp.dirty[i];
            i += 1;
            self.tcp.transmit_visits += 1;
            let (n, busy) = self.tcp_transmit_one(now, h, tx);
            sent += n;
            if let Some(s) = self.sockets.get_tcp_mut(h) {
                s.dirty = busy;
            }
            if busy {
                // Keep it listed; the rest waits for the next call.
                self.tcp.dirty.drain(..i - 1);
                return sent;
            }
            self.tcp_settle(h);
        }
        self.tcp.dirty.clear();
        sent
    }

    /// The link a segment to `dst` leaves on: Ethernet to the next hop's MAC, or the kernel
    /// while that MAC is unknown (a lookup is asked for).
    pub(super) fn link_to(&mut self, dst: Ipv4Addr) -> Link {
        let via = self.routes.lookup(dst).map(|hop| hop.via).unwrap_or(dst);
        match self.neighbours.lookup(via) {
            Some(mac) => Link::Ethernet { src: self.iface.mac, dst: mac },
            None => {
                self.event(Event::NeighbourMissing(via));
                Link::Kernel
            }
        }
    }

    /// Sends one connection's due segments; returns how many, and whether the port was full.
    ///
    /// On Ethernet the segment is built inside the transmit slot, so the connection only
    /// changes (snd_nxt advanced, an ACK or RST no longer owed) once the datapath has taken the
    /// frame: a full ring costs nothing, the same segment goes out at the next call.
    fn tcp_transmit_one(&mut self, now: Instant, h: SocketHandle, tx: &mut dyn Transmit) -> (usize, bool) {
        let Some((remote, ttl, tos)) =
            self.sockets.get_tcp(h).and_then(|s| s.connection().map(|c| (c.remote(), s.options.ttl, s.options.tos)))
        else {
            return (0, false);
        };
        let link = self.link_to(*remote.ip());
        let mtu = self.iface.mtu;
        let mut sent = 0;
        while let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) {
            let header = tcp_ip_header(*c.local().ip(), *remote.ip(), ttl, tos, self.next_ident.wrapping_add(1));
            if let Link::Ethernet { src: src_mac, dst: dst_mac } = link {
                let mut built = false;
                let mut pieces = 1u32;
                let gso_max = tx.gso_max().min(u16::MAX as usize);
                let r = if gso_max > mtu && c.gso_candidate() {
                    tx.frame_gso(&mut |buf: &mut [u8]| {
                        const AT: usize = ETH_HEADER + IP_HEADER;
                        if buf.len() <= AT || mtu <= IP_HEADER {
                            return (0, None);
                        }
                        let room = (buf.len() - AT).min(gso_max - IP_HEADER);
                        let max_payload = room.saturating_sub(wire::tcp::MAX_HEADER_LEN);
                        let Some(out) = c.poll_transmit_gso(now, &mut buf[AT..AT + room], max_payload) else {
                            return (0, None);
                        };
                        built = true;
                        write_link_and_ip(buf, src_mac, dst_mac, &header, out.len);
                        let cut = (out.segment_size > 0).then(|| {
                            pieces = ((out.len - out.header_len) as u32).div_ceil(out.segment_size);
                            Segmentation {
                                segment_size: out.segment_size as u16,
                                header_len: (AT + out.header_len) as u16,
                                csum_start: AT as u16,
                                csum_offset: TCP_CHECKSUM_AT,
                            }
                        });
                        (AT + out.len, cut)
                    })
                } else {
                    tx.frame(&mut |buf: &mut [u8]| {
                        const AT: usize = ETH_HEADER + IP_HEADER;
                        if buf.len() <= AT || mtu <= IP_HEADER {
                            return 0;
                        }
                        let room = (buf.len() - AT).min(mtu - IP_HEADER);
                        let Some(out) = c.poll_transmit(now, &mut buf[AT..AT + room]) else { return 0 };
                        built = true;
                        write_link_and_ip(buf, src_mac, dst_mac, &header, out.len);
                        AT + out.len
                    })
                };
                if r.is_err() {
                    // Nothing was taken from the connection: it stays listed for the next call.
                    self.stats.tcp_tx_busy += 1;
                    return (sent, true);
                }
                if !built {
                    break;
                }
                self.stats.tx_frames += 1;
                if pieces > 1 {
                    // The datapath numbers the pieces' IP identifications on from this one.
                    self.stats.tcp_gso_frames += 1;
                    self.stats.tcp_out_segs += u64::from(pieces - 1);
                    self.next_ident = self.next_ident.wrapping_add((pieces - 1) as u16);
                }
            } else {
                let Some(out) = c.poll_transmit(now, &mut self.tcp.segment) else { break };
                let datagram = Datagram { header, l4_header: &self.tcp.segment[..out.len], payload: &[] };
                send_datagram(tx, &link, &datagram, mtu, &mut self.scratch, &mut self.stats);
            }
            self.next_ident = self.next_ident.wrapping_add(1);
            self.stats.tcp_out_segs += 1;
            sent += 1;
        }
        (sent, false)
    }

    fn tcp_send_reset(&mut self, rst: &PendingReset, tx: &mut dyn Transmit) -> bool {
        let repr = TcpRepr {
            src_port: rst.local.port(),
            dst_port: rst.remote.port(),
            seq: rst.seq,
            ack: rst.ack,
            flags: TcpFlags::RST,
            window: 0,
            urgent: 0,
            options: TcpOptions::NONE,
            payload_len: 0,
        };
        if !self.tcp_send_stateless(&repr, rst.local, rst.remote, 64, 0, tx) {
            return false;
        }
        self.stats.tcp_resets_sent += 1;
        true
    }

    fn tcp_send_cookie_synack(&mut self, s: &PendingSynAck, tx: &mut dyn Transmit) -> bool {
        let repr = TcpRepr {
            src_port: s.local.port(),
            dst_port: s.remote.port(),
            seq: s.seq,
            ack: Some(s.ack),
            flags: TcpFlags::SYN,
            window: s.window,
            urgent: 0,
            options: s.options,
            payload_len: 0,
        };
        if !self.tcp_send_stateless(&repr, s.local, s.remote, s.ttl, s.tos, tx) {
            return false;
        }
        self.stats.tcp_syncookies_sent += 1;
        true
    }

    /// Sends a segment no connection owns (a RST, a cookie SYN-ACK); false if the port was
    /// full (kept for the next call).
    fn tcp_send_stateless(
        &mut self,
        repr: &TcpRepr,
        local: std::net::SocketAddrV4,
        remote: std::net::SocketAddrV4,
        ttl: u8,
        tos: u8,
        tx: &mut dyn Transmit,
    ) -> bool {
        let mut segment = TcpSegment::new_unchecked(&mut self.tcp.segment[..]);
        if repr.emit(&mut segment, *local.ip(), *remote.ip()).is_err() {
            return true;
        }
        let link = self.link_to(*remote.ip());
        self.next_ident = self.next_ident.wrapping_add(1);
        let header = PacketHeader {
            src: *local.ip(),
            dst: *remote.ip(),
            protocol: IpProtocol::TCP,
            ttl,
            tos,
            ident: self.next_ident,
            dont_frag: true,
        };
        let len = repr.buffer_len();
        let datagram = Datagram { header, l4_header: &self.tcp.segment[..len], payload: &[] };
        let mtu = self.iface.mtu;
        if send_datagram(tx, &link, &datagram, mtu, &mut self.scratch, &mut self.stats) == 0 {
            self.stats.tcp_tx_busy += 1;
            return false;
        }
        self.stats.tcp_out_segs += 1;
        true
    }
}

/// The Ethernet and IPv4 headers in front of a TCP segment of `tcp_len` bytes built at
/// `ETH_HEADER + IP_HEADER` in `buf` (one segment or a GSO super-segment).
fn write_link_and_ip(
    buf: &mut [u8],
    src: EthernetAddress,
    dst: EthernetAddress,
    header: &PacketHeader,
    tcp_len: usize,
) {
    let mut eth = EthernetFrame::new_unchecked(&mut buf[..ETH_HEADER]);
    eth.set_dst_addr(dst);
    eth.set_src_addr(src);
    eth.set_ethertype(EtherType::IPV4);
    write_ip_header(&mut buf[ETH_HEADER..], header, tcp_len, false, 0, true);
}

/// The IPv4 header of a TCP segment from `src` to `dst` (DF set, as Linux's TCP sends).
pub(super) fn tcp_ip_header(src: Ipv4Addr, dst: Ipv4Addr, ttl: u8, tos: u8, ident: u16) -> PacketHeader {
    PacketHeader { src, dst, protocol: IpProtocol::TCP, ttl, tos, ident, dont_frag: true }
}
