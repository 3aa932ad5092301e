//! The socket table: handles, storage, and the demultiplexer that finds the socket(s) a
//! datagram belongs to in O(1).

use crate::hash::FxHashMap;
use crate::tcp::socket::TcpSocket;
use crate::udp::UdpSocket;
use std::net::{Ipv4Addr, SocketAddrV4};

/// A socket's name in the stack: an index plus a generation, so a stale handle to a closed and
/// reused slot is refused instead of reaching the new socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SocketHandle {
    index: u32,
    generation: u32,
}

impl SocketHandle {
    /// The slot index: dense and reused after a close (with a new generation), so a layer
    /// above can keep per-socket data in a vector indexed by it.
    pub fn index(self) -> u32 {
        self.index
    }
}

/// What a slot holds: UDP and TCP sockets share one handle space.
#[derive(Debug)]
pub(crate) enum Socket {
    Udp(UdpSocket),
    Tcp(Box<TcpSocket>),
}

#[derive(Debug)]
struct Slot {
    generation: u32,
    socket: Option<Socket>,
}

/// Which sockets receive a unicast datagram, in Linux's order of preference.
#[derive(Debug, Default)]
struct Demux {
    /// Connected sockets: (local ip, local port, remote ip, remote port).
    connected: FxHashMap<(Ipv4Addr, u16, Ipv4Addr, u16), Vec<SocketHandle>>,
    /// Bound sockets by (local ip or UNSPECIFIED, port), newest last.
    bound: FxHashMap<(Ipv4Addr, u16), Vec<SocketHandle>>,
}

fn remove_from<K: std::hash::Hash + Eq>(map: &mut FxHashMap<K, Vec<SocketHandle>>, key: K, h: SocketHandle) {
    if let Some(list) = map.get_mut(&key) {
        list.retain(|x| *x != h);
        if list.is_empty() {
            map.remove(&key);
        }
    }
}

/// Every socket of the stack.
#[derive(Debug, Default)]
pub struct SocketTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    demux: Demux,
    /// Memberships of the stack's sockets per group: a group any of them joined is joined on
    /// the interface, and IP_MULTICAST_ALL sockets receive it too.
    joined: FxHashMap<Ipv4Addr, u32>,
}

