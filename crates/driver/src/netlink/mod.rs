//! rtnetlink access to the kernel's IPv4 routes, neighbours and addresses.
//!
//! The user-space stack does not run its own routing or ARP policy: it copies the kernel's
//! decisions. [`Netlink`] asks the kernel (a FIB lookup for one destination, dumps of the route,
//! neighbour and address tables, one neighbour entry) and [`Monitor`] listens for changes to those
//! tables so the driver can keep its caches current without asking on the fast path.
//!
//! Everything goes through raw `NETLINK_ROUTE` sockets and libc calls; messages are built and
//! parsed by hand. The parsers ([`parse_route`], [`parse_neighbour`], [`parse_address`],
//! [`parse_changes`]) are pure functions over byte slices and total: a short or garbled message is
//! an [`io::ErrorKind::InvalidData`] error, never a panic. Only IPv4 (`AF_INET`) is handled;
//! messages of other families are skipped.
//!
//! Netlink headers and fixed structs are in host byte order; addresses in attributes are in
//! network byte order.

use std::fmt;
use std::io;
use std::mem::{size_of, zeroed};
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

// Message types and flags (linux/netlink.h, linux/rtnetlink.h).
const NLMSG_NOOP: u16 = 1;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const NLMSG_OVERRUN: u16 = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP_INTR: u16 = 0x10;
const NLM_F_DUMP: u16 = 0x300;

const RTM_NEWADDR: u16 = 20;
const RTM_DELADDR: u16 = 21;
const RTM_GETADDR: u16 = 22;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTM_NEWNEIGH: u16 = 28;
const RTM_DELNEIGH: u16 = 29;
const RTM_GETNEIGH: u16 = 30;
const RTM_NEWMULTICAST: u16 = 56;
const RTM_DELMULTICAST: u16 = 57;
const RTM_GETMULTICAST: u16 = 58;

// Attribute types.
const NLA_TYPE_MASK: u16 = 0x3fff;
const RTA_DST: u16 = 1;
const RTA_OIF: u16 = 4;
const RTA_GATEWAY: u16 = 5;
const RTA_PRIORITY: u16 = 6;
const RTA_PREFSRC: u16 = 7;
const RTA_METRICS: u16 = 8;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTAX_MTU: u16 = 2;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
const IFA_ADDRESS: u16 = 1;
const IFA_LOCAL: u16 = 2;
const IFA_BROADCAST: u16 = 4;

const RTM_F_LOOKUP_TABLE: u32 = 0x1000;
const NTF_PROXY: u8 = 0x08;

// Multicast groups and socket options.
const RTNLGRP_NEIGH: u32 = 3;
const RTNLGRP_IPV4_IFADDR: u32 = 5;
const RTNLGRP_IPV4_ROUTE: u32 = 7;
/// Multicast groups joined by interfaces (Linux 6.13 and later).
const RTNLGRP_IPV4_MCADDR: u32 = 37;
/// The group of an RTM_NEWMULTICAST/RTM_DELMULTICAST message.
const IFA_MULTICAST: u16 = 7;
const SOL_NETLINK: libc::c_int = 270;
const NETLINK_ADD_MEMBERSHIP: libc::c_int = 1;
const NETLINK_CAP_ACK: libc::c_int = 10;

// Fixed sizes.
const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const NDMSG_LEN: usize = 12;
const IFADDRMSG_LEN: usize = 8;
const RTNEXTHOP_LEN: usize = 8;
const RTA_HDRLEN: usize = 4;

/// Initial receive buffer: the kernel never builds a dump datagram larger than 32 KiB.
const RECV_BUF: usize = 32 * 1024;
/// How long a request waits for each reply datagram before giving up (the kernel answers at once).
const REPLY_TIMEOUT_SECS: libc::time_t = 5;
/// How many times a dump interrupted by a concurrent change is restarted.
const DUMP_RETRIES: usize = 5;
/// Most datagrams one [`Monitor::drain`] reads, so a flood of changes cannot stall its caller.
const DRAIN_MAX: usize = 4096;
/// Receive buffer asked for the monitor socket, so bursts of changes do not overrun it.
const MONITOR_RCVBUF: libc::c_int = 1 << 20;

