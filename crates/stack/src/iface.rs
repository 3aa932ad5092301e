//! The one interface a stack serves: its MAC, IPv4 addresses and MTU, as the kernel has them.

use std::net::Ipv4Addr;
use wire::EthernetAddress;

/// An IPv4 address on the interface with its prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IfAddr {
    /// The address.
    pub addr: Ipv4Addr,
    /// Its prefix length (e.g. 24).
    pub prefix_len: u8,
    /// A broadcast address configured with it (IFA_BROADCAST, `brd`), if any.
    pub broadcast: Option<Ipv4Addr>,
}

impl IfAddr {
    /// An address with no broadcast address configured beside its prefix's.
    pub fn new(addr: Ipv4Addr, prefix_len: u8) -> IfAddr {
        IfAddr { addr, prefix_len, broadcast: None }
    }

    /// The directed broadcast address of this address's subnet (none for /31 and /32).
    pub fn prefix_broadcast(&self) -> Option<Ipv4Addr> {
        (self.prefix_len < 31).then(|| Ipv4Addr::from(u32::from(self.addr) | !mask(self.prefix_len)))
    }

    /// Whether `ip` is a broadcast address of this address: its prefix's, which the kernel
    /// always routes as broadcast (fib_add_ifaddr), or the one configured with it.
    pub fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        self.prefix_broadcast() == Some(ip) || (self.broadcast == Some(ip) && ip != Ipv4Addr::BROADCAST)
    }

    /// Whether `ip` is inside this address's subnet.
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let m = mask(self.prefix_len);
        u32::from(ip) & m == u32::from(self.addr) & m
    }
}

/// The netmask of a prefix length (0..=32).
pub(crate) fn mask(prefix_len: u8) -> u32 {
    match prefix_len {
        0 => 0,
        n => u32::MAX << (32 - u32::from(n.min(32))),
    }
}

/// What the stack knows of its interface; the driver fills it from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interface {
    /// Source MAC of every frame.
    pub mac: EthernetAddress,
    /// IPv4 addresses (the first is the default source).
    pub addrs: Vec<IfAddr>,
    /// IP MTU.
    pub mtu: usize,
    /// The kernel's index of the interface (IP_PKTINFO's ipi_ifindex); 0 when unknown.
    pub ifindex: u32,
}

impl Interface {
    /// Whether `ip` is one of our unicast addresses.
    pub fn has_addr(&self, ip: Ipv4Addr) -> bool {
        self.addrs.iter().any(|a| a.addr == ip)
    }

    /// Whether `ip` is a broadcast address we receive (limited or one of our subnets').
    pub fn is_broadcast(&self, ip: Ipv4Addr) -> bool {
        ip == Ipv4Addr::BROADCAST || self.addrs.iter().any(|a| a.is_broadcast(ip))
    }

    /// The source address for packets toward `dst` when neither socket nor route chose one:
    /// the address whose subnet holds `dst`, else the first.
    pub fn source_for(&self, dst: Ipv4Addr) -> Option<Ipv4Addr> {
        self.addrs.iter().find(|a| a.contains(dst)).or(self.addrs.first()).map(|a| a.addr)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subnets_and_broadcasts() {
        let a = IfAddr::new(Ipv4Addr::new(10, 1, 2, 3), 24);
        assert_eq!(a.prefix_broadcast(), Some(Ipv4Addr::new(10, 1, 2, 255)));
        assert!(a.contains(Ipv4Addr::new(10, 1, 2, 200)) && !a.contains(Ipv4Addr::new(10, 1, 3, 1)));
        assert_eq!(IfAddr::new(a.addr, 31).prefix_broadcast(), None);
        let odd = IfAddr { broadcast: Some(Ipv4Addr::new(10, 1, 2, 127)), ..a };
        assert!(odd.is_broadcast(Ipv4Addr::new(10, 1, 2, 127)) && odd.is_broadcast(Ipv4Addr::new(10, 1, 2, 255)));
        assert!(!odd.is_broadcast(Ipv4Addr::new(10, 1, 2, 128)));
        assert_eq!(mask(0), 0);
        assert_eq!(mask(32), u32::MAX);
        let iface = Interface { mac: EthernetAddress([2, 0, 0, 0, 0, 1]), addrs: vec![a], mtu: 1500, ifindex: 0 };
        assert!(iface.is_broadcast(Ipv4Addr::BROADCAST) && iface.is_broadcast(Ipv4Addr::new(10, 1, 2, 255)));
        assert_eq!(iface.source_for(Ipv4Addr::new(8, 8, 8, 8)), Some(a.addr));
    }
}
