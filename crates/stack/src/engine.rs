//! The engine: frames in, datagrams to sockets, datagrams out as frames, events and timers.

use crate::iface::Interface;
use crate::ipv4::output::{send_datagram, Datagram, Link, PacketHeader, IP_HEADER};
use crate::ipv4::reassembly::{FragKey, FragOutcome, Reassembler, ReassemblyConfig};
use crate::neighbour::{multicast_mac, NeighbourCache};
use crate::route::RouteTable;
use crate::socket::{SocketHandle, SocketTable};
use crate::stats::Stats;
use crate::tcp::tables::TcpTables;
use crate::tcp::TcpConfig;
use crate::time::Instant;
use crate::udp::queue::{Arrival, DatagramInfo};
use crate::udp::{SendControl, UdpError, UdpOptions, UdpSocket};
use std::collections::VecDeque;
use std::net::{Ipv4Addr, SocketAddrV4};
use wire::{checksum, EtherType, EthernetAddress, EthernetFrame, IpProtocol, Ipv4Packet, UdpPacket};

/// Largest UDP payload in one IPv4 datagram.
pub const MAX_UDP_PAYLOAD: usize = 65_507;
/// Linux's net.core.rmem_default.
pub const DEFAULT_RCVBUF: usize = 212_992;

/// Where outgoing frames go. The driver implements it over a `Port` and a raw socket.
pub trait Transmit {
    /// Builds one frame in a transmit slot (`build` returns its length, 0 to give it back).
    /// Fails when no slot is free.
    fn frame(&mut self, build: &mut dyn FnMut(&mut [u8]) -> usize) -> Result<(), TxBusy>;
    /// Makes sure the next `frames` calls to `frame` will succeed (a datagram's fragments go
    /// all or none), waiting a bounded time; fails when they would not.
    fn reserve(&mut self, frames: usize) -> Result<(), TxBusy> {
        let _ = frames;
        Ok(())
    }
    /// Hands a whole IPv4 packet to the kernel, which resolves the neighbour and sends it.
    fn to_kernel(&mut self, ip_packet: &[u8]);
    /// The largest IP packet the datapath takes as one frame that it cuts into segments (GSO);
    /// 0 when it cannot, and then [`Transmit::frame_gso`] is never called.
    fn gso_max(&self) -> usize {
        0
    }
    /// Builds one frame that may be larger than the MTU: `build` gets a buffer of at least
    /// [`Transmit::gso_max`] bytes past the Ethernet header and says how to cut what it wrote
    /// (`None`: an ordinary frame of at most the MTU, sent as it is). Frames leave in the order
    /// built, ordinary or not. By default an ordinary frame, so a datapath without GSO only
    /// ever sees segments that fit its slots.
    fn frame_gso(&mut self, build: &mut BuildGso<'_>) -> Result<(), TxBusy> {
        self.frame(&mut |buf| build(buf).0)
    }
}

/// What builds a frame that may be a super-frame: writes it into the buffer and returns its
/// length and how to cut it (see [`Transmit::frame_gso`]).
pub type BuildGso<'a> = dyn FnMut(&mut [u8]) -> (usize, Option<Segmentation>) + 'a;

/// How a datapath must cut a TCP super-frame into segments, as a virtio-net header says it to
/// the kernel (VIRTIO_NET_HDR_GSO_TCPV4 with VIRTIO_NET_HDR_F_NEEDS_CSUM): every piece gets a
/// copy of the first `header_len` bytes (Ethernet, IP and TCP headers) with its own sequence
/// number, IP length and identification and its checksum completed; FIN and PSH stay on the last.
/// The TCP checksum field holds the pseudo-header sum over the whole segment's length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segmentation {
    /// Payload bytes of each piece but the last (the MSS): virtio's gso_size.
    pub segment_size: u16,
    /// Bytes of headers from the start of the frame to the payload: virtio's hdr_len.
    pub header_len: u16,
    /// Offset of the TCP header in the frame, where the checksum starts: virtio's csum_start.
    pub csum_start: u16,
    /// Offset of the checksum field in the TCP header (16): virtio's csum_offset.
    pub csum_offset: u16,
}

/// No transmit slot was free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TxBusy;