/// Route type `RTN_UNICAST` ([`Route::kind`]): a gateway or direct route.
pub const RTN_UNICAST: u8 = 1;
/// Route type `RTN_LOCAL`: the destination is one of this host's addresses.
pub const RTN_LOCAL: u8 = 2;
/// Route type `RTN_BROADCAST`: a broadcast address, sent as link broadcast.
pub const RTN_BROADCAST: u8 = 3;
/// Route type `RTN_MULTICAST`.
pub const RTN_MULTICAST: u8 = 5;
/// Route type `RTN_BLACKHOLE`: packets are silently dropped.
pub const RTN_BLACKHOLE: u8 = 6;
/// Route type `RTN_UNREACHABLE`: the destination is unreachable.
pub const RTN_UNREACHABLE: u8 = 7;
/// Route type `RTN_PROHIBIT`: administratively prohibited.
pub const RTN_PROHIBIT: u8 = 8;
/// Routing table `RT_TABLE_MAIN`, where `ip route add` puts routes by default.
pub const RT_TABLE_MAIN: u32 = 254;
/// Routing table `RT_TABLE_LOCAL`, the kernel's local and broadcast routes.
pub const RT_TABLE_LOCAL: u32 = 255;
/// Route scope `RT_SCOPE_LINK`: a directly connected destination.
pub const RT_SCOPE_LINK: u8 = 253;
/// Route scope `RT_SCOPE_HOST`: a local address.
pub const RT_SCOPE_HOST: u8 = 254;

/// Neighbour state `NUD_INCOMPLETE`: resolution in progress, no MAC yet.
pub const NUD_INCOMPLETE: u16 = 0x01;
/// Neighbour state `NUD_REACHABLE`: confirmed recently.
pub const NUD_REACHABLE: u16 = 0x02;
/// Neighbour state `NUD_STALE`: MAC known but unconfirmed; still usable.
pub const NUD_STALE: u16 = 0x04;
/// Neighbour state `NUD_DELAY`: stale and used; confirmation pending.
pub const NUD_DELAY: u16 = 0x08;
/// Neighbour state `NUD_PROBE`: being re-confirmed by unicast probes.
pub const NUD_PROBE: u16 = 0x10;
/// Neighbour state `NUD_FAILED`: resolution failed.
pub const NUD_FAILED: u16 = 0x20;
/// Neighbour state `NUD_NOARP`: no resolution needed (the MAC is derived).
pub const NUD_NOARP: u16 = 0x40;
/// Neighbour state `NUD_PERMANENT`: configured by hand, never expires.
pub const NUD_PERMANENT: u16 = 0x80;

/// The kernel's answer for one destination (like `ip route get DST`): the stack needs the next
/// hop, the interface, the source address and the path MTU to send a first packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RouteInfo {
    /// The destination asked about.
    pub dst: Ipv4Addr,
    /// The next hop, or `None` when the destination is on the link.
    pub gateway: Option<Ipv4Addr>,
    /// The preferred source address the kernel would use (`RTA_PREFSRC`).
    pub src: Option<Ipv4Addr>,
    /// Output interface index.
    pub oif: u32,
    /// The routing table the route was found in.
    pub table: u32,
    /// The route's MTU (`RTAX_MTU` in `RTA_METRICS`, or a learnt path MTU), if any.
    pub mtu: Option<u32>,
    /// Route type (`RTN_*`): [`RTN_LOCAL`] means the destination is this host.
    pub kind: u8,
}

/// One neighbour (ARP) table entry: how the stack learns the MAC of a next hop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Neighbour {
    /// The neighbour's IPv4 address.
    pub ip: Ipv4Addr,
    /// Its MAC address, once resolved.
    pub mac: Option<[u8; 6]>,
    /// The interface it was seen on.
    pub ifindex: u32,
    /// `NUD_*` state bits.
    pub state: u16,
}

