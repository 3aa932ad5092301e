//! One namespace whose only interface is a TAP device: its kernel side is a real Linux host
//! (with the TCP/IP settings a test asks for, which are per namespace), and the test drives the
//! device's other end with a sans-IO stack. The interop tests of the TCP engine against the
//! kernel's own TCP use it (DESIGN.md, testing topology).
//!
//! No IFF_VNET_HDR: the kernel sends full checksums and no GSO frames. The kernel knows the
//! engine's MAC from a permanent neighbour entry, so the engine never needs ARP.

use crate::cmd::ip;
use crate::{names, ns_exec, process, read_mac, sweep, NsChild, NEXT_INDEX};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::Ordering;
use std::sync::Mutex;
use std::time::Duration;

/// The TAP device's name inside its namespace.
pub const TAP_NAME: &str = "tap0";

/// The addresses of a TAP host (the defaults: kernel 10.77.0.1 with the device's own MAC,
/// engine 10.77.0.2 at 02:77:00:00:00:02).
#[derive(Debug, Clone, Copy)]
pub struct TapAddresses {
    /// The kernel's address on the device.
    pub kernel_ip: Ipv4Addr,
    /// The device's MAC, if it must be a given one.
    pub kernel_mac: Option<[u8; 6]>,
    /// The other end's address.
    pub engine_ip: Ipv4Addr,
    /// The other end's MAC.
    pub engine_mac: [u8; 6],
}

impl Default for TapAddresses {
    fn default() -> Self {
        TapAddresses {
            kernel_ip: Ipv4Addr::new(10, 77, 0, 1),
            kernel_mac: None,
            engine_ip: Ipv4Addr::new(10, 77, 0, 2),
            engine_mac: [0x02, 0x77, 0, 0, 0, 0x02],
        }
    }
}

fn mac_text(m: [u8; 6]) -> String {
    format!("{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}", m[0], m[1], m[2], m[3], m[4], m[5])
}

/// A namespace with a TAP device; dropping it kills its processes and deletes the namespace.
#[derive(Debug)]
pub struct TapHost {
    /// Network namespace name.
    pub netns: String,
    /// The kernel's address on the device (prefix length 24).
    pub kernel_ip: Ipv4Addr,
    /// The device's MAC, the kernel side's.
    pub kernel_mac: [u8; 6],
    /// The address the engine on the other end uses.
    pub engine_ip: Ipv4Addr,
    /// The MAC the kernel sends the engine's frames to.
    pub engine_mac: [u8; 6],
    children: Mutex<Vec<u32>>,
}

impl TapHost {
    /// Creates the namespace and device, with `sysctls` (e.g. `("net.ipv4.tcp_sack", "0")`)
    /// set inside the namespace and the MTU given.
    pub fn create(sysctls: &[(&str, &str)], mtu: u32) -> io::Result<TapHost> {
        TapHost::create_as(sysctls, mtu, TapAddresses::default())
    }

    /// As `create`, with other addresses: two hosts made with mirrored addresses can be joined
    /// by a relay between their devices (a kernel-to-kernel baseline through the same harness).
    pub fn create_as(sysctls: &[(&str, &str)], mtu: u32, addresses: TapAddresses) -> io::Result<TapHost> {
        sweep();
        let existing = ip(&["netns", "list"]).unwrap_or_default();
        let netns = loop {
            let (a, _) = names::pair(std::process::id(), NEXT_INDEX.fetch_add(1, Ordering::Relaxed));
            if !existing.lines().any(|l| l.split_whitespace().next() == Some(a.as_str())) {
                break a;
            }
        };
        let host = TapHost {
            netns,
            kernel_ip: addresses.kernel_ip,
            kernel_mac: addresses.kernel_mac.unwrap_or([0; 6]),
            engine_ip: addresses.engine_ip,
            engine_mac: addresses.engine_mac,
            children: Mutex::new(Vec::new()),
        };
        // From here on, a failure drops `host`, which deletes what was made.
        let mut host = host;
        host.build(sysctls, mtu)?;
        Ok(host)
    }

    fn build(&mut self, sysctls: &[(&str, &str)], mtu: u32) -> io::Result<()> {
        let ns = self.netns.clone();
        ip(&["netns", "add", &ns])?;
        ns_exec(&ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
        ns_exec(&ns, &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
        for (key, value) in sysctls {
            ns_exec(&ns, &["sysctl", "-qw", &format!("{key}={value}")])?;
        }
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&["-n", &ns, "tuntap", "add", "dev", TAP_NAME, "mode", "tap"])?;
        if self.kernel_mac != [0; 6] {
            ip(&["-n", &ns, "link", "set", TAP_NAME, "address", &mac_text(self.kernel_mac)])?;
        }
        ip(&["-n", &ns, "link", "set", TAP_NAME, "mtu", &mtu.to_string()])?;
        ip(&["-n", &ns, "addr", "add", &format!("{}/24", self.kernel_ip), "dev", TAP_NAME])?;
        ip(&["-n", &ns, "link", "set", TAP_NAME, "up"])?;
        let mac = mac_text(self.engine_mac);
        let engine = self.engine_ip.to_string();
        ip(&["-n", &ns, "neigh", "add", &engine, "lladdr", &mac, "dev", TAP_NAME, "nud", "permanent"])?;
        self.kernel_mac = read_mac(&ns, TAP_NAME)?;
        Ok(())
    }

    /// Opens the device's other end (non-blocking, close-on-exec). The device's carrier is up
    /// while it is open.
    pub fn open(&self) -> io::Result<OwnedFd> {
        self.in_ns(|| {
            // SAFETY: open of a path literal; the result is checked.
            let fd = unsafe { libc::open(c"/dev/net/tun".as_ptr(), libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC) };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: a descriptor we just opened and own.
            let fd = unsafe { OwnedFd::from_raw_fd(fd) };
            // SAFETY: ifreq is plain data; all-zero is valid.
            let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
            for (dst, src) in req.ifr_name.iter_mut().zip(TAP_NAME.bytes()) {
                *dst = src as libc::c_char;
            }
            req.ifr_ifru.ifru_flags = (libc::IFF_TAP | libc::IFF_NO_PI) as libc::c_short;
            // SAFETY: TUNSETIFF with a valid ifreq.
            if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut req) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(fd)
        })?
    }

    /// Runs `f` on a thread inside the namespace (sockets it makes live there).
    pub fn in_ns<R: Send>(&self, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        crate::in_netns(&self.netns, f)
    }

    /// Starts `argv` in the namespace, killed after `timeout` and at the latest on drop.
    pub fn spawn(&self, argv: &[&str], timeout: Duration) -> io::Result<NsChild> {
        let child = NsChild::spawn(&self.netns, argv, timeout)?;
        self.children.lock().unwrap_or_else(|e| e.into_inner()).push(child.pid());
        Ok(child)
    }
}

impl Drop for TapHost {
    fn drop(&mut self) {
        for pid in self.children.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            process::kill_pid(pid);
        }
        names::remove(&[&self.netns]);
    }
}