/// What the datapath knows about a received frame's checksums.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxChecksum {
    /// Verify everything (frames from a wire).
    Unverified,
    /// Already verified by the device or the kernel.
    Verified,
    /// Locally originated with offload: the layer-4 checksum is not filled in.
    Partial,
}

/// Something the driver or the socket layer must act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Something was queued to a readable socket: a datagram, data, the end of stream, an
    /// error or a connection to accept. One per arrival, not only when the queue turns non-empty,
    /// so that a ready list can serve edge-triggered waiters, which see each arrival.
    Readable(SocketHandle),
    /// A TCP socket became writable (connected, or send buffer space freed, or an error).
    Writable(SocketHandle),
    /// A packet went to the kernel because this neighbour's MAC is unknown: look it up.
    NeighbourMissing(Ipv4Addr),
    /// A TCP connection now exists (a SYN reached a listener, or connect was called): from
    /// now on its segments must reach this stack, before the first one it sends goes out.
    TcpOpened {
        /// Our end.
        local: SocketAddrV4,
        /// The peer.
        remote: SocketAddrV4,
    },
    /// A TCP listener bound to `local` (address 0: every address) answered a SYN with a SYN
    /// cookie, the first in two minutes: the final ACKs that echo cookies must reach this
    /// stack although no connection exists for them.
    TcpSynCookies {
        /// The listener's address.
        local: SocketAddrV4,
    },
    /// A TCP connection left the stack (closed and done, reset, or never established).
    TcpClosed {
        /// Our end.
        local: SocketAddrV4,
        /// The peer.
        remote: SocketAddrV4,
    },
}

/// Tunables, with Linux's defaults.
#[derive(Debug, Clone)]
pub struct StackConfig {
    /// Fragment reassembly limits and timeout.
    pub reassembly: ReassemblyConfig,
    /// Receive queue of a new UDP socket (SO_RCVBUF).
    pub udp_rcvbuf: usize,
    /// First IP identification (the driver passes a random one).
    pub ident_seed: u16,
    /// TCP tunables.
    pub tcp: TcpConfig,
}

impl Default for StackConfig {
    fn default() -> Self {
        StackConfig {
            reassembly: ReassemblyConfig::default(),
            udp_rcvbuf: DEFAULT_RCVBUF,
            ident_seed: 0,
            tcp: TcpConfig::default(),
        }
    }
}

/// The protocol engine of one interface.
#[derive(Debug)]
pub struct Stack {
    pub(crate) iface: Interface,
    pub(crate) neighbours: NeighbourCache,
    pub(crate) routes: RouteTable,
    pub(crate) sockets: SocketTable,
    reassembly: Reassembler,
    pub(crate) config: StackConfig,
    pub(crate) stats: Stats,
    events: VecDeque<Event>,
    /// Readiness events dropped with the queue full (a driver keeping a ready list rescans).
    events_dropped: u64,
    pub(crate) next_ident: u16,
    /// A whole IP packet for the kernel path, and reassembled datagrams' copies.
    pub(crate) scratch: Vec<u8>,
    /// TCP demultiplexing, timers and pending output.
    pub(crate) tcp: TcpTables,
    /// Receivers of one multicast or broadcast datagram.
    group_scratch: Vec<SocketHandle>,
    /// Groups the interface has joined in the kernel (some socket on the host, of any process,
    /// is a member), as the driver reports them: a group's looped copy goes to the kernel only
    /// for these (it loops to their members and keeps a TTL-0 copy off the wire only then).
    host_groups: crate::hash::FxHashMap<Ipv4Addr, ()>,
}

/// Label of the demultiplexer's key, derived from the ISN key.
const DEMUX_KEY_LABEL: u64 = 0x6465_6d75_785f_6b65;

impl Stack {
    /// A stack serving `iface`.
    /// The TCP settings (the defaults and limits the socket options are judged by).
    pub fn tcp_config(&self) -> &crate::tcp::TcpConfig {
        &self.config.tcp
    }

