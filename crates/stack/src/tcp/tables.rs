//! The stack's TCP state beside the socket table: O(1) demultiplexing (connections by 4-tuple,
//! listeners by address), the timer wheel, the list of sockets with something to send, and
//! RSTs owed to segments that matched no socket.

use crate::hash::FxHashMap;
use crate::socket::SocketHandle;
use crate::time::Instant;
use crate::timer::TimerWheel;
use std::collections::VecDeque;
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

#[derive(Debug)]
pub(crate) struct TcpTables {
    pub connections: FxHashMap<FourTuple, SocketHandle>,
    pub listeners: FxHashMap<(Ipv4Addr, u16), SocketHandle>,
    pub timers: TimerWheel<SocketHandle>,
    pub dirty: Vec<SocketHandle>,
    pub resets: VecDeque<PendingReset>,
    pub expired: Vec<SocketHandle>,
    /// One TCP segment being built.
    pub segment: Vec<u8>,
}

impl TcpTables {
    pub fn new() -> TcpTables {
        TcpTables {
            connections: FxHashMap::default(),
            listeners: FxHashMap::default(),
            timers: TimerWheel::new(Duration::from_millis(1), Instant::ZERO),
            dirty: Vec::new(),
            resets: VecDeque::with_capacity(MAX_PENDING_RESETS),
            expired: Vec::new(),
            segment: vec![0u8; 65_536],
        }
    }

    /// The listener for a segment to `local`: bound to that address, else to the wildcard.
    pub fn listener(&self, local: SocketAddrV4) -> Option<SocketHandle> {
        self.listeners
            .get(&(*local.ip(), local.port()))
            .or_else(|| self.listeners.get(&(Ipv4Addr::UNSPECIFIED, local.port())))
            .copied()
    }

    pub fn queue_reset(&mut self, rst: PendingReset) -> bool {
        if self.resets.len() >= MAX_PENDING_RESETS {
            return false;
        }
        self.resets.push_back(rst);
        true
    }
}
