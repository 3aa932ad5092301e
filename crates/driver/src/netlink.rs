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
    /// The socket overran (`ENOBUFS`): some changes were lost. The caller must discard what it
    /// learnt from changes and dump the tables afresh.
    Overrun,
}

/// A request socket to the kernel's routing tables (`NETLINK_ROUTE`): one question at a time,
/// blocking, each answer matched to its question by sequence number.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink").field("fd", &self.fd).field("seq", &self.seq).finish()
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Netlink {
    /// Opens a request socket in the calling thread's network namespace (close-on-exec).
    pub fn open() -> io::Result<Netlink> {
        let fd = open_socket(0)?;
        // Errors then echo only the failing request's header; best effort (Linux >= 4.3).
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let timeout = libc::timeval { tv_sec: REPLY_TIMEOUT_SECS, tv_usec: 0 };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(Netlink { fd, seq: 0, buf: vec![0; RECV_BUF] })
    }

    /// RTM_GETROUTE for one destination (the kernel's own FIB lookup, so policy routing and the
    /// preferred source come for free): like `ip route get DST`. A kernel refusal (ENETUNREACH,
    /// EHOSTUNREACH...) is an `io::Error` carrying the kernel's errno.
    pub fn route_to(&mut self, dst: Ipv4Addr) -> io::Result<RouteInfo> {
        let body = rtmsg(libc::AF_INET as u8, 32, RTM_F_LOOKUP_TABLE);
        let mut found = None;
        self.transact(RTM_GETROUTE, false, &body, &[(RTA_DST, &dst.octets())], |kind, payload| {
            if kind == RTM_NEWROUTE {
                found = parse_route(payload)?;
            }
            Ok(())
        })?;
        let route = found.ok_or_else(|| bad("no IPv4 route in the kernel's answer"))?;
        Ok(RouteInfo {
            dst,
            gateway: route.gateway,
            src: route.prefsrc,
            oif: route.oif,
            table: route.table,
            mtu: route.mtu,
            kind: route.kind,
        })
    }

    /// Dumps every IPv4 route of every table (main, local, policy tables): the caller filters by
    /// table, type and interface.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let body = rtmsg(libc::AF_INET as u8, 0, 0);
        self.dump(RTM_GETROUTE, RTM_NEWROUTE, &body, parse_route)
    }

    /// Dumps the IPv4 neighbour table, of one interface or of all.
    pub fn neighbours(&mut self, ifindex: Option<u32>) -> io::Result<Vec<Neighbour>> {
        let body = ndmsg(0);
        let mut all = self.dump(RTM_GETNEIGH, RTM_NEWNEIGH, &body, parse_neighbour)?;
        all.retain(|n| ifindex.is_none_or(|i| n.ifindex == i));
        Ok(all)
    }

    /// The kernel's neighbour entry for `ip` on interface `ifindex`, or `None` if it has none.
    /// `ifindex` 0 means any interface (answered from a dump).
    pub fn neighbour(&mut self, ip: Ipv4Addr, ifindex: u32) -> io::Result<Option<Neighbour>> {
        if ifindex != 0 {
            let body = ndmsg(ifindex);
            let mut found = None;
            let asked = self.transact(RTM_GETNEIGH, false, &body, &[(NDA_DST, &ip.octets())], |kind, payload| {
                if kind == RTM_NEWNEIGH {
                    found = parse_neighbour(payload)?;
                }
                Ok(())
            });
            match asked {
                Ok(()) => return Ok(found.filter(|n| n.ip == ip)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                // Kernels before 5.0 cannot get one entry: fall back to a dump.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        let all = self.neighbours(if ifindex == 0 { None } else { Some(ifindex) })?;
        Ok(all.into_iter().find(|n| n.ip == ip))
    }

    /// Dumps the IPv4 addresses, of one interface or of all.
    pub fn addresses(&mut self, ifindex: Option<u32>) -> io::Result<Vec<Address>> {
        let body = ifaddrmsg(ifindex.unwrap_or(0));
        let mut all = self.dump(RTM_GETADDR, RTM_NEWADDR, &body, parse_address)?;
        all.retain(|a| ifindex.is_none_or(|i| a.ifindex == i));
        Ok(all)
    }

    /// Runs a dump, restarting it while the kernel flags it inconsistent (a table changed
    /// during it).
    fn dump<T>(
        &mut self,
        request: u16,
        reply: u16,
        body: &[u8],
        parse: fn(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let mut tries = 0;
        loop {
            let mut out = Vec::new();
            let result = self.transact(request, true, body, &[], |kind, payload| {
                if kind == reply {
                    out.extend(parse(payload)?);
                }
                Ok(())
            });
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < DUMP_RETRIES => tries += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok(out),
            }
        }
    }

    /// Sends one request and feeds each reply message of its sequence number to `on_message`
    /// until the answer is complete: `NLMSG_DONE` for a dump, the first message otherwise. A
    /// parse error in one message does not stop reading, so a dump is always read to its end
    /// (the kernel refuses a new dump while one is unfinished); the first such error is returned.
    fn transact(
        &mut self,
        kind: u16,
        dump: bool,
        body: &[u8],
        attrs: &[(u16, &[u8])],
        mut on_message: impl FnMut(u16, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        let request = build_message(kind, flags, seq, body, attrs);
        send_to_kernel(self.fd.as_raw_fd(), &request)?;
        let mut failed: Option<io::Error> = None;
        let mut interrupted = false;
        loop {
            let n = recv_datagram(self.fd.as_raw_fd(), &mut self.buf).map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    io::Error::new(io::ErrorKind::TimedOut, "no answer from the kernel over netlink")
                } else {
                    e
                }
            })?;
            for msg in Messages::new(&self.buf[..n]) {
                let msg = msg?;
                if msg.seq != seq {
                    continue; // left over from an earlier, abandoned request
                }
                match msg.kind {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        parse_error(msg.payload)?;
                        return failed.map_or(Ok(()), Err);
                    }
                    NLMSG_DONE => {
                        if dump {
                            // A dump that fails part-way ends with a negative errno here.
                            if msg.payload.len() >= 4 {
                                parse_error(msg.payload)?;
                            }
                            return match failed {
                                Some(e) => Err(e),
                                None if interrupted => Err(io::Error::new(
                                    io::ErrorKind::Interrupted,
                                    "netlink dump interrupted by a concurrent change",
                                )),
                                None => Ok(()),
                            };
                        }
                    }
                    NLMSG_OVERRUN => return Err(bad("netlink overrun")),
                    _ => {
                        interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                        if failed.is_none() {
                            failed = on_message(msg.kind, msg.payload).err();
                        }
                        if !dump {
                            return failed.map_or(Ok(()), Err);
                        }
                    }
                }
            }
        }
    }
}