    pub fn new(iface: Interface, config: StackConfig) -> Stack {
        let demux_key = crate::hash::KeyedState::derived(config.tcp.isn_key, DEMUX_KEY_LABEL);
        Stack {
            iface,
            neighbours: NeighbourCache::default(),
            routes: RouteTable::default(),
            sockets: SocketTable::default(),
            reassembly: Reassembler::new(config.reassembly),
            next_ident: config.ident_seed,
            config,
            stats: Stats::default(),
            events: VecDeque::with_capacity(64),
            events_dropped: 0,
            scratch: vec![0u8; 65_536],
            group_scratch: Vec::new(),
            host_groups: Default::default(),
            tcp: TcpTables::new(demux_key),
        }
    }

    /// The interface.
    pub fn interface(&self) -> &Interface {
        &self.iface
    }

    /// The interface, to update from the kernel.
    pub fn interface_mut(&mut self) -> &mut Interface {
        &mut self.iface
    }

    /// The neighbour cache, to fill from the kernel.
    pub fn neighbours_mut(&mut self) -> &mut NeighbourCache {
        &mut self.neighbours
    }

    /// The route table, to fill from the kernel.
    pub fn routes_mut(&mut self) -> &mut RouteTable {
        &mut self.routes
    }

    /// The routes.
    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    /// The kernel says whether the interface has joined `group` (some socket on the host is
    /// a member of it).
    pub fn set_host_group(&mut self, group: Ipv4Addr, joined: bool) {
        if joined {
            self.host_groups.insert(group, ());
        } else {
            self.host_groups.remove(&group);
        }
    }

    /// The groups the interface has joined, all at once (after a dump).
    pub fn replace_host_groups(&mut self, groups: impl IntoIterator<Item = Ipv4Addr>) {
        self.host_groups.clear();
        self.host_groups.extend(groups.into_iter().map(|g| (g, ())));
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next event to act on.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// How many readiness events were dropped because the queue was full: a driver that keeps
    /// a list of sockets that may be ready must then look at every socket.
    pub fn events_dropped(&self) -> u64 {
        self.events_dropped
    }

    /// When `handle_timeout` must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        [self.reassembly.next_expiry(), self.tcp.timers.next_fire()].into_iter().flatten().min()
    }

    /// Runs what is due at `now` (reassembly expiry, TCP timers). TCP's resulting segments go
    /// out at the next [`Stack::transmit`].
    pub fn handle_timeout(&mut self, now: Instant) {
        let expired = self.reassembly.expire(now);
        self.stats.frag_dropped += expired as u64;
        self.tcp_timeouts(now);
    }

    pub(crate) fn event(&mut self, e: Event) {
        // Bounded: readiness is also readable from the sockets, so losing an event loses no data.
        // A connection's opening and closing are never dropped: a driver steers by them.
        if self.events.len() < 4096 || matches!(e, Event::TcpOpened { .. } | Event::TcpClosed { .. }) {
            self.events.push_back(e);
        } else {
            self.events_dropped = self.events_dropped.wrapping_add(1);
        }
    }

    // ---- receive ---------------------------------------------------------------------------

