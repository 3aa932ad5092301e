//! The stack's TCP state beside the socket table: O(1) demultiplexing (connections by 4-tuple,
//! listeners by address, hashed under a per-stack key), the timer wheel, the list of sockets with something to send, and
//! RSTs owed to segments that matched no socket.

use super::reuseport::ListenGroup;
use crate::hash::{KeyedHashMap, KeyedState};
use crate::socket::SocketHandle;
use crate::time::Instant;
use crate::timer::TimerWheel;
use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// (local, remote) of a connection.
pub(crate) type FourTuple = (SocketAddrV4, SocketAddrV4);

/// A RST for a segment that reached no socket.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingReset {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub seq: u32,
    pub ack: Option<u32>,
}

/// RSTs kept for the next transmit; more are dropped (they are only courtesy).
const MAX_PENDING_RESETS: usize = 64;

/// A SYN-ACK carrying a SYN cookie: the listener keeps nothing of the handshake.
#[derive(Debug, Clone, Copy)]
pub(crate) struct PendingSynAck {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    /// The cookie.
    pub seq: u32,
    pub ack: u32,
    pub window: u16,
    pub options: wire::TcpOptions,
    pub ttl: u8,
    pub tos: u8,
}

/// Cookie SYN-ACKs kept for the next transmit (a receive burst's worth); more are dropped,
/// and their peers send the SYN again.
const MAX_PENDING_SYNACKS: usize = 256;

#[derive(Debug)]
pub(crate) struct TcpTables {
    /// Keyed per stack: a peer chooses the tuples (every SYN adds one).
    pub connections: KeyedHashMap<FourTuple, SocketHandle>,
    /// Listeners by bound address: one, or an SO_REUSEPORT group.
    pub listeners: KeyedHashMap<(Ipv4Addr, u16), ListenGroup>,
    pub timers: TimerWheel<SocketHandle>,
    pub dirty: Vec<SocketHandle>,
    pub resets: VecDeque<PendingReset>,
    pub synacks: VecDeque<PendingSynAck>,
    pub expired: Vec<SocketHandle>,
    /// One TCP segment being built.
    pub segment: Vec<u8>,
    /// Demultiplexer lookups and sockets transmit looked at (see `stats::Work`).
    pub demux_lookups: u64,
    pub transmit_visits: u64,
    /// Connections in TIME_WAIT (`TcpConfig::max_time_wait` bounds them).
    pub time_wait: usize,
    /// Path MTUs ICMP fragmentation needed taught us, per destination, until they expire
    /// (Linux's route exceptions, ip_rt_mtu_expires): new connections start with them.
    pub pmtu: crate::hash::FxHashMap<Ipv4Addr, (u32, Instant)>,
}

/// How long a learnt path MTU holds (Linux's ip_rt_mtu_expires, 10 minutes).
pub(crate) const PMTU_EXPIRES: Duration = Duration::from_secs(600);
/// Destinations whose path MTU is remembered; past it expired ones are swept, and if none
/// has expired the new one is not kept (its connection still uses it).
const MAX_PMTU_ENTRIES: usize = 4096;

impl TcpTables {
    /// Tables whose demultiplexer hashes under `key`.
    pub fn new(key: KeyedState) -> TcpTables {
        TcpTables {
            connections: KeyedHashMap::with_hasher(key),
            listeners: KeyedHashMap::with_hasher(key),
            timers: TimerWheel::new(Duration::from_millis(1), Instant::ZERO),
            dirty: Vec::new(),
            resets: VecDeque::with_capacity(MAX_PENDING_RESETS),
            synacks: VecDeque::with_capacity(MAX_PENDING_SYNACKS),
            expired: Vec::new(),
            segment: vec![0u8; 65_536],
            demux_lookups: 0,
            transmit_visits: 0,
            time_wait: 0,
            pmtu: Default::default(),
        }
    }

    /// The path MTU learnt for `dst`, if it has not expired at `now`.
    pub fn path_mtu(&self, dst: Ipv4Addr, now: Instant) -> Option<u32> {
        self.pmtu.get(&dst).filter(|(_, until)| now < *until).map(|(mtu, _)| *mtu)
    }

    /// Remembers `mtu` for `dst` until `now` + 10 minutes.
    pub fn learn_path_mtu(&mut self, dst: Ipv4Addr, mtu: u32, now: Instant) {
        if self.pmtu.len() >= MAX_PMTU_ENTRIES && !self.pmtu.contains_key(&dst) {
            self.pmtu.retain(|_, (_, until)| now < *until);
            if self.pmtu.len() >= MAX_PMTU_ENTRIES {
                return;
            }
        }
        self.pmtu.insert(dst, (mtu, now + PMTU_EXPIRES));
    }

    /// The listener for a segment from `remote` to `local`: bound to that address, else to
    /// the wildcard; in an SO_REUSEPORT group, the member the keyed hash of the 4-tuple picks.
    pub fn listener(&mut self, local: SocketAddrV4, remote: SocketAddrV4) -> Option<SocketHandle> {
        self.demux_lookups += 1;
        let group = match self.listeners.get(&(*local.ip(), local.port())) {
            Some(g) => g,
            None => {
                self.demux_lookups += 1;
                self.listeners.get(&(Ipv4Addr::UNSPECIFIED, local.port()))?
            }
        };
        match group.members.as_slice() {
            [one] => Some(*one),
            _ => group.pick(self.listeners.hasher().hash_one((local, remote))),
        }
    }

    pub fn queue_reset(&mut self, rst: PendingReset) -> bool {
        if self.resets.len() >= MAX_PENDING_RESETS {
            return false;
        }
        self.resets.push_back(rst);
        true
    }

    pub fn queue_synack(&mut self, synack: PendingSynAck) -> bool {
        if self.synacks.len() >= MAX_PENDING_SYNACKS {
            return false;
        }
        self.synacks.push_back(synack);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Must-fix 8: where a 4-tuple lands in the demultiplexer depends on a per-stack key, so a
    /// peer cannot compute tuples that all fall into one bucket.
    #[test]
    fn the_demux_hash_is_keyed_per_stack() {
        let a = TcpTables::new(KeyedState::new([1, 2]));
        let b = TcpTables::new(KeyedState::new([3, 4]));
        let tuple: FourTuple =
            (SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80), SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000));
        let same = (0..64u16)
            .filter(|i| {
                let t = (tuple.0, SocketAddrV4::new(*tuple.1.ip(), 40000 + i));
                a.connections.hasher().hash_one(t) == b.connections.hasher().hash_one(t)
            })
            .count();
        assert_eq!(same, 0, "two keys, the same hashes");
        let listener = (Ipv4Addr::UNSPECIFIED, 80u16);
        assert_ne!(a.listeners.hasher().hash_one(listener), b.listeners.hasher().hash_one(listener));
        let a2 = TcpTables::new(KeyedState::new([1, 2]));
        assert_eq!(a.connections.hasher().hash_one(tuple), a2.connections.hasher().hash_one(tuple));
    }
}