/// A second socket subscribed to RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE and RTNLGRP_IPV4_IFADDR,
/// non-blocking, so a driver can learn of changes without polling the kernel on the fast path.
pub struct Monitor {
    fd: OwnedFd,
    buf: Vec<u8>,
}

impl fmt::Debug for Monitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Monitor").field("fd", &self.fd).finish()
    }
}

impl AsFd for Monitor {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Monitor {
    /// Opens the monitor in the calling thread's network namespace (non-blocking, close-on-exec).
    /// Changes made after this returns are reported by [`Monitor::drain`].
    pub fn open() -> io::Result<Monitor> {
        let fd = open_socket(libc::SOCK_NONBLOCK)?;
        // A bigger queue makes overruns rarer; FORCE needs CAP_NET_ADMIN, the plain one is capped
        // by net.core.rmem_max. Best effort either way.
        if set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, MONITOR_RCVBUF).is_err() {
            let _ = set_int_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVBUF, MONITOR_RCVBUF);
        }
        for group in [RTNLGRP_NEIGH, RTNLGRP_IPV4_ROUTE, RTNLGRP_IPV4_IFADDR] {
            set_int_opt(&fd, SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, group as libc::c_int)?;
        }
        Ok(Monitor { fd, buf: vec![0; RECV_BUF] })
    }

    /// The socket, to wait on with poll/epoll: readable when changes are pending.
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }

    /// Reads everything pending without blocking (up to a few thousand datagrams per call) and
    /// appends the IPv4 changes to `out`, in the order the kernel made them; returns how many
    /// were appended. An overrun appends [`Change::Overrun`] (once per call) where it happened.
    pub fn drain(&mut self, out: &mut Vec<Change>) -> io::Result<usize> {
        let start = out.len();
        let mut overrun = false;
        for _ in 0..DRAIN_MAX {
            match recv_datagram(self.fd.as_raw_fd(), &mut self.buf) {
                Ok(n) => {
                    parse_changes(&self.buf[..n], out)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.raw_os_error() == Some(libc::ENOBUFS) => {
                    if !overrun {
                        out.push(Change::Overrun);
                        overrun = true;
                    }
                }
                Err(e) => return Err(e),
            }
        }
        Ok(out.len() - start)
    }
}

// ---------------------------------------------------------------------------------------------
// Parsing: pure and total.

fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

fn attr_u32(data: &[u8], what: &str) -> io::Result<u32> {
    if data.len() != 4 {
        return Err(bad(what));
    }
    u32_at(data, 0).ok_or_else(|| bad(what))
}

fn attr_ipv4(data: &[u8], what: &str) -> io::Result<Ipv4Addr> {
    let octets: [u8; 4] = data.try_into().map_err(|_| bad(what))?;
    Ok(Ipv4Addr::from(octets))
}

/// One netlink message: its header fields and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Message<'a> {
    kind: u16,
    flags: u16,
    seq: u32,
    payload: &'a [u8],
}

/// The messages of one datagram; stops at the first framing error, which it yields.
struct Messages<'a> {
    rest: &'a [u8],
}

