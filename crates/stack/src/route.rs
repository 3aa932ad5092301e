//! Routes toward destinations, copied from the kernel's table by the driver.

use crate::iface::mask;
use std::net::Ipv4Addr;

/// One route: a prefix, where packets to it go next, and with which source and MTU.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// Destination prefix.
    pub prefix: Ipv4Addr,
    /// Its length.
    pub prefix_len: u8,
    /// The gateway, or `None` when the destination is on the link.
    pub gateway: Option<Ipv4Addr>,
    /// Preferred source address (RTA_PREFSRC), if the route names one.
    pub src: Option<Ipv4Addr>,
    /// Route MTU, when lower than the interface's.
    pub mtu: Option<usize>,
}

/// Where a packet to some destination goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NextHop {
    /// The address whose MAC the frame is sent to.
    pub via: Ipv4Addr,
    /// Preferred source, if any.
    pub src: Option<Ipv4Addr>,
    /// Route MTU, if any.
    pub mtu: Option<usize>,
}

/// The routes through our interface, longest prefix first.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    routes: Vec<Route>,
}

impl RouteTable {
    /// Replaces every route (a fresh dump from the kernel).
    pub fn replace(&mut self, routes: impl IntoIterator<Item = Route>) {
        self.routes = routes.into_iter().collect();
        self.routes.sort_by_key(|r| std::cmp::Reverse(r.prefix_len));
    }

    /// Adds or replaces the route for one prefix.
    pub fn insert(&mut self, route: Route) {
        self.remove(route.prefix, route.prefix_len);
        let at = self.routes.partition_point(|r| r.prefix_len >= route.prefix_len);
        self.routes.insert(at, route);
    }

    /// Removes the route for a prefix.
    pub fn remove(&mut self, prefix: Ipv4Addr, prefix_len: u8) {
        let m = mask(prefix_len);
        self.routes.retain(|r| !(r.prefix_len == prefix_len && u32::from(r.prefix) & m == u32::from(prefix) & m));
    }

    /// Longest-prefix match for `dst`.
    pub fn lookup(&self, dst: Ipv4Addr) -> Option<NextHop> {
        let d = u32::from(dst);
        self.routes
            .iter()
            .find(|r| d & mask(r.prefix_len) == u32::from(r.prefix) & mask(r.prefix_len))
            .map(|r| NextHop { via: r.gateway.unwrap_or(dst), src: r.src, mtu: r.mtu })
    }

    /// Every route, longest prefix first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn r(p: [u8; 4], len: u8, gw: Option<[u8; 4]>) -> Route {
        Route { prefix: p.into(), prefix_len: len, gateway: gw.map(Into::into), src: None, mtu: None }
    }

    #[test]
    fn longest_prefix_wins_and_default_catches_the_rest() {
        let mut t = RouteTable::default();
        t.replace([r([0, 0, 0, 0], 0, Some([10, 0, 0, 254])), r([10, 0, 0, 0], 24, None)]);
        t.insert(r([10, 200, 0, 0], 16, Some([10, 0, 0, 2])));
        let hop = |t: &RouteTable, ip: [u8; 4]| t.lookup(ip.into()).map(|h| h.via.octets());
        assert_eq!(hop(&t, [10, 0, 0, 7]), Some([10, 0, 0, 7]));
        assert_eq!(hop(&t, [10, 200, 3, 4]), Some([10, 0, 0, 2]));
        assert_eq!(hop(&t, [8, 8, 8, 8]), Some([10, 0, 0, 254]));
        t.remove([0, 0, 0, 0].into(), 0);
        assert_eq!(hop(&t, [8, 8, 8, 8]), None);
    }
}