impl SocketTable {
    fn store(&mut self, socket: Socket) -> SocketHandle {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.socket = Some(socket);
            return SocketHandle { index, generation: slot.generation };
        }
        self.slots.push(Slot { generation: 0, socket: Some(socket) });
        SocketHandle { index: (self.slots.len() - 1) as u32, generation: 0 }
    }

    fn slot(&self, h: SocketHandle) -> Option<&Socket> {
        self.slots.get(h.index as usize).filter(|s| s.generation == h.generation)?.socket.as_ref()
    }

    fn slot_mut(&mut self, h: SocketHandle) -> Option<&mut Socket> {
        self.slots.get_mut(h.index as usize).filter(|s| s.generation == h.generation)?.socket.as_mut()
    }

    fn take(&mut self, h: SocketHandle) -> Option<Socket> {
        let slot = self.slots.get_mut(h.index as usize).filter(|s| s.generation == h.generation)?;
        let socket = slot.socket.take()?;
        slot.generation = slot.generation.wrapping_add(1);
        self.free.push(h.index);
        Some(socket)
    }

    /// Stores a UDP socket and returns its handle.
    pub(crate) fn insert(&mut self, socket: UdpSocket) -> SocketHandle {
        self.store(Socket::Udp(socket))
    }

    /// Stores a TCP socket and returns its handle.
    pub(crate) fn insert_tcp(&mut self, socket: TcpSocket) -> SocketHandle {
        self.store(Socket::Tcp(Box::new(socket)))
    }

    /// Removes a UDP socket (and every demux entry of it).
    pub(crate) fn remove(&mut self, h: SocketHandle) -> Option<UdpSocket> {
        self.get(h)?;
        self.unindex(h);
        match self.take(h)? {
            Socket::Udp(u) => Some(u),
            Socket::Tcp(_) => None,
        }
    }

    /// Removes a TCP socket (its demux entries are the TCP tables' business).
    pub(crate) fn remove_tcp(&mut self, h: SocketHandle) -> Option<Box<TcpSocket>> {
        self.get_tcp(h)?;
        match self.take(h)? {
            Socket::Tcp(t) => Some(t),
            Socket::Udp(_) => None,
        }
    }

    /// The UDP socket behind a handle, if it is still open.
    pub(crate) fn get(&self, h: SocketHandle) -> Option<&UdpSocket> {
        match self.slot(h)? {
            Socket::Udp(u) => Some(u),
            Socket::Tcp(_) => None,
        }
    }

    /// Mutable access to the UDP socket behind a handle.
    pub(crate) fn get_mut(&mut self, h: SocketHandle) -> Option<&mut UdpSocket> {
        match self.slot_mut(h)? {
            Socket::Udp(u) => Some(u),
            Socket::Tcp(_) => None,
        }
    }

    /// The TCP socket behind a handle.
    pub(crate) fn get_tcp(&self, h: SocketHandle) -> Option<&TcpSocket> {
        match self.slot(h)? {
            Socket::Tcp(t) => Some(t),
            Socket::Udp(_) => None,
        }
    }

    /// Mutable access to the TCP socket behind a handle.
    pub(crate) fn get_tcp_mut(&mut self, h: SocketHandle) -> Option<&mut TcpSocket> {
        match self.slot_mut(h)? {
            Socket::Tcp(t) => Some(t),
            Socket::Udp(_) => None,
        }
    }

    /// Removes a socket's demux entries (before its addresses change).
    pub(crate) fn unindex(&mut self, h: SocketHandle) {
        let Some(s) = self.get(h) else { return };
        let (local, remote, connected_src) = (s.local, s.remote, s.connected_src);
        if let Some(local) = local {
            remove_from(&mut self.demux.bound, (*local.ip(), local.port()), h);
            if let Some(remote) = remote {
                let src = connected_src.unwrap_or(*local.ip());
                remove_from(&mut self.demux.connected, (src, local.port(), *remote.ip(), remote.port()), h);
            }
        }
    }

    /// Adds a socket's demux entries from its current addresses.
    pub(crate) fn index(&mut self, h: SocketHandle) {
        let Some(s) = self.get(h) else { return };
        let (local, remote, src) = (s.local, s.remote, s.connected_src);
        if let Some(local) = local {
            match remote {
                Some(remote) => {
                    let src = src.unwrap_or(*local.ip());
                    self.demux.connected.entry((src, local.port(), *remote.ip(), remote.port())).or_default().push(h);
                }
                None => self.demux.bound.entry((*local.ip(), local.port())).or_default().push(h),
            }
        }
    }

    /// The one socket a unicast datagram goes to: a connected match, else one bound to the
    /// destination address, else one bound to the wildcard. Among several with SO_REUSEPORT a
    /// hash of the 4-tuple picks (so a flow sticks to one socket); otherwise the newest wins.
    pub(crate) fn lookup_unicast(&self, src: SocketAddrV4, dst: SocketAddrV4) -> Option<SocketHandle> {
        let d = &self.demux;
        if let Some(list) = d.connected.get(&(*dst.ip(), dst.port(), *src.ip(), src.port())) {
            return list.last().copied();
        }
        let list =
            d.bound.get(&(*dst.ip(), dst.port())).or_else(|| d.bound.get(&(Ipv4Addr::UNSPECIFIED, dst.port())))?;
        let reuseport: usize = list.iter().filter(|h| self.get(**h).is_some_and(|s| s.options.reuse_port)).count();
        if reuseport == list.len() && reuseport > 1 {
            let hash = flow_hash(src, dst);
            return list.get((hash % list.len() as u64) as usize).copied();
        }
        list.last().copied()
    }

    /// Every socket a multicast or broadcast datagram to `dst` goes to: bound to its port and to
    /// the wildcard or that very address (and, for a group, members of it); connected sockets
    /// only when the source matches their peer.
    pub(crate) fn lookup_group(&self, src: SocketAddrV4, dst: SocketAddrV4, out: &mut Vec<SocketHandle>) {
        out.clear();
        let d = &self.demux;
        let keys = [(*dst.ip(), dst.port()), (Ipv4Addr::UNSPECIFIED, dst.port())];
        for key in keys {
            if let Some(list) = d.bound.get(&key) {
                out.extend(list.iter().copied().filter(|h| self.accepts_group(*h, *dst.ip())));
            }
        }
        for (key, list) in &d.connected {
            if key.1 == dst.port() && key.2 == *src.ip() && key.3 == src.port() {
                out.extend(list.iter().copied().filter(|h| self.accepts_group(*h, *dst.ip())));
            }
        }
    }

    /// Whether a socket bound to receive a group's (or a broadcast) port takes it: a member,
    /// or with IP_MULTICAST_ALL (Linux's default) any socket once the group is joined on the
    /// interface, as Linux's ip_mc_sf_allow.
    fn accepts_group(&self, h: SocketHandle, group: Ipv4Addr) -> bool {
        self.get(h).is_some_and(|s| {
            !group.is_multicast()
                || (!s.source_filtered.contains(&group)
                    && (s.memberships.contains(&group)
                        || (s.options.multicast_all && self.joined.contains_key(&group))))
        })
    }

    /// A socket joined `group`.
    pub(crate) fn group_joined(&mut self, group: Ipv4Addr) {
        *self.joined.entry(group).or_insert(0) += 1;
    }

    /// A socket left `group` (or closed while a member).
    pub(crate) fn group_left(&mut self, group: Ipv4Addr) {
        if let Some(n) = self.joined.get_mut(&group) {
            *n -= 1;
            if *n == 0 {
                self.joined.remove(&group);
            }
        }
    }

    /// Handles of every open socket.
    pub fn handles(&self) -> impl Iterator<Item = SocketHandle> + '_ {
        self.slots
            .iter()
            .enumerate()
            .filter(|(_, s)| s.socket.is_some())
            .map(|(i, s)| SocketHandle { index: i as u32, generation: s.generation })
    }
}

/// A symmetric-enough hash of a 4-tuple for SO_REUSEPORT selection.
fn flow_hash(src: SocketAddrV4, dst: SocketAddrV4) -> u64 {
    use std::hash::Hasher;
    let mut h = crate::hash::FxHasher::default();
    h.write_u32(u32::from(*src.ip()));
    h.write_u16(src.port());
    h.write_u32(u32::from(*dst.ip()));
    h.write_u16(dst.port());
    h.finish() >> 16
}