    /// Processes one received frame: checks it, reassembles fragments, queues UDP payloads to
    /// their sockets. Every frame that goes nowhere is counted.
    pub fn receive(&mut self, now: Instant, frame: &[u8], csum: RxChecksum) {
        self.stats.rx_frames += 1;
        let Ok(eth) = EthernetFrame::new_checked(frame) else {
            self.stats.rx_not_ipv4 += 1;
            return;
        };
        if eth.ethertype() == EtherType::VLAN {
            self.stats.rx_vlan += 1;
            return;
        }
        if eth.ethertype() != EtherType::IPV4 {
            self.stats.rx_not_ipv4 += 1;
            return;
        }
        let dst_mac = eth.dst_addr();
        if dst_mac != self.iface.mac && !dst_mac.is_broadcast() && !dst_mac.is_multicast() {
            self.stats.rx_not_our_mac += 1;
            return;
        }
        let Ok(ip) = Ipv4Packet::new_checked(eth.payload()) else {
            self.stats.ip_malformed += 1;
            return;
        };
        if ip.version() != 4 {
            self.stats.ip_malformed += 1;
            return;
        }
        if csum != RxChecksum::Verified && !ip.verify_checksum() {
            self.stats.ip_bad_checksum += 1;
            return;
        }
        let (src, dst) = (ip.src_addr(), ip.dst_addr());
        let group = dst.is_multicast() || self.iface.is_broadcast(dst);
        if !group && !self.iface.has_addr(dst) {
            self.stats.ip_not_ours += 1;
            return;
        }
        if ip.protocol() == IpProtocol::ICMP && !group && !ip.is_fragment() {
            self.receive_icmp(now, ip.payload());
            return;
        }
        if ip.protocol() != IpProtocol::UDP && ip.protocol() != IpProtocol::TCP {
            self.stats.ip_unknown_protocol += 1;
            return;
        }
        if ip.protocol() == IpProtocol::TCP && group {
            self.stats.tcp_malformed += 1;
            return;
        }
        let header = (ip.tos(), ip.ttl());
        if !ip.is_fragment() {
            if ip.protocol() == IpProtocol::TCP {
                self.receive_tcp(now, src, dst, ip.payload(), csum);
            } else {
                self.receive_udp(now, src, dst, header, ip.payload(), csum);
            }
            return;
        }
        self.stats.frag_received += 1;
        let key = FragKey { src, dst, protocol: ip.protocol().0, ident: ip.ident() };
        let offset = usize::from(ip.frag_offset());
        match self.reassembly.insert(now, key, offset, ip.more_frags(), ip.payload()) {
            FragOutcome::Incomplete => {}
            FragOutcome::Complete(datagram) => {
                self.stats.frag_reassembled += 1;
                // The reassembled bytes live in the reassembler until its next call.
                let len = datagram.len();
                let mut scratch = std::mem::take(&mut self.scratch);
                scratch[..len].copy_from_slice(datagram);
                // Reassembled datagrams carry full checksums whatever the device said.
                if key.protocol == IpProtocol::TCP.0 {
                    self.receive_tcp(now, src, dst, &scratch[..len], RxChecksum::Unverified);
                } else {
                    self.receive_udp(now, src, dst, header, &scratch[..len], RxChecksum::Unverified);
                }
                self.scratch = scratch;
            }
            FragOutcome::Dropped(_) => self.stats.frag_dropped += 1,
        }
    }

    /// `header` is the IP header's (TOS, TTL): of the fragment that completed a reassembled
    /// datagram.
    fn receive_udp(
        &mut self,
        now: Instant,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        header: (u8, u8),
        datagram: &[u8],
        csum: RxChecksum,
    ) {
        let Ok(udp) = UdpPacket::new_checked(datagram) else {
            self.stats.udp_malformed += 1;
            return;
        };
        if csum == RxChecksum::Unverified && !udp.verify_checksum(src, dst) {
            self.stats.udp_bad_checksum += 1;
            return;
        }
        let from = SocketAddrV4::new(src, udp.src_port());
        let to = SocketAddrV4::new(dst, udp.dst_port());
        let payload = udp.payload();
        let arrival = Arrival {
            src: from,
            dst: to,
            tos: header.0,
            ttl: header.1,
            ifindex: self.iface.ifindex,
            timestamp: now,
            drops: 0,
        };
        if dst.is_multicast() || self.iface.is_broadcast(dst) {
            let mut receivers = std::mem::take(&mut self.group_scratch);
            self.sockets.lookup_group(from, to, &mut receivers);
            if receivers.is_empty() {
                self.stats.udp_no_socket += 1;
            }
            for h in &receivers {
                self.deliver(*h, payload, &arrival);
            }
            self.group_scratch = receivers;
            return;
        }
        match self.sockets.lookup_unicast(from, to) {
            Some(h) => self.deliver(h, payload, &arrival),
            None => self.stats.udp_no_socket += 1,
        }
    }

    fn deliver(&mut self, h: SocketHandle, payload: &[u8], arrival: &Arrival) {
        let Some(s) = self.sockets.get_mut(h) else { return };
        let arrival = Arrival { drops: s.drops as u32, ..*arrival };
        if !s.queue.push(payload, &arrival) {
            s.drops += 1;
            self.stats.udp_rcvbuf_full += 1;
            return;
        }
        self.stats.udp_delivered += 1;
        s.arrivals += 1;
        self.event(Event::Readable(h));
    }

    // ---- UDP sockets -----------------------------------------------------------------------

