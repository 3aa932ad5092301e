//! A TCP socket as the socket table holds it: nothing yet, a listener, or a connection, plus
//! what the stack tracks around it (timer, transmit and readiness bookkeeping).

use super::connection::Connection;
use super::listener::Listener;
use super::options::TcpSocketOptions;
use crate::socket::SocketHandle;
use crate::time::Instant;
use crate::timer::TimerId;
use std::net::SocketAddrV4;

/// What a TCP socket is now. (The whole socket is boxed in the table, so the large
/// connection variant costs nothing to the others.)
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub(crate) enum TcpKind {
    /// Opened, maybe bound, neither listening nor connected.
    Idle,
    /// listen() was called.
    Listener(Listener),
    /// connect() was called, or accepted from a listener.
    Connection(Connection),
}

/// A TCP socket in the table.
#[derive(Debug)]
pub(crate) struct TcpSocket {
    pub(crate) local: Option<SocketAddrV4>,
    pub(crate) options: TcpSocketOptions,
    pub(crate) kind: TcpKind,
    /// The listener of a connection not yet accepted.
    pub(crate) parent: Option<SocketHandle>,
    /// In the parent's accept queue.
    pub(crate) queued: bool,
    /// The application closed it; it is freed when the connection is finished.
    pub(crate) orphan: bool,
    /// The wheel timer scheduled for it, and its deadline.
    pub(crate) timer: Option<(TimerId, Instant)>,
    /// Listed for the next `Stack::transmit`.
    pub(crate) dirty: bool,
    /// Indexed by its 4-tuple.
    pub(crate) in_demux: bool,
    /// What the last settle found and signalled (`MARK_*` bits: readable, writable, counted
    /// in TIME_WAIT, cut short of TIME_WAIT), in one byte: an idle connection's size matters.
    pub(crate) marks: u8,
    /// The arrival count when last settled (its low bits): a Readable event goes out for each
    /// change queued while readable, not only on the edge (edge-triggered waiters).
    pub(crate) signalled_arrivals: u16,
}

/// `TcpSocket::marks`: readable when last settled (a Readable event went out).
pub(crate) const MARK_READABLE: u8 = 1;
/// Writable when last settled.
pub(crate) const MARK_WRITABLE: u8 = 2;
/// Counted in `TcpTables::time_wait`.
pub(crate) const MARK_TIME_WAIT: u8 = 4;
/// Reached TIME_WAIT with its bound reached: ends at the next tick, uncounted.
pub(crate) const MARK_TIME_WAIT_CUT: u8 = 8;

impl TcpSocket {
    /// Whether a mark is set.
    pub(crate) fn marked(&self, mark: u8) -> bool {
        self.marks & mark != 0
    }

    /// Sets or clears a mark.
    pub(crate) fn mark(&mut self, mark: u8, on: bool) {
        if on {
            self.marks |= mark;
        } else {
            self.marks &= !mark;
        }
    }

    pub(crate) fn new(options: TcpSocketOptions) -> TcpSocket {
        TcpSocket {
            local: None,
            options,
            kind: TcpKind::Idle,
            parent: None,
            queued: false,
            orphan: false,
            timer: None,
            dirty: false,
            in_demux: false,
            marks: 0,
            signalled_arrivals: 0,
        }
    }

    pub(crate) fn connection(&self) -> Option<&Connection> {
        match &self.kind {
            TcpKind::Connection(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn connection_mut(&mut self) -> Option<&mut Connection> {
        match &mut self.kind {
            TcpKind::Connection(c) => Some(c),
            _ => None,
        }
    }

    pub(crate) fn listener(&self) -> Option<&Listener> {
        match &self.kind {
            TcpKind::Listener(l) => Some(l),
            _ => None,
        }
    }

    pub(crate) fn listener_mut(&mut self) -> Option<&mut Listener> {
        match &mut self.kind {
            TcpKind::Listener(l) => Some(l),
            _ => None,
        }
    }
}
