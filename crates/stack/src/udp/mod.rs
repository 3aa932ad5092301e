//! UDP endpoints: what a UDP socket is to the stack, and its errors.

pub mod queue;

use queue::DatagramQueue;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};

/// Per-socket options that change what the stack sends or accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpOptions {
    /// IP_TTL for unicast (default 64).
    pub ttl: u8,
    /// IP_MULTICAST_TTL (default 1).
    pub multicast_ttl: u8,
    /// IP_TOS.
    pub tos: u8,
    /// IP_MULTICAST_IF's address: the source of datagrams to a group from a socket not bound
    /// to a unicast address (None: the route's).
    pub multicast_src: Option<Ipv4Addr>,
    /// IP_MTU_DISCOVER = IP_PMTUDISC_DO: never fragment; too-large sends fail with EMSGSIZE.
    pub dont_fragment: bool,
    /// IP_MULTICAST_LOOP (default on): a datagram sent to a group also reaches this host's
    /// members of it.
    pub multicast_loop: bool,
    /// IP_MULTICAST_ALL (default on): a socket bound to the wildcard or a group receives every
    /// group joined on the host on its port, not only its own.
    pub multicast_all: bool,
    /// Broadcasts are the kernel's to send (`NetworkUnreachable`): Linux loops every broadcast
    /// a host sends to its own sockets of the port, which the stack cannot do without a second
    /// copy on the wire. Off: the stack sends them and no local socket gets them.
    pub broadcast_via_kernel: bool,
    /// SO_BROADCAST: sending to a broadcast address is allowed.
    pub broadcast: bool,
    /// SO_REUSEADDR.
    pub reuse_addr: bool,
    /// SO_REUSEPORT.
    pub reuse_port: bool,
}

impl Default for UdpOptions {
    fn default() -> Self {
        UdpOptions {
            ttl: 64,
            multicast_ttl: 1,
            tos: 0,
            multicast_src: None,
            multicast_loop: true,
            multicast_all: true,
            broadcast_via_kernel: false,
            dont_fragment: false,
            broadcast: false,
            reuse_addr: false,
            reuse_port: false,
        }
    }
}

/// What one send's control messages ask for (sendmsg with IP_PKTINFO, IP_TOS, IP_TTL): each
/// set field wins over the socket's options for that datagram only.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SendControl {
    /// The source address (IP_PKTINFO's ipi_spec_dst, when not 0.0.0.0).
    pub src: Option<Ipv4Addr>,
    /// The TOS byte (IP_TOS).
    pub tos: Option<u8>,
    /// The TTL, unicast or multicast (IP_TTL).
    pub ttl: Option<u8>,
    /// The interface to send on (IP_PKTINFO's ipi_ifindex; 0: any).
    pub ifindex: u32,
}

/// A UDP socket's state in the stack.
#[derive(Debug)]
pub struct UdpSocket {
    /// Bound address (the wildcard IP for INADDR_ANY).
    pub(crate) local: Option<SocketAddrV4>,
    /// Peer of a connected socket.
    pub(crate) remote: Option<SocketAddrV4>,
    /// Source address picked at connect when bound to the wildcard.
    pub(crate) connected_src: Option<Ipv4Addr>,
    /// Received datagrams.
    pub(crate) queue: DatagramQueue,
    /// Options.
    pub(crate) options: UdpOptions,
    /// Multicast groups joined.
    pub(crate) memberships: Vec<Ipv4Addr>,
    /// Groups this socket receives with a source filter (a source-specific membership, or
    /// blocked sources) that the stack does not know: it never delivers them to the socket
    /// (whose kernel socket, which holds the filter, does).
    pub(crate) source_filtered: Vec<Ipv4Addr>,
    /// Datagrams dropped because the queue was full.
    pub(crate) drops: u64,
    /// Datagrams ever queued (edge-triggered readiness compares it).
    pub(crate) arrivals: u64,
}

impl UdpSocket {
    pub(crate) fn new(rcvbuf: usize) -> Self {
        UdpSocket {
            local: None,
            remote: None,
            connected_src: None,
            queue: DatagramQueue::new(rcvbuf),
            options: UdpOptions::default(),
            memberships: Vec::new(),
            source_filtered: Vec::new(),
            drops: 0,
            arrivals: 0,
        }
    }
}

/// Why a UDP call failed. The preload layer maps each to the errno Linux gives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpError {
    /// No socket behind the handle (EBADF).
    BadHandle,
    /// Nothing to receive, or no transmit slot (EAGAIN).
    WouldBlock,
    /// Too large for one datagram, or for the path with IP_PMTUDISC_DO (EMSGSIZE).
    MessageTooLong,
    /// No destination given on an unconnected socket (EDESTADDRREQ).
    NoDestination,
    /// The socket is not bound (the caller binds the kernel socket first) (EINVAL).
    NotBound,
    /// No route to the destination (ENETUNREACH).
    NetworkUnreachable,
    /// Broadcast destination without SO_BROADCAST (EACCES).
    BroadcastDenied,
    /// The address is in use by another socket without SO_REUSEADDR/SO_REUSEPORT (EADDRINUSE).
    AddressInUse,
    /// Already a member of that group (EADDRINUSE), or not a member when leaving (EADDRNOTAVAIL).
    Membership,
    /// An address that cannot be used here (EINVAL), e.g. port 0 or a multicast bind of a
    /// non-group.
    InvalidAddress,
}

impl fmt::Display for UdpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            UdpError::BadHandle => "no such socket",
            UdpError::WouldBlock => "operation would block",
            UdpError::MessageTooLong => "message too long",
            UdpError::NoDestination => "destination address required",
            UdpError::NotBound => "socket not bound",
            UdpError::NetworkUnreachable => "network is unreachable",
            UdpError::BroadcastDenied => "broadcast not enabled on this socket (SO_BROADCAST)",
            UdpError::AddressInUse => "address already in use",
            UdpError::Membership => "multicast membership error",
            UdpError::InvalidAddress => "invalid address",
        })
    }
}

impl std::error::Error for UdpError {}