    /// A new, unbound UDP socket.
    pub fn udp_open(&mut self) -> SocketHandle {
        self.sockets.insert(UdpSocket::new(self.config.udp_rcvbuf))
    }

    /// Closes a socket; queued datagrams are dropped.
    pub fn udp_close(&mut self, h: SocketHandle) -> Result<(), UdpError> {
        let s = self.sockets.remove(h).ok_or(UdpError::BadHandle)?;
        for g in &s.memberships {
            self.sockets.group_left(*g);
        }
        Ok(())
    }

    fn socket(&self, h: SocketHandle) -> Result<&UdpSocket, UdpError> {
        self.sockets.get(h).ok_or(UdpError::BadHandle)
    }

    fn socket_mut(&mut self, h: SocketHandle) -> Result<&mut UdpSocket, UdpError> {
        self.sockets.get_mut(h).ok_or(UdpError::BadHandle)
    }

    /// The socket's options, to change them.
    pub fn udp_options_mut(&mut self, h: SocketHandle) -> Result<&mut UdpOptions, UdpError> {
        Ok(&mut self.socket_mut(h)?.options)
    }

    /// The socket's options.
    pub fn udp_options(&self, h: SocketHandle) -> Result<UdpOptions, UdpError> {
        Ok(self.socket(h)?.options)
    }

    /// Binds to `addr` (the caller has bound the kernel socket, which chose the port). Another
    /// socket on an overlapping address refuses unless both set SO_REUSEADDR or SO_REUSEPORT.
    pub fn udp_bind(&mut self, h: SocketHandle, addr: SocketAddrV4) -> Result<(), UdpError> {
        if addr.port() == 0 {
            return Err(UdpError::InvalidAddress);
        }
        let me = self.socket(h)?;
        if me.local.is_some() {
            return Err(UdpError::InvalidAddress);
        }
        let mine = me.options;
        for other in self.sockets.handles().filter(|o| *o != h) {
            let Some(o) = self.sockets.get(other) else { continue };
            let Some(l) = o.local else { continue };
            let overlaps = l.port() == addr.port()
                && (l.ip() == addr.ip() || l.ip().is_unspecified() || addr.ip().is_unspecified());
            let shared = (mine.reuse_addr && o.options.reuse_addr) || (mine.reuse_port && o.options.reuse_port);
            if overlaps && !shared {
                return Err(UdpError::AddressInUse);
            }
        }
        self.socket_mut(h)?.local = Some(addr);
        self.sockets.index(h);
        Ok(())
    }

    /// Connects to `remote`: sends default there and only datagrams from it are received. The
    /// source address is chosen now when the socket is bound to the wildcard.
    pub fn udp_connect(&mut self, h: SocketHandle, remote: SocketAddrV4) -> Result<(), UdpError> {
        let local = self.socket(h)?.local.ok_or(UdpError::NotBound)?;
        let hop = self.routes.lookup(*remote.ip()).ok_or(UdpError::NetworkUnreachable)?;
        let src = if local.ip().is_unspecified() {
            Some(hop.src.or_else(|| self.iface.source_for(*remote.ip())).ok_or(UdpError::NetworkUnreachable)?)
        } else {
            None
        };
        self.sockets.unindex(h);
        let s = self.socket_mut(h)?;
        s.remote = Some(remote);
        s.connected_src = src;
        self.sockets.index(h);
        Ok(())
    }

    /// Dissolves the association (connect with AF_UNSPEC).
    pub fn udp_disconnect(&mut self, h: SocketHandle) -> Result<(), UdpError> {
        self.socket(h)?;
        self.sockets.unindex(h);
        let s = self.socket_mut(h)?;
        s.remote = None;
        s.connected_src = None;
        self.sockets.index(h);
        Ok(())
    }

    /// The bound address and the peer, if any.
    pub fn udp_addresses(&self, h: SocketHandle) -> Result<(Option<SocketAddrV4>, Option<SocketAddrV4>), UdpError> {
        let s = self.socket(h)?;
        let local = s.local.map(|l| match s.connected_src {
            Some(src) => SocketAddrV4::new(src, l.port()),
            None => l,
        });
        Ok((local, s.remote))
    }

