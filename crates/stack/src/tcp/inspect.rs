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
    /// Resets the connection (local, remote), closed or not (an exiting process's connections
    /// that outlived their linger).
    pub fn tcp_abort_connection(
        &mut self,
        local: SocketAddrV4,
        remote: SocketAddrV4,
    ) -> Result<(), crate::tcp::TcpError> {
        let h = *self.tcp.connections.get(&(local, remote)).ok_or(crate::tcp::TcpError::BadHandle)?;
        let c = self.sockets.get_tcp_mut(h).and_then(|s| s.connection_mut()).ok_or(crate::tcp::TcpError::BadHandle)?;
        c.abort();
        self.tcp_touched(h);
        Ok(())
    }
}