impl<'a> Messages<'a> {
    fn new(datagram: &'a [u8]) -> Messages<'a> {
        Messages { rest: datagram }
    }
}

impl<'a> Iterator for Messages<'a> {
    type Item = io::Result<Message<'a>>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let len = match u32_at(rest, 0) {
            Some(len) if rest.len() >= NLMSG_HDRLEN => len as usize,
            _ => return Some(Err(bad("truncated netlink message header"))),
        };
        if len < NLMSG_HDRLEN || len > rest.len() {
            return Some(Err(bad("netlink message length out of bounds")));
        }
        let (Some(kind), Some(flags), Some(seq)) = (u16_at(rest, 4), u16_at(rest, 6), u32_at(rest, 8)) else {
            return Some(Err(bad("truncated netlink message header")));
        };
        self.rest = rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(Message { kind, flags, seq, payload: &rest[NLMSG_HDRLEN..len] }))
    }
}

/// The attributes (type without flag bits, data) in a byte run; stops at the first error.
struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Attrs<'a> {
    type Item = io::Result<(u16, &'a [u8])>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let rest = std::mem::take(&mut self.rest);
        let (Some(len), Some(kind)) = (u16_at(rest, 0), u16_at(rest, 2)) else {
            return Some(Err(bad("truncated attribute header")));
        };
        let len = len as usize;
        if len < RTA_HDRLEN || len > rest.len() {
            return Some(Err(bad("attribute length out of bounds")));
        }
        self.rest = rest.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((kind & NLA_TYPE_MASK, &rest[RTA_HDRLEN..len])))
    }
}

/// The attributes after a fixed header of `fixed` bytes (aligned), or an error if the payload is
/// shorter than the header.
fn attrs_after<'a>(payload: &'a [u8], fixed: usize, what: &str) -> io::Result<Attrs<'a>> {
    if payload.len() < fixed {
        return Err(bad(what));
    }
    Ok(Attrs { rest: payload.get(align4(fixed)..).unwrap_or(&[]) })
}

/// The errno of an `NLMSG_ERROR` (or a dump's `NLMSG_DONE`) payload: `Ok` for an ack (0), the
/// kernel's errno as an `io::Error` for a negative code.
fn parse_error(payload: &[u8]) -> io::Result<()> {
    let code = u32_at(payload, 0).ok_or_else(|| bad("truncated netlink error message"))? as i32;
    match code {
        0 => Ok(()),
        c if c < 0 => Err(io::Error::from_raw_os_error(c.saturating_neg())),
        _ => Err(bad("positive error code in netlink error message")),
    }
}

/// Parses the payload of an `RTM_NEWROUTE`/`RTM_DELROUTE` message (rtmsg and attributes).
/// `Ok(None)` for a route of another family than IPv4.
pub fn parse_route(payload: &[u8]) -> io::Result<Option<Route>> {
    let attrs = attrs_after(payload, RTMSG_LEN, "truncated rtmsg")?;
    if payload[0] != libc::AF_INET as u8 {
        return Ok(None);
    }
    let prefix_len = payload[1];
    if prefix_len > 32 {
        return Err(bad("IPv4 route prefix longer than 32"));
    }
    let mut route = Route {
        prefix: Ipv4Addr::UNSPECIFIED,
        prefix_len,
        gateway: None,
        oif: 0,
        prefsrc: None,
        table: u32::from(payload[4]),
        scope: payload[6],
        kind: payload[7],
        metric: 0,
        mtu: None,
    };
    for attr in attrs {
        let (kind, data) = attr?;
        match kind {
            RTA_DST => route.prefix = attr_ipv4(data, "bad RTA_DST")?,
            RTA_GATEWAY => route.gateway = Some(attr_ipv4(data, "bad RTA_GATEWAY")?),
            RTA_PREFSRC => route.prefsrc = Some(attr_ipv4(data, "bad RTA_PREFSRC")?),
            RTA_OIF => route.oif = attr_u32(data, "bad RTA_OIF")?,
            RTA_TABLE => route.table = attr_u32(data, "bad RTA_TABLE")?,
            RTA_PRIORITY => route.metric = attr_u32(data, "bad RTA_PRIORITY")?,
            RTA_METRICS => {
                for metric in (Attrs { rest: data }) {
                    let (kind, data) = metric?;
                    if kind == RTAX_MTU {
                        route.mtu = Some(attr_u32(data, "bad RTAX_MTU")?).filter(|&m| m != 0);
                    }
                }
            }
            RTA_MULTIPATH => {
                let (oif, gateway) = first_nexthop(data)?;
                if route.oif == 0 {
                    route.oif = oif;
                }
                route.gateway = route.gateway.or(gateway);
            }
            _ => {}
        }
    }
    Ok(Some(route))
}

