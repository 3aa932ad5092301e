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
    /// Readable when last settled, and its arrival count then: a Readable event goes out for
    /// each change queued while readable, not only on the edge (edge-triggered waiters).
    pub(crate) readable_signalled: bool,
    pub(crate) signalled_arrivals: u32,
    pub(crate) writable_signalled: bool,
}

impl TcpSocket {
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
            readable_signalled: false,
            signalled_arrivals: 0,
            writable_signalled: false,
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
