//! A listening socket: its SYN queue (handshakes in progress) and accept queue (established
//! connections waiting for accept), both bounded by the backlog with Linux's semantics.

use super::options::TcpSocketOptions;
use crate::socket::SocketHandle;
use crate::time::Instant;
use std::collections::VecDeque;
use std::net::SocketAddrV4;

/// A listener.
#[derive(Debug)]
pub struct Listener {
    pub(crate) local: SocketAddrV4,
    /// The listen backlog after the somaxconn cap.
    pub(crate) backlog: usize,
    /// Children in SYN_RECEIVED.
    pub(crate) syn_queue: usize,
    /// Established children not yet accepted, oldest first.
    pub(crate) accept_queue: VecDeque<SocketHandle>,
    /// Every child not yet accepted (handshakes and the accept queue; a freed one lingers
    /// until the next prune), so closing the listener visits its children, not every socket.
    pub(crate) children: Vec<SocketHandle>,
    /// Options children inherit.
    pub(crate) options: TcpSocketOptions,
    /// Final ACKs dropped because the accept queue was full (ListenOverflows).
    pub(crate) overflows: u64,
    /// SYNs dropped because a queue was full (ListenDrops).
    pub(crate) syn_drops: u64,
    /// Connections ever queued for accept (edge-triggered readiness).
    pub(crate) arrivals: u64,
    /// SYNs that asked for a connection, taken or dropped (exasock-stat's connection requests).
    pub(crate) requests: u64,
    /// When the last SYN cookie was sent (Linux's synq_overflow_ts): ACKs that match no
    /// handshake are checked for a cookie only for two minutes after it.
    pub(crate) cookie_sent_at: Option<Instant>,
}

impl Listener {
    pub(crate) fn new(local: SocketAddrV4, backlog: usize, options: TcpSocketOptions) -> Listener {
        Listener {
            local,
            backlog,
            syn_queue: 0,
            accept_queue: VecDeque::with_capacity(backlog.min(1024) + 1),
            children: Vec::new(),
            options,
            overflows: 0,
            syn_drops: 0,
            arrivals: 0,
            requests: 0,
            cookie_sent_at: None,
        }
    }

    /// Linux's sk_acceptq_is_full: more than `backlog` connections wait.
    pub(crate) fn accept_queue_full(&self) -> bool {
        self.accept_queue.len() > self.backlog
    }

    /// Whether another handshake may start with a queued request (the SYN queue is bounded by
    /// the backlog too); past it a SYN gets a cookie, or is dropped without SYN cookies.
    pub(crate) fn syn_queue_full(&self) -> bool {
        self.syn_queue >= self.backlog.max(1)
    }

    /// Whether an ACK that matches no handshake may carry a cookie of ours (Linux's
    /// !tcp_synq_no_recent_overflow).
    pub(crate) fn cookies_recent(&self, now: Instant) -> bool {
        self.cookie_sent_at.is_some_and(|at| now.saturating_since(at).as_nanos() as u64 <= super::syncookie::VALID_NS)
    }
}