/// The interface and gateway of the first `rtnexthop` of an `RTA_MULTIPATH` attribute.
fn first_nexthop(data: &[u8]) -> io::Result<(u32, Option<Ipv4Addr>)> {
    let (Some(len), Some(ifindex)) = (u16_at(data, 0), u32_at(data, 4)) else {
        return Err(bad("truncated rtnexthop"));
    };
    let len = len as usize;
    if len < RTNEXTHOP_LEN || len > data.len() {
        return Err(bad("rtnexthop length out of bounds"));
    }
    let mut gateway = None;
    for attr in (Attrs { rest: &data[RTNEXTHOP_LEN..len] }) {
        let (kind, data) = attr?;
        if kind == RTA_GATEWAY {
            gateway = Some(attr_ipv4(data, "bad RTA_GATEWAY in nexthop")?);
        }
    }
    Ok((ifindex, gateway))
}

/// Parses the payload of an `RTM_NEWNEIGH`/`RTM_DELNEIGH` message (ndmsg and attributes).
/// `Ok(None)` for another family than IPv4 and for proxy-ARP entries (not real neighbours).
/// A link-layer address that is not 6 bytes long (not Ethernet) gives `mac: None`.
pub fn parse_neighbour(payload: &[u8]) -> io::Result<Option<Neighbour>> {
    let attrs = attrs_after(payload, NDMSG_LEN, "truncated ndmsg")?;
    let (Some(ifindex), Some(state)) = (u32_at(payload, 4), u16_at(payload, 8)) else {
        return Err(bad("truncated ndmsg"));
    };
    if payload[0] != libc::AF_INET as u8 || payload[10] & NTF_PROXY != 0 {
        return Ok(None);
    }
    let mut ip = None;
    let mut mac = None;
    for attr in attrs {
        let (kind, data) = attr?;
        match kind {
            NDA_DST => ip = Some(attr_ipv4(data, "bad NDA_DST")?),
            NDA_LLADDR => mac = <[u8; 6]>::try_from(data).ok(),
            _ => {}
        }
    }
    let ip = ip.ok_or_else(|| bad("neighbour without NDA_DST"))?;
    Ok(Some(Neighbour { ip, mac, ifindex, state }))
}

/// Parses the payload of an `RTM_NEWADDR`/`RTM_DELADDR` message (ifaddrmsg and attributes).
/// `Ok(None)` for another family than IPv4.
pub fn parse_address(payload: &[u8]) -> io::Result<Option<Address>> {
    let attrs = attrs_after(payload, IFADDRMSG_LEN, "truncated ifaddrmsg")?;
    let ifindex = u32_at(payload, 4).ok_or_else(|| bad("truncated ifaddrmsg"))?;
    if payload[0] != libc::AF_INET as u8 {
        return Ok(None);
    }
    let prefix_len = payload[1];
    if prefix_len > 32 {
        return Err(bad("IPv4 address prefix longer than 32"));
    }
    let (mut local, mut address, mut broadcast) = (None, None, None);
    for attr in attrs {
        let (kind, data) = attr?;
        match kind {
            IFA_LOCAL => local = Some(attr_ipv4(data, "bad IFA_LOCAL")?),
            IFA_ADDRESS => address = Some(attr_ipv4(data, "bad IFA_ADDRESS")?),
            IFA_BROADCAST => broadcast = Some(attr_ipv4(data, "bad IFA_BROADCAST")?),
            _ => {}
        }
    }
    // On point-to-point links IFA_ADDRESS is the peer's; IFA_LOCAL is always ours.
    let addr = local.or(address).ok_or_else(|| bad("address without IFA_LOCAL or IFA_ADDRESS"))?;
    Ok(Some(Address { ifindex, addr, prefix_len, broadcast }))
}

/// Parses one datagram received by a [`Monitor`] and appends its IPv4 changes to `out`; returns
/// how many. Messages of other types and families are skipped. On an error, the changes of the
/// messages before the bad one are already appended.
pub fn parse_changes(datagram: &[u8], out: &mut Vec<Change>) -> io::Result<usize> {
    let start = out.len();
    for msg in Messages::new(datagram) {
        let msg = msg?;
        let change = match msg.kind {
            RTM_NEWNEIGH => parse_neighbour(msg.payload)?.map(Change::Neighbour),
            RTM_DELNEIGH => parse_neighbour(msg.payload)?.map(Change::NeighbourGone),
            RTM_NEWROUTE => parse_route(msg.payload)?.map(Change::Route),
            RTM_DELROUTE => parse_route(msg.payload)?.map(Change::RouteGone),
            RTM_NEWADDR => parse_address(msg.payload)?.map(Change::Address),
            RTM_DELADDR => parse_address(msg.payload)?.map(Change::AddressGone),
            NLMSG_OVERRUN => Some(Change::Overrun),
            _ => None,
        };
        out.extend(change);
    }
    Ok(out.len() - start)
}

// ---------------------------------------------------------------------------------------------
// Building requests.

fn rtmsg(family: u8, dst_len: u8, flags: u32) -> [u8; RTMSG_LEN] {
    let mut m = [0u8; RTMSG_LEN];
    m[0] = family;
    m[1] = dst_len;
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m
}

fn ndmsg(ifindex: u32) -> [u8; NDMSG_LEN] {
    let mut m = [0u8; NDMSG_LEN];
    m[0] = libc::AF_INET as u8;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m
}