impl Neighbour {
    /// Whether frames may be sent to this neighbour's MAC now: it has one and is in a state the
    /// kernel itself would transmit in (REACHABLE, STALE, DELAY, PROBE, PERMANENT or NOARP).
    pub fn is_usable(&self) -> bool {
        const USABLE: u16 = NUD_REACHABLE | NUD_STALE | NUD_DELAY | NUD_PROBE | NUD_PERMANENT | NUD_NOARP;
        self.mac.is_some() && self.state & USABLE != 0
    }
}

/// One routing table entry, as dumped or announced: the driver mirrors the tables into the
/// stack's own longest-prefix-match table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Route {
    /// Destination prefix (0.0.0.0 for a default route).
    pub prefix: Ipv4Addr,
    /// Prefix length, 0 to 32.
    pub prefix_len: u8,
    /// The next hop, or `None` for a directly connected prefix. For a multipath route, the
    /// first nexthop's.
    pub gateway: Option<Ipv4Addr>,
    /// Output interface index (0 when the route has none, e.g. blackhole). For a multipath
    /// route, the first nexthop's.
    pub oif: u32,
    /// Preferred source address (`RTA_PREFSRC`).
    pub prefsrc: Option<Ipv4Addr>,
    /// Routing table id (`RTA_TABLE`, else the header's).
    pub table: u32,
    /// Route scope (`RT_SCOPE_*`).
    pub scope: u8,
    /// Route type (`RTN_UNICAST`, `RTN_LOCAL`...).
    pub kind: u8,
    /// Route metric (`RTA_PRIORITY`), to choose among equal prefixes.
    pub metric: u32,
    /// The route's MTU (`RTAX_MTU`), if set.
    pub mtu: Option<u32>,
}

/// One IPv4 address on an interface: the stack's own addresses and their subnets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Address {
    /// Interface index.
    pub ifindex: u32,
    /// The local address (`IFA_LOCAL`, else `IFA_ADDRESS`).
    pub addr: Ipv4Addr,
    /// Subnet prefix length.
    pub prefix_len: u8,
    /// The subnet's broadcast address, if configured.
    pub broadcast: Option<Ipv4Addr>,
}

/// A multicast group joined on an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Group {
    /// Interface index.
    pub ifindex: u32,
    /// The group.
    pub group: Ipv4Addr,
}

/// One change to the kernel's tables, as announced to a [`Monitor`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Change {
    /// A neighbour entry was added or changed state (`RTM_NEWNEIGH`).
    Neighbour(Neighbour),
    /// A neighbour entry was removed (`RTM_DELNEIGH`).
    NeighbourGone(Neighbour),
    /// A route was added or replaced (`RTM_NEWROUTE`).
    Route(Route),
    /// A route was removed (`RTM_DELROUTE`).
    RouteGone(Route),
    /// An address was added (`RTM_NEWADDR`).
    Address(Address),
    /// An address was removed (`RTM_DELADDR`).
    AddressGone(Address),
    /// An interface joined a multicast group: some socket on the host is a member
    /// (`RTM_NEWMULTICAST`, Linux 6.13 and later).
    Group(Group),
    /// An interface left a multicast group: its last member left (`RTM_DELMULTICAST`).
    GroupGone(Group),
    /// The socket overran (`ENOBUFS`): some changes were lost. The caller must discard what it
    /// learnt from changes and dump the tables afresh.
    Overrun,
}

mod builder;
mod diag;
mod monitor;
mod parse;
mod request;
mod socket;
#[cfg(test)]
mod tests;

use builder::*;
use parse::*;
use socket::*;

pub use diag::{parse_udp_diag, udp_sockets_on_port, UdpSocketInfo};
pub use monitor::Monitor;
pub use parse::{parse_address, parse_changes, parse_group, parse_neighbour, parse_route};
pub use request::Netlink;