    /// Joins a multicast group on this interface.
    pub fn udp_join(&mut self, h: SocketHandle, group: Ipv4Addr) -> Result<(), UdpError> {
        if !group.is_multicast() {
            return Err(UdpError::InvalidAddress);
        }
        let s = self.socket_mut(h)?;
        if s.memberships.contains(&group) {
            return Err(UdpError::Membership);
        }
        s.memberships.push(group);
        self.sockets.group_joined(group);
        Ok(())
    }

    /// The multicast groups a socket joined.
    pub fn udp_memberships(&self, h: SocketHandle) -> Result<&[Ipv4Addr], UdpError> {
        Ok(&self.sockets.get(h).ok_or(UdpError::BadHandle)?.memberships)
    }

    /// Leaves a multicast group.
    pub fn udp_leave(&mut self, h: SocketHandle, group: Ipv4Addr) -> Result<(), UdpError> {
        let s = self.socket_mut(h)?;
        let before = s.memberships.len();
        s.memberships.retain(|g| *g != group);
        if s.memberships.len() == before {
            return Err(UdpError::Membership);
        }
        self.sockets.group_left(group);
        Ok(())
    }

    /// Whether the socket receives `group` with a source filter the stack does not apply
    /// (IP_ADD_SOURCE_MEMBERSHIP, IP_BLOCK_SOURCE): then no datagram of the group goes to it
    /// from the stack, not even as IP_MULTICAST_ALL would give it.
    pub fn udp_set_source_filtered(&mut self, h: SocketHandle, group: Ipv4Addr, on: bool) -> Result<(), UdpError> {
        let s = self.socket_mut(h)?;
        s.source_filtered.retain(|g| *g != group);
        if on {
            s.source_filtered.push(group);
        }
        Ok(())
    }

    /// The groups `udp_set_source_filtered` marked.
    pub fn udp_source_filtered(&self, h: SocketHandle) -> Result<&[Ipv4Addr], UdpError> {
        Ok(&self.sockets.get(h).ok_or(UdpError::BadHandle)?.source_filtered)
    }

    /// Sets SO_RCVBUF.
    pub fn udp_set_rcvbuf(&mut self, h: SocketHandle, bytes: usize) -> Result<(), UdpError> {
        self.socket_mut(h)?.queue.set_limit(bytes);
        Ok(())
    }

    /// Whether a receive would find a datagram.
    pub fn udp_readable(&self, h: SocketHandle) -> Result<bool, UdpError> {
        Ok(!self.socket(h)?.queue.is_empty())
    }

    /// Length of the next datagram (FIONREAD), 0 when none.
    pub fn udp_next_len(&self, h: SocketHandle) -> Result<usize, UdpError> {
        Ok(self.socket(h)?.queue.next_len().unwrap_or(0))
    }

    /// Datagrams ever queued to this socket: an edge-triggered waiter reports readiness again
    /// when it grows, even while older datagrams are still unread (as Linux's EPOLLET does).
    pub fn udp_arrivals(&self, h: SocketHandle) -> Result<u64, UdpError> {
        Ok(self.socket(h)?.arrivals)
    }

    /// Bytes charged to the socket's receive queue: payloads and each datagram's overhead, as
    /// the original's Recv-Q counted ring bytes with headers (exasock-stat).
    pub fn udp_queued_bytes(&self, h: SocketHandle) -> Result<usize, UdpError> {
        Ok(self.socket(h)?.queue.charged())
    }

    /// Datagrams this socket dropped because its queue was full.
    pub fn udp_drops(&self, h: SocketHandle) -> Result<u64, UdpError> {
        Ok(self.socket(h)?.drops)
    }

    /// Receives the next datagram into `buf` (truncating; `info.len` is the full length), or
    /// leaves it queued with `peek`.
    pub fn udp_recv(&mut self, h: SocketHandle, buf: &mut [u8], peek: bool) -> Result<DatagramInfo, UdpError> {
        let s = self.socket_mut(h)?;
        let mut info = s.queue.pop(buf, peek).ok_or(UdpError::WouldBlock)?;
        if !self.iface.has_addr(*info.dst.ip()) {
            info.spec_dst = self.reply_source(*info.src.ip()).unwrap_or(Ipv4Addr::UNSPECIFIED);
        }
        Ok(info)
    }