fn ifaddrmsg(ifindex: u32) -> [u8; IFADDRMSG_LEN] {
    let mut m = [0u8; IFADDRMSG_LEN];
    m[0] = libc::AF_INET as u8;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m
}

/// One request: header, fixed body, attributes, each padded to 4 bytes.
fn build_message(kind: u16, flags: u16, seq: u32, body: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDRLEN];
    m.extend_from_slice(body);
    m.resize(align4(m.len()), 0);
    for &(kind, data) in attrs {
        let len = (RTA_HDRLEN + data.len()) as u16;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(data);
        m.resize(align4(m.len()), 0);
    }
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid stays 0: the kernel knows who sent it.
    m
}

// ---------------------------------------------------------------------------------------------
// Socket I/O.

fn kernel_addr() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all zeroes is valid (pid 0 = the kernel, no groups).
    let mut addr: libc::sockaddr_nl = unsafe { zeroed() };
    addr.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    addr
}

/// A bound NETLINK_ROUTE socket, close-on-exec, with extra `type` flags.
fn open_socket(extra: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call; the result is checked before use.
    let raw =
        unsafe { libc::socket(libc::AF_NETLINK, libc::SOCK_RAW | libc::SOCK_CLOEXEC | extra, libc::NETLINK_ROUTE) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh descriptor that nothing else owns.
    let fd = nic::fdplace::place(unsafe { OwnedFd::from_raw_fd(raw) })?;
    // Binding to pid 0 lets the kernel choose a unique port id.
    let addr = kernel_addr();
    // SAFETY: `addr` is a valid sockaddr_nl and the length passed is its size.
    let rc = unsafe {
        libc::bind(
            fd.as_raw_fd(),
            (&addr as *const libc::sockaddr_nl).cast(),
            size_of::<libc::sockaddr_nl>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(fd)
}

fn set_opt<T>(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` points to a live T of the size passed.
    let rc = unsafe {
        libc::setsockopt(fd.as_raw_fd(), level, name, (value as *const T).cast(), size_of::<T>() as libc::socklen_t)
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn set_int_opt(fd: &OwnedFd, level: libc::c_int, name: libc::c_int, value: libc::c_int) -> io::Result<()> {
    set_opt(fd, level, name, &value)
}

fn send_to_kernel(fd: RawFd, msg: &[u8]) -> io::Result<()> {
    let addr = kernel_addr();
    loop {
        // SAFETY: `msg` and `addr` are valid for the lengths passed.
        let n = unsafe {
            libc::sendto(
                fd,
                msg.as_ptr().cast(),
                msg.len(),
                0,
                (&addr as *const libc::sockaddr_nl).cast(),
                size_of::<libc::sockaddr_nl>() as libc::socklen_t,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n as usize != msg.len() {
            return Err(io::Error::other("short send on a netlink socket"));
        }
        return Ok(());
    }
}

/// Receives one datagram from the kernel into `buf`, first growing `buf` to the datagram's size
/// (so nothing is ever truncated), and returns its length. Datagrams from other senders than the
/// kernel are dropped. EAGAIN surfaces as `WouldBlock`, ENOBUFS (overrun) as itself.
fn recv_datagram(fd: RawFd, buf: &mut Vec<u8>) -> io::Result<usize> {
    loop {
        // SAFETY: a zero-length peek writes nothing; MSG_TRUNC makes it return the full length.
        let size = unsafe { libc::recv(fd, std::ptr::null_mut(), 0, libc::MSG_PEEK | libc::MSG_TRUNC) };
        if size < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if size as usize > buf.len() {
            buf.resize(size as usize, 0);
        }
        // SAFETY: sockaddr_nl and msghdr are plain old data; all zeroes is valid.
        let mut from: libc::sockaddr_nl = unsafe { zeroed() };
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: as above.
        let mut hdr: libc::msghdr = unsafe { zeroed() };
        hdr.msg_name = (&mut from as *mut libc::sockaddr_nl).cast();
        hdr.msg_namelen = size_of::<libc::sockaddr_nl>() as libc::socklen_t;
        hdr.msg_iov = &mut iov;
        hdr.msg_iovlen = 1;
        // SAFETY: `hdr` points to `from` and to `iov`, which covers `buf`; all outlive the call.
        let n = unsafe { libc::recvmsg(fd, &mut hdr, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if hdr.msg_flags & libc::MSG_TRUNC != 0 {
            return Err(bad("netlink datagram truncated"));
        }
        if from.nl_pid != 0 {
            continue; // not from the kernel
        }
        return Ok(n as usize);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A message: header with `kind`, `flags`, `seq`, then `payload` (already padded).
    fn msg(kind: u16, flags: u16, seq: u32, payload: &[u8]) -> Vec<u8> {
        let mut m = Vec::new();
        m.extend_from_slice(&((NLMSG_HDRLEN + payload.len()) as u32).to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&flags.to_ne_bytes());
        m.extend_from_slice(&seq.to_ne_bytes());
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend_from_slice(payload);
        m
    }

    // Captured from Linux 6.18 (x86_64, so little-endian), in a namespace with a veth `v0`
    // (ifindex 3) holding 10.99.0.1/24 brd 10.99.0.255 and a route 10.201.0.0/16 via 10.99.0.2
    // mtu 1400.

    /// RTM_NEWROUTE payload answering RTM_GETROUTE for 10.201.3.4 (`ip route get 10.201.3.4`).
    #[rustfmt::skip]
    const ROUTE_GET: [u8; 108] = [
        // rtmsg: AF_INET, dst_len 32, src_len 0, tos 0, table 254, proto 0, scope 0, RTN_UNICAST,
        // flags RTM_F_CLONED
        2, 32, 0, 0, 254, 0, 0, 1, 0, 2, 0, 0,
        8, 0, 15, 0, 254, 0, 0, 0,                    // RTA_TABLE 254
        8, 0, 1, 0, 10, 201, 3, 4,                    // RTA_DST 10.201.3.4
        8, 0, 4, 0, 3, 0, 0, 0,                       // RTA_OIF 3
        8, 0, 7, 0, 10, 99, 0, 1,                     // RTA_PREFSRC 10.99.0.1
        8, 0, 5, 0, 10, 99, 0, 2,                     // RTA_GATEWAY 10.99.0.2
        12, 0, 8, 0, 8, 0, 2, 0, 120, 5, 0, 0,        // RTA_METRICS { RTAX_MTU 1400 }
        8, 0, 25, 0, 0, 0, 0, 0,                      // RTA_UID 0
        36, 0, 12, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, // RTA_CACHEINFO
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    ];

    /// RTM_NEWNEIGH payload answering RTM_GETNEIGH for 10.99.0.2 on ifindex 3, after
    /// `ip neigh add 10.99.0.2 lladdr 02:11:22:33:44:55 dev v0 nud reachable`.
    #[rustfmt::skip]
    const NEIGH: [u8; 60] = [
        2, 0, 0, 0, 3, 0, 0, 0, 2, 0, 0, 1,           // ndmsg: AF_INET, ifindex 3, NUD_REACHABLE, type 1
        8, 0, 1, 0, 10, 99, 0, 2,                     // NDA_DST 10.99.0.2
        10, 0, 2, 0, 2, 17, 34, 51, 68, 85, 0, 0,     // NDA_LLADDR (+2 padding)
        8, 0, 4, 0, 0, 0, 0, 0,                       // NDA_PROBES
        20, 0, 3, 0, 15, 0, 0, 0, 15, 0, 0, 0, 15, 0, 0, 0, 2, 0, 0, 0, // NDA_CACHEINFO
    ];

    /// RTM_NEWADDR payload from an RTM_GETADDR dump: 10.99.0.1/24 brd 10.99.0.255 on ifindex 3.
    #[rustfmt::skip]
    const ADDR: [u8; 68] = [
        2, 24, 128, 0, 3, 0, 0, 0,                    // ifaddrmsg: AF_INET, /24, IFA_F_PERMANENT, ifindex 3
        8, 0, 1, 0, 10, 99, 0, 1,                     // IFA_ADDRESS
        8, 0, 2, 0, 10, 99, 0, 1,                     // IFA_LOCAL
        8, 0, 4, 0, 10, 99, 0, 255,                   // IFA_BROADCAST
        7, 0, 3, 0, 118, 48, 0, 0,                    // IFA_LABEL "v0" (+1 padding)
        8, 0, 8, 0, 128, 0, 0, 0,                     // IFA_FLAGS
        20, 0, 6, 0, 255, 255, 255, 255, 255, 255, 255, 255, 182, 76, 5, 0, 182, 76, 5, 0, // IFA_CACHEINFO
    ];

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_a_route_get_answer() {
        let route = parse_route(&ROUTE_GET).unwrap().unwrap();
        assert_eq!(route.prefix, Ipv4Addr::new(10, 201, 3, 4));
        assert_eq!(route.prefix_len, 32);
        assert_eq!(route.gateway, Some(Ipv4Addr::new(10, 99, 0, 2)));
        assert_eq!(route.prefsrc, Some(Ipv4Addr::new(10, 99, 0, 1)));
        assert_eq!(route.oif, 3);
        assert_eq!(route.table, RT_TABLE_MAIN);
        assert_eq!(route.kind, RTN_UNICAST);
        assert_eq!(route.mtu, Some(1400));
        // Newer kernels may flag the metrics nested: same meaning.
        let mut nested = ROUTE_GET;
        nested[55] |= 0x80;
        assert_eq!(parse_route(&nested).unwrap(), Some(route));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_a_neighbour_and_an_address() {
        let n = parse_neighbour(&NEIGH).unwrap().unwrap();
        assert_eq!(n.ip, Ipv4Addr::new(10, 99, 0, 2));
        assert_eq!(n.mac, Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]));
        assert_eq!((n.ifindex, n.state), (3, NUD_REACHABLE));
        assert!(n.is_usable());
        assert!(!Neighbour { state: NUD_INCOMPLETE, ..n }.is_usable());
        assert!(!Neighbour { state: NUD_FAILED, ..n }.is_usable());
        assert!(!Neighbour { mac: None, ..n }.is_usable());

        let a = parse_address(&ADDR).unwrap().unwrap();
        let want = Address {
            ifindex: 3,
            addr: Ipv4Addr::new(10, 99, 0, 1),
            prefix_len: 24,
            broadcast: Some(Ipv4Addr::new(10, 99, 0, 255)),
        };
        assert_eq!(a, want);
    }

    #[test]
    fn other_families_and_proxies_are_skipped() {
        let mut route = ROUTE_GET;
        route[0] = libc::AF_INET6 as u8;
        assert_eq!(parse_route(&route).unwrap(), None);
        let mut neigh = NEIGH;
        neigh[0] = libc::AF_BRIDGE as u8;
        assert_eq!(parse_neighbour(&neigh).unwrap(), None);
        let mut proxy = NEIGH;
        proxy[10] = NTF_PROXY;
        assert_eq!(parse_neighbour(&proxy).unwrap(), None);
        let mut addr = ADDR;
        addr[0] = libc::AF_INET6 as u8;
        assert_eq!(parse_address(&addr).unwrap(), None);
    }

    #[test]
    fn garbled_attributes_are_errors() {
        // RTA_DST of 3 bytes.
        let mut route = ROUTE_GET.to_vec();
        route[20] = 7;
        assert!(parse_route(&route).is_err());
        // Attribute length running past the end.
        let mut neigh = NEIGH;
        neigh[20] = 200;
        assert!(parse_neighbour(&neigh).is_err());
        // Attribute length below its own header.
        let mut addr = ADDR;
        addr[8] = 2;
        assert!(parse_address(&addr).is_err());
        // Prefix longer than 32.
        let mut route = ROUTE_GET;
        route[1] = 33;
        assert!(parse_route(&route).is_err());
        // Neighbour without NDA_DST.
        assert!(parse_neighbour(&NEIGH[..12]).is_err());
        // Address without any address attribute.
        assert!(parse_address(&ADDR[..8]).is_err());
        // Nested metrics with a bad MTU size.
        let mut route = ROUTE_GET;
        route[56] = 7;
        assert!(parse_route(&route).is_err());
    }

    #[test]
    fn every_truncation_is_handled_without_panic() {
        for len in 0..ROUTE_GET.len() {
            let r = parse_route(&ROUTE_GET[..len]);
            if len < RTMSG_LEN {
                assert!(r.is_err(), "{len}");
            }
        }
        for len in 0..NEIGH.len() {
            let r = parse_neighbour(&NEIGH[..len]);
            assert!(r.is_err() || len >= 20, "{len}: {r:?}");
        }
        for len in 0..ADDR.len() {
            let r = parse_address(&ADDR[..len]);
            assert!(r.is_err() || len >= 16, "{len}: {r:?}");
        }
        // Whole messages: every strict prefix is an error.
        let full = msg(RTM_NEWROUTE, 0, 1, &ROUTE_GET);
        for len in 1..full.len() {
            let mut out = Vec::new();
            assert!(parse_changes(&full[..len], &mut out).is_err(), "{len}");
        }
        let mut out = Vec::new();
        assert_eq!(parse_changes(&full, &mut out).unwrap(), 1);
    }

    #[test]
    fn random_mutations_never_panic() {
        let mut datagram = msg(RTM_NEWROUTE, 0, 1, &ROUTE_GET);
        datagram.extend(msg(RTM_DELNEIGH, 0, 1, &NEIGH));
        datagram.extend(msg(RTM_NEWADDR, 0, 1, &ADDR));
        let mut out = Vec::new();
        assert_eq!(parse_changes(&datagram, &mut out).unwrap(), 3);
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let mut m = datagram.clone();
            for _ in 0..(next() % 4 + 1) {
                let at = next() as usize % m.len();
                m[at] = next() as u8;
            }
            let cut = next() as usize % (m.len() + 1);
            out.clear();
            let _ = parse_changes(&m[..cut], &mut out);
            let _ = parse_route(&m[NLMSG_HDRLEN.min(cut)..cut]);
            let _ = parse_neighbour(&m[..cut]);
            let _ = parse_address(&m[..cut]);
        }
    }

    #[test]
    fn monitor_messages_map_to_changes() {
        let mut datagram = msg(RTM_NEWNEIGH, 0, 0, &NEIGH);
        datagram.extend(msg(RTM_DELNEIGH, 0, 0, &NEIGH));
        datagram.extend(msg(RTM_NEWROUTE, 0, 0, &ROUTE_GET));
        datagram.extend(msg(RTM_DELROUTE, 0, 0, &ROUTE_GET));
        datagram.extend(msg(RTM_NEWADDR, 0, 0, &ADDR));
        datagram.extend(msg(RTM_DELADDR, 0, 0, &ADDR));
        datagram.extend(msg(NLMSG_NOOP, 0, 0, &[]));
        let mut out = Vec::new();
        assert_eq!(parse_changes(&datagram, &mut out).unwrap(), 6);
        assert!(matches!(out[0], Change::Neighbour(_)));
        assert!(matches!(out[1], Change::NeighbourGone(_)));
        assert!(matches!(out[2], Change::Route(_)));
        assert!(matches!(out[3], Change::RouteGone(_)));
        assert!(matches!(out[4], Change::Address(_)));
        assert!(matches!(out[5], Change::AddressGone(_)));
    }

    #[test]
    fn error_messages_carry_the_errno() {
        let mut payload = (-libc::ENETUNREACH).to_ne_bytes().to_vec();
        payload.extend_from_slice(&[0; 16]);
        assert_eq!(parse_error(&payload).unwrap_err().raw_os_error(), Some(libc::ENETUNREACH));
        assert!(parse_error(&0i32.to_ne_bytes()).is_ok());
        assert!(parse_error(&i32::MIN.to_ne_bytes()).is_err());
        assert_eq!(parse_error(&5i32.to_ne_bytes()).unwrap_err().kind(), io::ErrorKind::InvalidData);
        for len in 0..4 {
            assert_eq!(parse_error(&payload[..len]).unwrap_err().kind(), io::ErrorKind::InvalidData);
        }
    }

    #[test]
    fn message_framing_rejects_bad_lengths() {
        let good = msg(NLMSG_DONE, 2, 9, &0i32.to_ne_bytes());
        let all: Vec<_> = Messages::new(&good).collect();
        assert_eq!(all.len(), 1);
        let m = all[0].as_ref().unwrap();
        assert_eq!((m.kind, m.flags, m.seq, m.payload.len()), (NLMSG_DONE, 2, 9, 4));
        // Length below the header, beyond the buffer, and a header cut short.
        for len in [0u32, 15, 21, u32::MAX] {
            let mut bad_len = good.clone();
            bad_len[0..4].copy_from_slice(&len.to_ne_bytes());
            let first = Messages::new(&bad_len).next().unwrap();
            assert!(first.is_err(), "{len}");
        }
        assert!(Messages::new(&good[..10]).next().unwrap().is_err());
        // Iteration stops after an error.
        let mut two = good.clone();
        two.extend_from_slice(&[1, 2, 3]);
        let all: Vec<_> = Messages::new(&two).collect();
        assert_eq!(all.len(), 2);
        assert!(all[1].is_err());
    }

    #[test]
    fn requests_are_built_aligned() {
        let req = build_message(RTM_GETNEIGH, NLM_F_REQUEST, 42, &ndmsg(7), &[(NDA_DST, &[10, 99, 0, 2])]);
        assert_eq!(req.len(), NLMSG_HDRLEN + NDMSG_LEN + 8);
        let m = Messages::new(&req).next().unwrap().unwrap();
        assert_eq!((m.kind, m.flags, m.seq), (RTM_GETNEIGH, NLM_F_REQUEST, 42));
        let attrs: Vec<_> = attrs_after(m.payload, NDMSG_LEN, "x").unwrap().map(Result::unwrap).collect();
        assert_eq!(attrs, vec![(NDA_DST, &[10u8, 99, 0, 2][..])]);
        // An odd-sized attribute is padded.
        let req = build_message(RTM_GETROUTE, NLM_F_REQUEST, 1, &rtmsg(2, 32, 0), &[(99, &[1, 2, 3])]);
        assert_eq!(req.len() % 4, 0);
        assert_eq!(u16_at(&req, NLMSG_HDRLEN + RTMSG_LEN), Some(7));
    }

    #[test]
    fn multipath_routes_take_the_first_nexthop() {
        #[rustfmt::skip]
        let mut payload = vec![
            2, 16, 0, 0, 254, 3, 0, 1, 0, 0, 0, 0, // rtmsg: AF_INET /16 main, boot, universe, unicast
            8, 0, 1, 0, 10, 200, 0, 0,             // RTA_DST 10.200.0.0
            36, 0, 9, 0,                           // RTA_MULTIPATH, two nexthops
            16, 0, 0, 0, 3, 0, 0, 0, 8, 0, 5, 0, 10, 99, 0, 2, // rtnexthop ifindex 3 via 10.99.0.2
            16, 0, 0, 0, 4, 0, 0, 0, 8, 0, 5, 0, 10, 98, 0, 2, // rtnexthop ifindex 4 via 10.98.0.2
        ];
        if cfg!(target_endian = "little") {
            let r = parse_route(&payload).unwrap().unwrap();
            assert_eq!((r.prefix, r.prefix_len), (Ipv4Addr::new(10, 200, 0, 0), 16));
            assert_eq!((r.oif, r.gateway), (3, Some(Ipv4Addr::new(10, 99, 0, 2))));
        }
        payload[24] = 40; // rtnexthop longer than the attribute
        assert!(parse_route(&payload).is_err());
    }
}
