//! Listing connections, as `ss -t` does for the kernel: every connection in the demux table,
//! orphans (closed by the program, still finishing their FIN exchange or in TIME_WAIT) included.

use crate::tcp::State;
use crate::SocketHandle;
use crate::Stack;
use std::net::SocketAddrV4;

impl Stack {
    /// Every connection as (local, remote, state).
    pub fn tcp_connections(&self) -> Vec<(SocketAddrV4, SocketAddrV4, State)> {
        self.tcp
            .connections
            .iter()
            .filter_map(|(&(local, remote), &h)| {
                let c = self.sockets.get_tcp(h)?.connection()?;
                Some((local, remote, c.state()))
            })
            .collect()
    }
}

impl Stack {
    /// Whether a TCP socket still exists behind `h`, closed ones included while they finish
    /// their FIN exchange or TIME_WAIT: a driver keeps the connection's flow until it is gone.
    pub fn tcp_exists(&self, h: SocketHandle) -> bool {
        self.sockets.get_tcp(h).is_some()
    }
}

impl Stack {
    /// Whether some connection still has something to deliver: a handshake under way, data or a
    /// FIN not yet acknowledged (an exiting process waits for this to end before it goes).
    pub fn tcp_unfinished(&self) -> bool {
        self.tcp.connections.values().any(|&h| {
            self.sockets.get_tcp(h).and_then(|s| s.connection()).is_some_and(|c| {
                matches!(
                    c.state(),
                    State::SynSent
                        | State::SynReceived
                        | State::Established
                        | State::CloseWait
                        | State::FinWait1
                        | State::Closing
                        | State::LastAck
                )
            })
        })
    }

    /// Connections a listener completed that nobody accepted yet (0 for anything else): a
    /// listener handed to the kernel cannot take them along.
    pub fn tcp_accept_pending(&self, h: SocketHandle) -> usize {
        self.sockets.get_tcp(h).and_then(|s| s.listener()).map_or(0, |l| l.accept_queue.len())
    }

    /// Resets every connection, closed or not (an exiting process's connections that outlived
    /// its linger): the RSTs go out at the next transmit.
    pub fn tcp_abort_all(&mut self) {
        let all: Vec<SocketHandle> = self.tcp.connections.values().copied().collect();
        for h in all {
            if let Some(c) = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()) {
                c.abort();
            }
            self.tcp_touched(h);
        }
    }
}
