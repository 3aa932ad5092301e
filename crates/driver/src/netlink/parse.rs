//! Parsing: pure and total. A short or garbled message is an `InvalidData` error, never a panic.

use super::*;

pub(super) fn bad(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what.to_string())
}

pub(super) fn align4(n: usize) -> usize {
    n.saturating_add(3) & !3
}

pub(super) fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at.checked_add(2)?)?.try_into().ok()?))
}

pub(super) fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at.checked_add(4)?)?.try_into().ok()?))
}

pub(super) fn attr_u32(data: &[u8], what: &str) -> io::Result<u32> {
    if data.len() != 4 {
        return Err(bad(what));
    }
    u32_at(data, 0).ok_or_else(|| bad(what))
}

pub(super) fn attr_ipv4(data: &[u8], what: &str) -> io::Result<Ipv4Addr> {
    let octets: [u8; 4] = data.try_into().map_err(|_| bad(what))?;
    Ok(Ipv4Addr::from(octets))
}

/// One netlink message: its header fields and payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Message<'a> {
    pub(super) kind: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

/// The messages of one datagram; stops at the first framing error, which it yields.
pub(super) struct Messages<'a> {
    pub(super) rest: &'a [u8],
}

impl<'a> Messages<'a> {
    pub(super) fn new(datagram: &'a [u8]) -> Messages<'a> {
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
pub(super) struct Attrs<'a> {
    pub(super) rest: &'a [u8],
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
pub(super) fn attrs_after<'a>(payload: &'a [u8], fixed: usize, what: &str) -> io::Result<Attrs<'a>> {
    if payload.len() < fixed {
        return Err(bad(what));
    }
    Ok(Attrs { rest: payload.get(align4(fixed)..).unwrap_or(&[]) })
}

/// The errno of an `NLMSG_ERROR` (or a dump's `NLMSG_DONE`) payload: `Ok` for an ack (0), the
/// kernel's errno as an `io::Error` for a negative code.
pub(super) fn parse_error(payload: &[u8]) -> io::Result<()> {
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
pub(super) fn first_nexthop(data: &[u8]) -> io::Result<(u32, Option<Ipv4Addr>)> {
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

/// Parses the payload of an `RTM_NEWMULTICAST`/`RTM_DELMULTICAST` message, or of a reply to
/// an `RTM_GETMULTICAST` dump (ifaddrmsg and IFA_MULTICAST). `Ok(None)` for another family
/// than IPv4.
pub fn parse_group(payload: &[u8]) -> io::Result<Option<Group>> {
    let attrs = attrs_after(payload, IFADDRMSG_LEN, "truncated ifaddrmsg")?;
    let ifindex = u32_at(payload, 4).ok_or_else(|| bad("truncated ifaddrmsg"))?;
    if payload[0] != libc::AF_INET as u8 {
        return Ok(None);
    }
    for attr in attrs {
        let (kind, data) = attr?;
        if kind == IFA_MULTICAST {
            return Ok(Some(Group { ifindex, group: attr_ipv4(data, "bad IFA_MULTICAST")? }));
        }
    }
    Err(bad("multicast address without IFA_MULTICAST"))
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
            RTM_NEWMULTICAST => parse_group(msg.payload)?.map(Change::Group),
            RTM_DELMULTICAST => parse_group(msg.payload)?.map(Change::GroupGone),
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