    /// The local address a reply to `peer` leaves from when nothing else chooses one: the
    /// route's preferred source, else the interface's address on the peer's subnet, else its
    /// first (IP_PKTINFO's ipi_spec_dst for a datagram sent to a group or a broadcast, as
    /// Linux's fib_compute_spec_dst).
    pub fn reply_source(&self, peer: Ipv4Addr) -> Option<Ipv4Addr> {
        self.routes.lookup(peer).and_then(|hop| hop.src).or_else(|| self.iface.source_for(peer))
    }

    /// Sends `payload` to `dst` (or the connected peer): one frame, fragments when larger than
    /// the path MTU (EMSGSIZE instead with IP_PMTUDISC_DO), or the kernel path when the next
    /// hop's MAC is unknown. Returns the payload length.
    pub fn udp_send(
        &mut self,
        h: SocketHandle,
        payload: &[u8],
        dst: Option<SocketAddrV4>,
        tx: &mut dyn Transmit,
    ) -> Result<usize, UdpError> {
        self.udp_send_with(h, payload, dst, &SendControl::default(), tx)
    }

    /// As [`Stack::udp_send`], with what one sendmsg's control messages ask for (IP_PKTINFO's
    /// source address, IP_TOS, IP_TTL), which win over the socket's options for this datagram.
    /// A source address or an interface that is not this one is `NetworkUnreachable`: not this
    /// stack's to send (the kernel decides, as for any other interface).
    pub fn udp_send_with(
        &mut self,
        h: SocketHandle,
        payload: &[u8],
        dst: Option<SocketAddrV4>,
        control: &SendControl,
        tx: &mut dyn Transmit,
    ) -> Result<usize, UdpError> {
        let s = self.socket(h)?;
        let local = s.local.ok_or(UdpError::NotBound)?;
        let dst = dst.or(s.remote).ok_or(UdpError::NoDestination)?;
        let options = s.options;
        if payload.len() > MAX_UDP_PAYLOAD {
            return Err(UdpError::MessageTooLong);
        }
        let multicast = dst.ip().is_multicast();
        let broadcast = self.iface.is_broadcast(*dst.ip());
        if broadcast && options.broadcast_via_kernel {
            return Err(UdpError::NetworkUnreachable);
        }
        // A group or the limited broadcast leaves by the interface its source address names, or
        // by the route toward it (a default route), as Linux's output route; with neither it is
        // the kernel's (ENETUNREACH there, or another interface).
        let link_local = multicast || *dst.ip() == Ipv4Addr::BROADCAST;
        let hop = match self.routes.lookup(*dst.ip()) {
            None if !link_local => return Err(UdpError::NetworkUnreachable),
            hop => hop,
        };
        // The source: the control message's, else the socket's (connected, or bound to one of
        // our addresses: a socket bound to a group or a broadcast address sends from the
        // device's, as Linux), else IP_MULTICAST_IF's for a group, else the route's.
        if control.ifindex != 0 && control.ifindex != self.iface.ifindex {
            return Err(UdpError::NetworkUnreachable);
        }
        let bound = *local.ip();
        let chosen = match control.src {
            // IP_PKTINFO with 0.0.0.0: the route chooses, even for a bound socket (Linux).
            Some(a) if a.is_unspecified() => None,
            Some(a) if self.iface.has_addr(a) => Some(a),
            Some(_) => return Err(UdpError::NetworkUnreachable),
            None => match s.connected_src {
                Some(src) if s.remote == Some(dst) => Some(src),
                _ if bound.is_unspecified() || bound.is_multicast() || self.iface.is_broadcast(bound) => None,
                _ => Some(bound),
            },
        };
        let chosen = match chosen {
            None if multicast => match options.multicast_src {
                // IP_MULTICAST_IF names another interface: the kernel's to send.
                Some(a) if !self.iface.has_addr(a) => return Err(UdpError::NetworkUnreachable),
                a => a,
            },
            c => c,
        };
        let src = match chosen {
            Some(a) => a,
            None if link_local && hop.is_none() && control.ifindex == 0 => return Err(UdpError::NetworkUnreachable),
            None => hop
                .and_then(|h| h.src)
                .or_else(|| self.iface.source_for(*dst.ip()))
                .ok_or(UdpError::NetworkUnreachable)?,
        };
        // After the route, as Linux: no route is ENETUNREACH even without SO_BROADCAST.
        if broadcast && !options.broadcast {
            return Err(UdpError::BroadcastDenied);
        }
        let mtu = hop.and_then(|h| h.mtu).unwrap_or(self.iface.mtu).min(self.iface.mtu);
        let fits = IP_HEADER + 8 + payload.len() <= mtu;
        if !fits && options.dont_fragment {
            return Err(UdpError::MessageTooLong);
        }
        let link = if multicast {
            Link::Ethernet { src: self.iface.mac, dst: multicast_mac(*dst.ip()) }
        } else if broadcast {
            Link::Ethernet { src: self.iface.mac, dst: EthernetAddress::BROADCAST }
        } else {
            let via = hop.map(|h| h.via).unwrap_or(*dst.ip());
            match self.neighbours.lookup(via) {
                Some(mac) => Link::Ethernet { src: self.iface.mac, dst: mac },
                None => {
                    self.event(Event::NeighbourMissing(via));
                    Link::Kernel
                }
            }
        };
        let udp_len = (8 + payload.len()) as u16;
        let mut l4 = [0u8; 8];
        l4[0..2].copy_from_slice(&local.port().to_be_bytes());
        l4[2..4].copy_from_slice(&dst.port().to_be_bytes());
        l4[4..6].copy_from_slice(&udp_len.to_be_bytes());
        let sum = checksum::combine(&[
            checksum::pseudo_header(src, *dst.ip(), IpProtocol::UDP, udp_len),
            checksum::data(&l4),
            checksum::data(payload),
        ]);
        let csum = match checksum::finish(sum) {
            0 => 0xffff,
            c => c,
        };
        l4[6..8].copy_from_slice(&csum.to_be_bytes());
        self.next_ident = self.next_ident.wrapping_add(1);
        let header = PacketHeader {
            src,
            dst: *dst.ip(),
            protocol: IpProtocol::UDP,
            ttl: control.ttl.unwrap_or(if multicast { options.multicast_ttl } else { options.ttl }),
            tos: control.tos.unwrap_or(options.tos),
            ident: self.next_ident,
            dont_frag: fits,
        };
        let mut scratch = std::mem::take(&mut self.scratch);
        let datagram = Datagram { header, l4_header: &l4, payload };
        // A group datagram with TTL 0 stays on the host when the interface has joined the group
        // (ip_mc_output); with no member on the host Linux sends it (ip_output), and so do we.
        let host_member = multicast && self.host_groups.contains_key(dst.ip());
        let sent = if host_member && header.ttl == 0 {
            1
        } else {
            send_datagram(tx, &link, &datagram, mtu, &mut scratch, &mut self.stats)
        };
        if sent > 0 && host_member && options.multicast_loop {
            // IP_MULTICAST_LOOP: this host's members of the group get it too, sockets of this
            // process, of others and of the kernel alike. A copy with TTL 0 goes to the kernel,
            // which loops it to the group's local members and, since the interface has joined
            // the group, keeps it off the wire (ip_mc_output; with no member it would leave by
            // ip_output). Its UDP checksum is wrong on purpose: a looped copy is not checked
            // (CHECKSUM_UNNECESSARY), and should a copy still leave (the last member left a
            // moment ago) every receiver drops it. Receivers see TTL 0 where Linux's looped
            // copy keeps the TTL.
            let correct = u16::from_be_bytes([l4[6], l4[7]]);
            let mut wrong = l4;
            wrong[6..8].copy_from_slice(&(if correct == 1 { 2u16 } else { 1u16 }).to_be_bytes());
            let looped = Datagram { header: PacketHeader { ttl: 0, ..header }, l4_header: &wrong, payload };
            send_datagram(tx, &Link::Kernel, &looped, mtu, &mut scratch, &mut Stats::default());
            self.stats.udp_looped += 1;
        }
        self.scratch = scratch;
        if sent == 0 {
            return Err(UdpError::WouldBlock);
        }
        self.stats.udp_sent += 1;
        Ok(payload.len())
    }
}
