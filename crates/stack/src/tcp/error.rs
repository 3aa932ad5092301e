//! Why a TCP call failed, with the errno Linux gives for it.

use std::fmt;

/// A TCP error. The preload layer turns it into `errno()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TcpError {
    /// No TCP socket behind the handle (EBADF).
    BadHandle,
    /// Nothing to read, no room to write, nothing to accept (EAGAIN).
    WouldBlock,
    /// The peer answered the SYN with RST (ECONNREFUSED).
    ConnectionRefused,
    /// The peer reset the connection (ECONNRESET).
    ConnectionReset,
    /// Retransmissions, SYN retries or keepalive probes ran out (ETIMEDOUT).
    TimedOut,
    /// Writing after shutdown(SHUT_WR) or after the connection died (EPIPE).
    BrokenPipe,
    /// The socket is not connected (ENOTCONN).
    NotConnected,
    /// connect on a connected socket (EISCONN).
    IsConnected,
    /// connect while a connect is in progress (EALREADY).
    Already,
    /// Wrong state or argument for this call, e.g. accept on a non-listener (EINVAL).
    InvalidArgument,
    /// Another socket uses this address (EADDRINUSE).
    AddressInUse,
    /// No route to the destination, or an ICMP network unreachable (ENETUNREACH).
    NetworkUnreachable,
    /// An ICMP host unreachable or time exceeded (EHOSTUNREACH).
    HostUnreachable,
    /// An ICMP protocol unreachable (ENOPROTOOPT).
    ProtocolUnavailable,
    /// An ICMP source route failed (EOPNOTSUPP).
    NotSupported,
    /// An ICMP host unknown (EHOSTDOWN).
    HostDown,
    /// An ICMP host isolated (ENONET).
    NotOnNetwork,
    /// An ICMP parameter problem (EPROTO).
    ProtocolError,
    /// No congestion control algorithm by that name (TCP_CONGESTION: ENOENT).
    NoSuchAlgorithm,
}

impl TcpError {
    /// The Linux errno number with this meaning.
    pub fn errno(self) -> i32 {
        match self {
            TcpError::BadHandle => 9,
            TcpError::WouldBlock => 11,
            TcpError::ConnectionRefused => 111,
            TcpError::ConnectionReset => 104,
            TcpError::TimedOut => 110,
            TcpError::BrokenPipe => 32,
            TcpError::NotConnected => 107,
            TcpError::IsConnected => 106,
            TcpError::Already => 114,
            TcpError::InvalidArgument => 22,
            TcpError::AddressInUse => 98,
            TcpError::NetworkUnreachable => 101,
            TcpError::HostUnreachable => 113,
            TcpError::ProtocolUnavailable => 92,
            TcpError::NotSupported => 95,
            TcpError::HostDown => 112,
            TcpError::NotOnNetwork => 64,
            TcpError::ProtocolError => 71,
            TcpError::NoSuchAlgorithm => 2,
        }
    }
}

impl fmt::Display for TcpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TcpError::BadHandle => "no such TCP socket",
            TcpError::WouldBlock => "operation would block",
            TcpError::ConnectionRefused => "connection refused",
            TcpError::ConnectionReset => "connection reset by peer",
            TcpError::TimedOut => "connection timed out",
            TcpError::BrokenPipe => "broken pipe",
            TcpError::NotConnected => "socket is not connected",
            TcpError::IsConnected => "socket is already connected",
            TcpError::Already => "connection already in progress",
            TcpError::InvalidArgument => "invalid argument",
            TcpError::AddressInUse => "address already in use",
            TcpError::NetworkUnreachable => "network is unreachable",
            TcpError::HostUnreachable => "no route to host",
            TcpError::ProtocolUnavailable => "protocol not available",
            TcpError::NotSupported => "operation not supported",
            TcpError::HostDown => "host is down",
            TcpError::NotOnNetwork => "machine is not on the network",
            TcpError::ProtocolError => "protocol error",
            TcpError::NoSuchAlgorithm => "no such congestion control algorithm",
        })
    }
}

impl std::error::Error for TcpError {}
