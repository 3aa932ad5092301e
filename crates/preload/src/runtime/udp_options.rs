//! The UDP options the stack follows, read from the kernel socket: it takes every setsockopt
//! first (validation, errnos, getsockopt as Linux), and the stack mirrors the effective values
//! when a socket turns accelerated and after each change.

use super::*;

/// Whether a setsockopt of (`level`, `name`) changes what the stack does with a UDP socket.
pub fn is_udp_option(level: i32, name: i32) -> bool {
    match level {
        libc::SOL_SOCKET => name == libc::SO_BROADCAST,
        libc::IPPROTO_IP => matches!(
            name,
            libc::IP_TTL
                | libc::IP_TOS
                | libc::IP_MULTICAST_TTL
                | libc::IP_MULTICAST_IF
                | libc::IP_MULTICAST_LOOP
                | libc::IP_MULTICAST_ALL
                | libc::IP_MTU_DISCOVER
        ),
        _ => false,
    }
}

/// The kernel socket's effective values of the options `is_udp_option` names, over `o`.
pub fn udp_options_of(fd: i32, mut o: stack::udp::UdpOptions) -> stack::udp::UdpOptions {
    let int = |level: i32, name: i32| kernel_int(fd, level, name);
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_TTL) {
        o.ttl = v.clamp(1, 255) as u8;
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_TOS) {
        o.tos = v as u8;
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_MULTICAST_TTL) {
        o.multicast_ttl = v.clamp(0, 255) as u8;
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_MULTICAST_IF) {
        // An in_addr in network order; 0.0.0.0: none chosen.
        let a = Ipv4Addr::from(u32::from_be(v as u32));
        o.multicast_src = (!a.is_unspecified()).then_some(a);
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_MULTICAST_LOOP) {
        o.multicast_loop = v != 0 && crate::config::mcast_loop();
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_MULTICAST_ALL) {
        o.multicast_all = v != 0;
    }
    if let Some(v) = int(libc::IPPROTO_IP, libc::IP_MTU_DISCOVER) {
        // IP_PMTUDISC_DO and IP_PMTUDISC_PROBE: DF, and EMSGSIZE past the MTU.
        o.dont_fragment = v == libc::IP_PMTUDISC_DO || v == libc::IP_PMTUDISC_PROBE;
    }
    if let Some(v) = int(libc::SOL_SOCKET, libc::SO_BROADCAST) {
        o.broadcast = v != 0;
    }
    // Broadcasts through the kernel socket, which loops them to this host's sockets as Linux
    // does; EXASOCK_MCAST_LOOP=0 sends them accelerated, with no local copy.
    o.broadcast_via_kernel = crate::config::mcast_loop();
    o
}

impl Runtime {
    /// Re-reads a UDP slot's options from its kernel socket into the stack.
    pub fn refresh_udp_options(&mut self, slot: u32, fd: i32) {
        let Some(s) = self.slot(slot).filter(|s| s.proto == Proto::Udp) else { return };
        if let Ok(o) = self.driver.stack().udp_options_mut(s.handle) {
            *o = udp_options_of(fd, *o);
        }
    }
}
