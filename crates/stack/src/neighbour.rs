//! Neighbour MACs, learned from the kernel's neighbour table by the driver.
//!
//! The stack never sends ARP: a packet to a neighbour it does not know goes to the kernel whole
//! (which resolves and transmits it), and the driver feeds the kernel's answer back here.

use crate::hash::FxHashMap;
use std::net::Ipv4Addr;
use wire::EthernetAddress;

/// IPv4 → MAC, as the kernel resolved it.
#[derive(Debug, Default, Clone)]
pub struct NeighbourCache {
    entries: FxHashMap<Ipv4Addr, EthernetAddress>,
}

impl NeighbourCache {
    /// Records (or replaces) the MAC of `ip`.
    pub fn insert(&mut self, ip: Ipv4Addr, mac: EthernetAddress) {
        self.entries.insert(ip, mac);
    }

    /// Forgets `ip` (the kernel's entry failed or was deleted).
    pub fn remove(&mut self, ip: Ipv4Addr) {
        self.entries.remove(&ip);
    }

    /// The MAC of `ip`, if known.
    pub fn lookup(&self, ip: Ipv4Addr) -> Option<EthernetAddress> {
        self.entries.get(&ip).copied()
    }

    /// How many neighbours are known.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// The MAC an IPv4 multicast group maps to (RFC 1112: 01:00:5e + low 23 bits).
pub fn multicast_mac(group: Ipv4Addr) -> EthernetAddress {
    let o = group.octets();
    EthernetAddress([0x01, 0x00, 0x5e, o[1] & 0x7f, o[2], o[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multicast_mapping_keeps_23_bits() {
        assert_eq!(multicast_mac(Ipv4Addr::new(239, 129, 2, 3)).0, [0x01, 0x00, 0x5e, 0x01, 2, 3]);
        assert_eq!(multicast_mac(Ipv4Addr::new(224, 0, 0, 251)).0, [0x01, 0x00, 0x5e, 0, 0, 251]);
    }

    #[test]
    fn insert_replace_remove() {
        let mut n = NeighbourCache::default();
        let ip = Ipv4Addr::new(10, 0, 0, 2);
        assert_eq!(n.lookup(ip), None);
        n.insert(ip, EthernetAddress([2, 0, 0, 0, 0, 1]));
        n.insert(ip, EthernetAddress([2, 0, 0, 0, 0, 2]));
        assert_eq!(n.lookup(ip), Some(EthernetAddress([2, 0, 0, 0, 0, 2])));
        n.remove(ip);
        assert!(n.is_empty());
    }
}
