//! Claiming flows: the per-process side of the `flows` map that the BPF programs steer by.
//!
//! A process claims each flow it serves before frames of that flow can reach its ring, and
//! releases it when done. Three kinds of [`Flow`]: a UDP socket's (protocol, local address,
//! local port), a TCP listener's (the same, taking only segments that open a connection) and
//! one TCP connection's (the 4-tuple). Entries of processes that died without releasing are
//! swept (here when a claim finds one and at `open`, by `exasock-ctl` on attach and status).
//!
//! Liveness. Every process that claims flows holds an [`Anchor`]: a socket of its own in the
//! interface's pinned `anchors` SOCKHASH under a random 64-bit token, which every entry it
//! writes carries. The kernel removes the anchor when its last descriptor closes (exit, kill;
//! it is close-on-exec, and the preload library closes it in a fork child), and then:
//! - tc passes the TCP flows of that token to the kernel, which answers RST;
//! - `sweep` removes the entries (as it removes those whose pid is gone).
//!
//! A UDP flow's owner must also keep a kernel socket bound to the flow's port for as long as it
//! serves it: that socket reserves the port, and the tc program takes its absence as the
//! owner's death (unchanged from before anchors).
//!
//! Ownership. A process may only claim a port its own kernel socket holds (issue 22): a claim
//! of a UDP flow or a TCP listener needs a UDP (TCP) socket of this process, in this network
//! namespace, bound to the flow's port and to its address or every address (a flow for every
//! address needs a socket bound to every address); otherwise it is refused with
//! [`SteeringError::NotBound`]. A TCP connection rides on its local port: an accepted one on
//! its listener's, an active open on the port its socket's bind reserved; so a connection
//! needs a TCP socket of this process bound to its local port and address (or every address),
//! or a live entry of this `Steering` on that TCP port and address (or the wildcard). The
//! second is the cache that keeps the check off the per-SYN path: each (protocol, address,
//! port) counts this `Steering`'s live claims on it, and a connection covered by a counted one
//! (its listener's, or an earlier connection's on the same port) makes no syscall. Every other
//! claim scans the process's descriptors (`ownership`: one getsockname each until one holds
//! the port): once per socket for UDP and listeners. An active open's caller names its socket
//! first ([`Steering::vouch`]), so its claim checks that socket alone.

use crate::bpf::{RawFlowKey, RawFlowValue, RawMcastKey, ANCHORS_MAP, FLOWS_MAP, LOCAL_ADDRS_MAP, MCAST_MAP};
use aya::maps::{HashMap, Map, MapData, MapError};
use std::fmt;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

/// `BPF_NOEXIST` of linux/bpf.h: insert only if the key is absent.
const BPF_NOEXIST: u64 = 1;

/// Where the bpffs holding every attached interface's pinned objects is mounted.
pub const BPFFS: &str = "/run/exasock";

/// SO_NETNS_COOKIE (Linux 5.14): the socket's network namespace cookie.
const SO_NETNS_COOKIE: libc::c_int = 71;

/// The calling thread's network namespace cookie: unlike the namespace's inode number, which
/// the kernel hands to the next namespace as soon as one is deleted, a cookie is never reused.
/// Raw syscalls on an AF_UNIX socket: nothing of ours (preload exports) is reached.
pub fn netns_cookie() -> io::Result<u64> {
    // SAFETY: a socket we create and close here; getsockopt writes into a u64 we own.
    unsafe {
        let fd = libc::syscall(libc::SYS_socket, libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as i32;
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut cookie = 0u64;
        let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
        let r = libc::syscall(
            libc::SYS_getsockopt,
            fd,
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            &mut cookie as *mut u64,
            &mut len as *mut libc::socklen_t,
        );
        let err = io::Error::last_os_error();
        libc::syscall(libc::SYS_close, fd);
        if r != 0 {
            return Err(err);
        }
        Ok(cookie)
    }
}

/// The directory of this network namespace's pinned objects: `/run/exasock/<netns cookie>`.
pub fn netns_dir() -> io::Result<PathBuf> {
    Ok(PathBuf::from(BPFFS).join(netns_cookie()?.to_string()))
}

/// The directory of one interface's pinned objects: `/run/exasock/<netns cookie>/<iface>`, so
/// that equal interface names in different network namespaces never share a map, and a
/// namespace never sees the state of a deleted one (cookies, unlike inodes, are not reused).
pub fn state_dir(iface: &str) -> io::Result<PathBuf> {
    Ok(netns_dir()?.join(iface))
}

/// The interfaces attached in this network namespace: those with a pinned flows map whose
/// interface exists here (state left by an interface that went away is ignored; `exasock-ctl
/// status` sweeps it).
pub fn attached_interfaces() -> Vec<String> {
    let Ok(dir) = netns_dir() else { return Vec::new() };
    let Ok(entries) = std::fs::read_dir(&dir) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.path().join(FLOWS_MAP).exists())
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|name| crate::if_index(name).is_some())
        .collect();
    names.sort();
    names
}

/// The addresses a wildcard flow answers for on an interface with these addresses (prefix
/// lengths, configured broadcast addresses): each address, below /31 its prefix's directed
/// broadcast (which the kernel always routes as broadcast), and the broadcast configured with
/// it. The limited broadcast and multicast groups are matched by the BPF programs themselves.
pub fn wildcard_addrs(addrs: &[(Ipv4Addr, u8, Option<Ipv4Addr>)]) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for &(addr, prefix_len, broadcast) in addrs {
        out.push(addr);
        if prefix_len < 31 {
            let host_mask = u32::MAX >> prefix_len;
            out.push(Ipv4Addr::from(u32::from(addr) | host_mask));
        }
        out.extend(broadcast.filter(|b| *b != Ipv4Addr::BROADCAST));
    }
    out.sort();
    out.dedup();
    out
}

/// The IPv4 addresses of an interface with their prefix lengths and configured broadcast
/// addresses, from getifaddrs (glibc gives the address itself as the broadcast of one
/// configured without one).
pub fn interface_addrs(iface: &str) -> io::Result<Vec<(Ipv4Addr, u8, Option<Ipv4Addr>)>> {
    let mut head: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills a list we free below.
    if unsafe { libc::getifaddrs(&mut head) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let mut out = Vec::new();
    let mut cur = head;
    while !cur.is_null() {
        // SAFETY: a node of the list getifaddrs returned; its strings and sockaddrs live until
        // freeifaddrs.
        unsafe {
            let ifa = &*cur;
            cur = ifa.ifa_next;
            if ifa.ifa_addr.is_null() || i32::from((*ifa.ifa_addr).sa_family) != libc::AF_INET {
                continue;
            }
            if std::ffi::CStr::from_ptr(ifa.ifa_name).to_bytes() != iface.as_bytes() {
                continue;
            }
            let addr = Ipv4Addr::from(u32::from_be((*(ifa.ifa_addr as *const libc::sockaddr_in)).sin_addr.s_addr));
            let broadcast = if ifa.ifa_ifu.is_null() || ifa.ifa_flags & libc::IFF_BROADCAST as u32 == 0 {
                None
            } else {
                let b = (*(ifa.ifa_ifu as *const libc::sockaddr_in)).sin_addr.s_addr;
                Some(Ipv4Addr::from(u32::from_be(b))).filter(|b| *b != addr && !b.is_unspecified())
            };
            let prefix_len = if ifa.ifa_netmask.is_null() {
                32
            } else {
                u32::from_be((*(ifa.ifa_netmask as *const libc::sockaddr_in)).sin_addr.s_addr).count_ones() as u8
            };
            out.push((addr, prefix_len, broadcast));
        }
    }
    // SAFETY: the list getifaddrs returned, freed once.
    unsafe { libc::freeifaddrs(head) };
    Ok(out)
}

/// Transport protocol of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// UDP.
    Udp,
    /// TCP.
    Tcp,
}

impl Protocol {
    fn number(self) -> u8 {
        match self {
            Protocol::Udp => 17,
            Protocol::Tcp => 6,
        }
    }
}

/// A flow the stack serves, as the steering programs match it. Build one with [`Flow::udp`],
/// [`Flow::tcp_listener`] or [`Flow::tcp_connection`].
///
/// The programs look an arriving frame up by its exact 4-tuple first (a TCP connection's
/// entry), then by (local address, port) with no remote, then by (unspecified, port) with no
/// remote. An entry without a remote takes every UDP datagram to its port, but only the TCP
/// segments that open a connection (SYN without ACK): every other TCP segment without an exact
/// entry goes to the kernel, so kernel connections on a port survive a listener there being
/// claimed, and a connection's entry can go without its listener's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// Local address; `UNSPECIFIED` matches every address of the interface (INADDR_ANY).
    pub local_ip: Ipv4Addr,
    /// Local port.
    pub local_port: u16,
    /// The peer of one TCP connection; `None` for UDP sockets and TCP listeners.
    pub remote: Option<SocketAddrV4>,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        if self.local_ip.is_unspecified() {
            write!(f, "{proto} *:{}", self.local_port)?;
        } else {
            write!(f, "{proto} {}:{}", self.local_ip, self.local_port)?;
        }
        match (self.remote, self.protocol) {
            (Some(r), _) => write!(f, " <-> {r}"),
            (None, Protocol::Tcp) => write!(f, " listen"),
            (None, Protocol::Udp) => Ok(()),
        }
    }
}

impl Flow {
    /// A UDP socket bound to `local_ip` (`UNSPECIFIED`: every address of the interface) and
    /// `port`: every datagram to it.
    pub fn udp(local_ip: Ipv4Addr, port: u16) -> Flow {
        Flow { protocol: Protocol::Udp, local_ip, local_port: port, remote: None }
    }

    /// A TCP listener on `local_ip` (`UNSPECIFIED`: every address of the interface) and
    /// `port`: only segments that open a connection (SYN without ACK) that no connection entry
    /// matches. The owner claims each connection it accepts with [`Flow::tcp_connection`].
    pub fn tcp_listener(local_ip: Ipv4Addr, port: u16) -> Flow {
        Flow { protocol: Protocol::Tcp, local_ip, local_port: port, remote: None }
    }

    /// One TCP connection between `local` (a specific address) and `remote`: every segment of
    /// that 4-tuple, whatever its flags.
    pub fn tcp_connection(local: SocketAddrV4, remote: SocketAddrV4) -> Flow {
        Flow { protocol: Protocol::Tcp, local_ip: *local.ip(), local_port: local.port(), remote: Some(remote) }
    }

    fn to_raw(self) -> RawFlowKey {
        let (src_ip, src_port) = match self.remote {
            Some(r) => (r.ip().octets(), r.port().to_be_bytes()),
            None => ([0; 4], [0; 2]),
        };
        RawFlowKey {
            dst_ip: self.local_ip.octets(),
            src_ip,
            dst_port: self.local_port.to_be_bytes(),
            src_port,
            proto: self.protocol.number(),
            pad: [0; 3],
        }
    }

    fn from_raw(raw: &RawFlowKey) -> Option<Flow> {
        let protocol = match raw.proto {
            17 => Protocol::Udp,
            6 => Protocol::Tcp,
            _ => return None,
        };
        let remote_ip = Ipv4Addr::from(raw.src_ip);
        let remote_port = u16::from_be_bytes(raw.src_port);
        let remote =
            (!remote_ip.is_unspecified() || remote_port != 0).then(|| SocketAddrV4::new(remote_ip, remote_port));
        Some(Flow {
            protocol,
            local_ip: Ipv4Addr::from(raw.dst_ip),
            local_port: u16::from_be_bytes(raw.dst_port),
            remote,
        })
    }
}

/// A process's liveness anchor: a UDP socket bound to 127.0.0.1:0 (close-on-exec, made with raw
/// syscalls so that no interposed socket()/bind() is reached) and a random 64-bit token. A
/// [`Steering`] makes one at its first claim (or at [`Steering::anchor_fd`]) and puts it into the
/// interface's pinned `anchors` SOCKHASH under the token; every entry it writes carries the
/// token. The kernel drops the SOCKHASH entry when the last descriptor of the socket closes, so
/// the anchor lives exactly as long as the process (and, outside the preload library, any fork
/// child that has not exec'd or closed it).
pub struct Anchor {
    fd: OwnedFd,
    token: u64,
}

impl fmt::Debug for Anchor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Anchor")
            .field("fd", &self.fd.as_raw_fd())
            .field("token", &format_args!("{:#x}", self.token))
            .finish()
    }
}

impl Anchor {
    /// Makes the socket and draws a token (not yet in any map).
    pub fn new() -> io::Result<Anchor> {
        // SAFETY: raw socket and bind syscalls on a descriptor we own from here on.
        let fd = unsafe {
            let raw = libc::syscall(libc::SYS_socket, libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) as i32;
            if raw < 0 {
                return Err(io::Error::last_os_error());
            }
            let fd = OwnedFd::from_raw_fd(raw);
            let addr = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: 0,
                sin_addr: libc::in_addr { s_addr: u32::from(Ipv4Addr::LOCALHOST).to_be() },
                sin_zero: [0; 8],
            };
            let r = libc::syscall(
                libc::SYS_bind,
                fd.as_raw_fd(),
                &addr as *const libc::sockaddr_in,
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            );
            if r != 0 {
                return Err(io::Error::last_os_error());
            }
            fd
        };
        let fd = crate::fdplace::place(fd)?;
        let mut token = 0;
        while token == 0 {
            let mut bytes = [0u8; 8];
            getrandom(&mut bytes)?;
            token = u64::from_le_bytes(bytes);
        }
        Ok(Anchor { fd, token })
    }

    /// The token this process's entries carry.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The socket (an internal descriptor of the process).
    pub fn fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

/// Fills `buf` from the kernel's random source (getrandom(2)), retrying on EINTR.
pub fn getrandom(buf: &mut [u8]) -> io::Result<()> {
    let mut at = 0;
    while at < buf.len() {
        // SAFETY: writing at most the rest of our own buffer.
        let n = unsafe { libc::getrandom(buf[at..].as_mut_ptr().cast(), buf.len() - at, 0) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        at += n as usize;
    }
    Ok(())
}

/// bpf(2) on a map with a u64 key and a u64 value (the anchors SOCKHASH, which aya's `SockHash`
/// cannot drive: it wants 4-byte values, and a 4-byte SOCKHASH cannot be looked up from user
/// space).
fn bpf_map_u64(cmd: libc::c_int, map: RawFd, key: u64, value: &mut u64, flags: u64) -> io::Result<()> {
    // SAFETY: our key and value, 8 bytes each as the map's, outlive the call.
    unsafe { crate::sys::bpf_map_elem(cmd, map, (&key as *const u64).cast(), (value as *mut u64).cast(), flags) }
}

use crate::sys::{BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM};

/// The anchors map of an interface's state directory, opened for one operation.
fn open_anchors(dir: &Path) -> Result<MapData, SteeringError> {
    let path = dir.join(ANCHORS_MAP);
    MapData::from_pin(&path).map_err(|e| {
        SteeringError::Bpf(format!(
            "cannot open {} ({e}): the interface was attached by another exasock version; run `exasock-ctl detach` and `attach` again",
            path.display()
        ))
    })
}

/// Whether the anchor of `token` is in the anchors map of the state directory `dir` (None: the
/// map cannot tell).
pub(crate) fn anchor_alive(dir: &Path, token: u64) -> Option<bool> {
    anchor_present(&open_anchors(dir).ok()?, token)
}

/// Whether an anchor with this token is in the map: None when the map cannot tell.
fn anchor_present(anchors: &MapData, token: u64) -> Option<bool> {
    let mut cookie = 0u64;
    match bpf_map_u64(BPF_MAP_LOOKUP_ELEM, anchors.fd().as_fd().as_raw_fd(), token, &mut cookie, 0) {
        Ok(()) => Some(true),
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => Some(false),
        Err(_) => None,
    }
}

/// How a flow's frames reach its owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Datapath {
    /// An AF_PACKET ring: tc drops the kernel's copy.
    AfPacket,
    /// An AF_XDP socket: XDP redirects the frame.
    AfXdp,
}

impl Datapath {
    fn number(self) -> u8 {
        match self {
            Datapath::AfPacket => 1,
            Datapath::AfXdp => 2,
        }
    }

    /// The name `exasock-ctl status` shows.
    pub fn name(self) -> &'static str {
        match self {
            Datapath::AfPacket => "af_packet",
            Datapath::AfXdp => "af_xdp",
        }
    }
}

/// One entry of the flows map.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowEntry {
    /// The flow.
    pub flow: Flow,
    /// Pid of the process serving it.
    pub owner_pid: u32,
    /// How its frames reach the owner.
    pub datapath: Datapath,
    /// Another process's socket holds the port too: the kernel serves the flow.
    pub shared: bool,
    /// The owner's anchor token (0: none).
    pub token: u64,
    /// Whether the owner's anchor was in the anchors map when the entry was read (true when
    /// the entry has no token or the map could not tell).
    pub anchored: bool,
}

impl FlowEntry {
    /// Whether the owner still lives: its process exists and its anchor is still in the
    /// anchors map (a pid alone may have been reused).
    pub fn owner_alive(&self) -> bool {
        self.anchored && pid_alive(self.owner_pid)
    }
}

/// Whether a process with this pid exists (in our pid namespace).
pub fn pid_alive(pid: u32) -> bool {
    let Ok(pid) = i32::try_from(pid) else {
        return false;
    };
    // SAFETY: kill with signal 0 only checks for existence and permission.
    let r = unsafe { libc::kill(pid, 0) };
    r == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// Why a steering operation failed; each says what to do about it.
#[derive(Debug)]
pub enum SteeringError {
    /// The interface has no exasock programs in this network namespace.
    NotAttached {
        /// The interface.
        iface: String,
    },
    /// Another live process serves the flow.
    Claimed {
        /// The flow.
        flow: Flow,
        /// Its owner.
        owner_pid: u32,
    },
    /// The flows map is full.
    Full,
    /// No kernel socket of this process holds the flow's port (see the module's "Ownership").
    NotBound {
        /// The flow.
        flow: Flow,
    },
    /// Any other failure of the BPF syscalls.
    Bpf(String),
}

impl fmt::Display for SteeringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SteeringError::NotAttached { iface } => {
                write!(f, "{iface} is not accelerated in this network namespace: run `exasock-ctl attach {iface}`")
            }
            SteeringError::Claimed { flow, owner_pid } => {
                write!(f, "{flow} is already served by pid {owner_pid}")
            }
            SteeringError::Full => write!(f, "the flows map is full"),
            SteeringError::NotBound { flow } => {
                let proto = match flow.protocol {
                    Protocol::Udp => "UDP",
                    Protocol::Tcp => "TCP",
                };
                let addr = if flow.local_ip.is_unspecified() {
                    "every address".to_string()
                } else {
                    format!("{} or every address", flow.local_ip)
                };
                write!(
                    f,
                    "cannot claim {flow}: no {proto} socket of this process is bound to port {} on {addr} in this network namespace; a process only steers a port its own kernel socket holds",
                    flow.local_port
                )
            }
            SteeringError::Bpf(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for SteeringError {}

fn errno(e: &MapError) -> Option<i32> {
    match e {
        MapError::SyscallError(s) => s.io_error.raw_os_error(),
        _ => None,
    }
}

/// One interface's flows map, as one process uses it. The pins are opened for each operation
/// (claims are rare), so no map descriptor is held between them; the process's [`Anchor`] is
/// held from the first claim until the `Steering` is dropped. Keep the `Steering` for as long
/// as the process serves flows: dropping it closes the anchor, which tells tc and every sweep
/// that this process is gone.
pub struct Steering {
    path: PathBuf,
    pid: u32,
    swept_on_open: usize,
    anchor: Option<Anchor>,
    /// The network namespace's cookie: the kernel sockets that prove ownership live there.
    netns: u64,
    /// (protocol, local address, port) of this `Steering`'s live claims, each with how many
    /// entries it wrote there and has not released: proof of ownership already checked.
    held: std::collections::HashMap<(Protocol, Ipv4Addr, u16), u32>,
    /// Where the socket named by the last `vouch` is bound: proof for the next claim it covers.
    vouched: Option<(Protocol, Ipv4Addr, u16)>,
    /// The flows map, opened once and kept above the program's descriptors: each operation
    /// works on a duplicate made there. Opening it anew each time took the lowest free number
    /// for a moment, from whatever thread released a flow (the worker, after a close in a
    /// signal handler), and a program's call on the number it had just closed found a BPF map
    /// there (ENOTSOCK instead of EBADF; the C suite's handler-close case saw it).
    flows_fd: std::sync::OnceLock<OwnedFd>,
}

type FlowsMap = HashMap<MapData, RawFlowKey, RawFlowValue>;

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering").field("pid", &self.pid).field("anchor", &self.anchor).finish()
    }
}

impl Steering {
    /// Opens the flows map of an attached interface and sweeps the entries of dead owners. No
    /// anchor is made until the first claim (or [`Steering::anchor_fd`]), so inspecting costs
    /// no socket.
    pub fn open(iface: &str) -> Result<Steering, SteeringError> {
        let netns =
            netns_cookie().map_err(|e| SteeringError::Bpf(format!("cannot read our network namespace: {e}")))?;
        let path = PathBuf::from(BPFFS).join(netns.to_string()).join(iface).join(FLOWS_MAP);
        if !path.exists() {
            return Err(SteeringError::NotAttached { iface: iface.to_string() });
        }
        let mut steering = Steering {
            path,
            pid: std::process::id(),
            swept_on_open: 0,
            anchor: None,
            netns,
            held: std::collections::HashMap::new(),
            vouched: None,
            flows_fd: std::sync::OnceLock::new(),
        };
        steering.map()?;
        // Every process that starts serving flows clears what dead ones left behind.
        steering.swept_on_open = steering.sweep().len();
        Ok(steering)
    }

    fn map(&self) -> Result<FlowsMap, SteeringError> {
        let cannot = |e: &dyn fmt::Display| SteeringError::Bpf(format!("cannot open {}: {e}", self.path.display()));
        let kept = match self.flows_fd.get() {
            Some(fd) => fd,
            None => {
                let data = MapData::from_pin(&self.path).map_err(|e| cannot(&e))?;
                let placed = crate::fdplace::dup_placed(data.fd().as_fd()).map_err(|e| cannot(&e))?;
                drop(data);
                let _ = self.flows_fd.set(placed);
                self.flows_fd.get().ok_or_else(|| cannot(&"lost"))?
            }
        };
        let dup = crate::fdplace::dup_placed(kept.as_fd()).map_err(|e| cannot(&e))?;
        let data = MapData::from_fd(dup).map_err(|e| cannot(&e))?;
        HashMap::try_from(Map::HashMap(data)).map_err(|e| {
            SteeringError::Bpf(format!(
                "{} is not the flows map ({e}): the interface was attached by another exasock version; run `exasock-ctl detach` and `attach` again",
                self.path.display()
            ))
        })
    }

    fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("/"))
    }

    /// This process's anchor token, making the anchor and putting it into the interface's
    /// anchors map on first use.
    fn token(&mut self) -> Result<u64, SteeringError> {
        if let Some(a) = &self.anchor {
            return Ok(a.token);
        }
        let anchor = Anchor::new().map_err(|e| SteeringError::Bpf(format!("cannot make the liveness anchor: {e}")))?;
        let anchors = open_anchors(self.dir())?;
        let mut fd = anchor.fd() as u64;
        const BPF_NOEXIST: u64 = 1;
        bpf_map_u64(BPF_MAP_UPDATE_ELEM, anchors.fd().as_fd().as_raw_fd(), anchor.token, &mut fd, BPF_NOEXIST)
            .map_err(|e| SteeringError::Bpf(format!("cannot insert the liveness anchor: {e}")))?;
        let token = anchor.token;
        self.anchor = Some(anchor);
        Ok(token)
    }

    /// This process's anchor socket, made now if no claim made it yet: an internal descriptor
    /// that an interposition layer must protect from the program and close in a fork child.
    pub fn anchor_fd(&mut self) -> Result<RawFd, SteeringError> {
        self.token()?;
        Ok(self.anchor.as_ref().map(Anchor::fd).unwrap_or(-1))
    }

    /// This process's anchor token (the anchor is made now if no claim made it yet): what its
    /// entries carry, and what an AF_XDP port names its owner by.
    pub fn owner_token(&mut self) -> Result<u64, SteeringError> {
        self.token()
    }

    /// The anchor, if one was made.
    pub fn anchor(&self) -> Option<&Anchor> {
        self.anchor.as_ref()
    }

    fn mine(&self, v: &RawFlowValue) -> bool {
        self.anchor.as_ref().is_some_and(|a| a.token == v.token)
    }

    /// Whether the owner of an entry lives: its pid exists and its anchor is in the map.
    fn value_alive(&self, v: &RawFlowValue, anchors: Option<&MapData>) -> bool {
        if !pid_alive(v.owner_pid) {
            return false;
        }
        match (v.token, anchors) {
            (0, _) | (_, None) => true,
            (t, Some(m)) => anchor_present(m, t).unwrap_or(true),
        }
    }

    /// The flows map's kept descriptor (see `flows_fd`), once opened: one of exasock's own.
    pub fn flows_fd(&self) -> Option<std::os::fd::RawFd> {
        self.flows_fd.get().map(|fd| fd.as_raw_fd())
    }

    /// Whether the interface is still attached (its pinned flows map is there): `exasock-ctl
    /// detach --force` removes it under running programs. A stat of the pin.
    pub fn attached(&self) -> bool {
        self.path.exists()
    }

    /// The pin whose presence `attached` checks (a caller may check it without this value).
    pub fn pin_path(&self) -> &Path {
        &self.path
    }

    /// How many dead owners' entries `open` removed.
    pub fn swept_on_open(&self) -> usize {
        self.swept_on_open
    }

    /// Names the kernel socket of this process that holds the port of the claim about to be
    /// made (an active open's, bound by the caller): that claim then checks this one socket
    /// (one getsockname) instead of scanning every descriptor. False (and no proof) if `fd` is
    /// no UDP or TCP socket bound in this network namespace. The next claim uses the proof up,
    /// whatever its flow.
    pub fn vouch(&mut self, fd: RawFd) -> bool {
        self.vouched = crate::ownership::socket_bound(fd, self.netns);
        self.vouched.is_some()
    }

    /// Checks that this process holds `flow`'s port (see the module's "Ownership"): a counted
    /// claim of this `Steering` covers it, or one of the process's kernel sockets does.
    fn check_owner(&self, flow: Flow) -> Result<(), SteeringError> {
        let p = flow.protocol;
        let counted = |ip: Ipv4Addr| self.held.get(&(p, ip, flow.local_port)).is_some_and(|n| *n > 0);
        // A UDP flow or a listener (claimed once per socket) is always checked against the
        // sockets; a connection (claimed per SYN) may ride on its port's live entries.
        if flow.remote.is_some() && (counted(flow.local_ip) || counted(Ipv4Addr::UNSPECIFIED)) {
            return Ok(());
        }
        if self.vouched.is_some_and(|b| crate::ownership::reserves(b, p, flow.local_ip, flow.local_port)) {
            return Ok(());
        }
        match crate::ownership::process_holds(p, flow.local_ip, flow.local_port, self.netns) {
            Ok(true) => Ok(()),
            Ok(false) => Err(SteeringError::NotBound { flow }),
            Err(e) => Err(SteeringError::Bpf(format!("cannot claim {flow}: cannot list this process's sockets: {e}"))),
        }
    }

    fn count_claim(&mut self, flow: Flow) {
        *self.held.entry((flow.protocol, flow.local_ip, flow.local_port)).or_insert(0) += 1;
    }

    fn count_release(&mut self, flow: Flow) {
        let key = (flow.protocol, flow.local_ip, flow.local_port);
        if let Some(n) = self.held.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(&key);
            }
        }
    }

    /// Claims `flow` (any of the three kinds) for this process, with its anchor's token. A
    /// stale entry of a dead owner (pid gone or anchor gone) is replaced; a live owner's is not
    /// ([`SteeringError::Claimed`]). Claiming a flow this process already owns succeeds.
    /// The process must hold the flow's port ([`SteeringError::NotBound`]; see the module's
    /// "Ownership").
    pub fn claim(&mut self, flow: Flow, datapath: Datapath) -> Result<(), SteeringError> {
        let owned = self.check_owner(flow);
        self.vouched = None;
        owned?;
        if self.claim_unchecked(flow, datapath)? {
            self.count_claim(flow);
        }
        Ok(())
    }

    /// Writes the entry; true if it was not already this process's.
    fn claim_unchecked(&mut self, flow: Flow, datapath: Datapath) -> Result<bool, SteeringError> {
        let key = flow.to_raw();
        let token = self.token()?;
        let value =
            RawFlowValue { owner_pid: self.pid, datapath: datapath.number(), shared: 0, cookies: 0, pad: 0, token };
        let mut flows = self.map()?;
        let anchors = open_anchors(self.dir()).ok();
        for _ in 0..2 {
            match flows.insert(key, value, BPF_NOEXIST) {
                Ok(()) => return Ok(true),
                Err(e) if errno(&e) == Some(libc::EEXIST) => {
                    let Ok(existing) = flows.get(&key, 0) else {
                        continue;
                    };
                    if self.mine(&existing) {
                        return Ok(false);
                    }
                    if self.value_alive(&existing, anchors.as_ref()) {
                        return Err(SteeringError::Claimed { flow, owner_pid: existing.owner_pid });
                    }
                    let _ = flows.remove(&key);
                }
                Err(e) if errno(&e) == Some(libc::E2BIG) => return Err(SteeringError::Full),
                Err(e) => return Err(SteeringError::Bpf(format!("cannot claim {flow}: {e}"))),
            }
        }
        Err(SteeringError::Bpf(format!("cannot claim {flow}: the entry keeps changing")))
    }

    /// Claims `flow` even from another owner that still looks alive. Only for a caller whose
    /// kernel socket holds the port exclusively (bound without SO_REUSEADDR/SO_REUSEPORT): the
    /// kernel then guarantees no other live socket has it, so the other owner is exiting.
    pub fn take_over(&mut self, flow: Flow, datapath: Datapath) -> Result<(), SteeringError> {
        let owned = self.check_owner(flow);
        self.vouched = None;
        owned?;
        let token = self.token()?;
        let value =
            RawFlowValue { owner_pid: self.pid, datapath: datapath.number(), shared: 0, cookies: 0, pad: 0, token };
        let mut flows = self.map()?;
        let already = flows.get(&flow.to_raw(), 0).is_ok_and(|v| self.mine(&v));
        flows.insert(flow.to_raw(), value, 0).map_err(|e| match errno(&e) {
            Some(libc::E2BIG) => SteeringError::Full,
            _ => SteeringError::Bpf(format!("cannot claim {flow}: {e}")),
        })?;
        if !already {
            self.count_claim(flow);
        }
        Ok(())
    }

    /// Releases `flow` (any of the three kinds) if this process (this `Steering`'s anchor) owns
    /// it; another owner's entry, a fork parent's included, is left alone.
    pub fn release(&mut self, flow: Flow) -> Result<(), SteeringError> {
        self.count_release(flow);
        let key = flow.to_raw();
        let mut flows = self.map()?;
        match flows.get(&key, 0) {
            Ok(v) if self.mine(&v) => {
                flows.remove(&key).map_err(|e| SteeringError::Bpf(format!("cannot release {flow}: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Marks `flow` as shared: a socket of this process that is not its owner holds the port
    /// too (SO_REUSEADDR/SO_REUSEPORT), so the kernel must deliver the flow's datagrams among
    /// its sockets as Linux does, the owner's kernel socket included. Returns false when the
    /// entry is gone (the owner released it: the caller may claim it instead).
    pub fn mark_shared(&mut self, flow: Flow) -> Result<bool, SteeringError> {
        const BPF_EXIST: u64 = 2;
        let key = flow.to_raw();
        let mut flows = self.map()?;
        let Ok(mut value) = flows.get(&key, 0) else { return Ok(false) };
        if value.shared != 0 {
            return Ok(true);
        }
        value.shared = 1;
        match flows.insert(key, value, BPF_EXIST) {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(SteeringError::Bpf(format!("cannot mark {flow} shared: {e}"))),
        }
    }

    /// Marks a TCP listener's `flow` as sending SYN cookies: a bare ACK that matches no
    /// connection entry (a cookie's final ACK) then reaches this process too, unless the
    /// kernel has a socket for its 4-tuple. Returns false when the entry is gone.
    pub fn mark_cookies(&mut self, flow: Flow) -> Result<bool, SteeringError> {
        const BPF_EXIST: u64 = 2;
        let key = flow.to_raw();
        let mut flows = self.map()?;
        let Ok(mut value) = flows.get(&key, 0) else { return Ok(false) };
        if value.cookies != 0 {
            return Ok(true);
        }
        value.cookies = 1;
        match flows.insert(key, value, BPF_EXIST) {
            Ok(()) => Ok(true),
            Err(e) if errno(&e) == Some(libc::ENOENT) => Ok(false),
            Err(e) => Err(SteeringError::Bpf(format!("cannot mark {flow} for SYN cookies: {e}"))),
        }
    }

    /// Makes the addresses wildcard flows answer for exactly `addrs` (see [`wildcard_addrs`]).
    /// An interface attached by a version without that map is left alone.
    pub fn set_local_addrs(&mut self, addrs: &[Ipv4Addr]) -> Result<(), SteeringError> {
        let Some(path) = self.path.parent().map(|d| d.join(LOCAL_ADDRS_MAP)) else { return Ok(()) };
        if !path.exists() {
            return Ok(());
        }
        let data =
            MapData::from_pin(&path).map_err(|e| SteeringError::Bpf(format!("cannot open {}: {e}", path.display())))?;
        let mut map: HashMap<MapData, [u8; 4], u32> = HashMap::try_from(Map::HashMap(data))
            .map_err(|e| SteeringError::Bpf(format!("{} is not the local addresses map: {e}", path.display())))?;
        for a in addrs {
            map.insert(a.octets(), 1, 0).map_err(|e| SteeringError::Bpf(format!("cannot add {a}: {e}")))?;
        }
        let stale: Vec<[u8; 4]> =
            map.keys().filter_map(|k| k.ok()).filter(|k| !addrs.contains(&Ipv4Addr::from(*k))).collect();
        for k in stale {
            let _ = map.remove(&k);
        }
        Ok(())
    }

    /// The addresses wildcard flows answer for (empty if the map does not exist).
    pub fn local_addrs(&self) -> Vec<Ipv4Addr> {
        let Some(path) = self.path.parent().map(|d| d.join(LOCAL_ADDRS_MAP)) else { return Vec::new() };
        let Ok(data) = MapData::from_pin(&path) else { return Vec::new() };
        let Ok(map) = HashMap::<MapData, [u8; 4], u32>::try_from(Map::HashMap(data)) else { return Vec::new() };
        let mut out: Vec<Ipv4Addr> = map.keys().filter_map(|k| k.ok()).map(Ipv4Addr::from).collect();
        out.sort();
        out
    }

    /// Every entry of the map, with whether each owner's anchor is still in place.
    pub fn entries(&self) -> Vec<FlowEntry> {
        let Ok(flows) = self.map() else { return Vec::new() };
        let anchors = open_anchors(self.dir()).ok();
        flows
            .iter()
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| {
                let datapath = match v.datapath {
                    1 => Datapath::AfPacket,
                    2 => Datapath::AfXdp,
                    _ => return None,
                };
                let anchored = match (v.token, &anchors) {
                    (0, _) | (_, None) => true,
                    (t, Some(m)) => anchor_present(m, t).unwrap_or(true),
                };
                Some(FlowEntry {
                    flow: Flow::from_raw(&k)?,
                    owner_pid: v.owner_pid,
                    datapath,
                    shared: v.shared != 0,
                    token: v.token,
                    anchored,
                })
            })
            .collect()
    }

    /// The multicast receivers map (created by the socket filter's loader if the interface was
    /// attached before it existed).
    fn mcast_map(&self) -> Result<HashMap<MapData, RawMcastKey, u64>, SteeringError> {
        let path = self.dir().join(MCAST_MAP);
        let data =
            MapData::from_pin(&path).map_err(|e| SteeringError::Bpf(format!("cannot open {}: {e}", path.display())))?;
        HashMap::try_from(Map::HashMap(data))
            .map_err(|e| SteeringError::Bpf(format!("{} is not the multicast map: {e}", path.display())))
    }

    fn mcast_key(&self, group: Ipv4Addr, port: u16) -> RawMcastKey {
        RawMcastKey { group: group.octets(), pid: self.pid, port: port.to_be_bytes(), pad: [0; 6] }
    }

    /// This process receives `group`:`port` from now on: its socket filter takes the group's
    /// datagrams to that port, beside every other process that receives it (multicast flows
    /// have many owners; the tc program leaves the kernel its copy).
    pub fn receive_group(&mut self, group: Ipv4Addr, port: u16) -> Result<(), SteeringError> {
        let token = self.token()?;
        self.mcast_map()?
            .insert(self.mcast_key(group, port), token, 0)
            .map_err(|e| SteeringError::Bpf(format!("cannot receive {group}:{port}: {e}")))
    }

    /// Another process receives `group`:`port` through an AF_XDP flow it owns (a socket bound to
    /// the group, or its wildcard flow on the port): XDP would redirect the group to that
    /// process's XSK alone, which no other ring sees (XDP cannot redirect one frame to several
    /// XSKs). Marks such flows shared, so XDP passes them and the kernel and every ring see the
    /// group (the owner reads it through its kernel socket). Returns how many it marked.
    pub fn share_group_with_xdp_owners(&mut self, group: Ipv4Addr, port: u16) -> usize {
        let token = self.anchor.as_ref().map(Anchor::token);
        let mut marked = 0;
        for flow in [Flow::udp(group, port), Flow::udp(Ipv4Addr::UNSPECIFIED, port)] {
            let Ok(flows) = self.map() else { return marked };
            let Ok(v) = flows.get(&flow.to_raw(), 0) else { continue };
            if Some(v.token) == token || v.shared != 0 || v.datapath != Datapath::AfXdp.number() {
                continue;
            }
            if self.mark_shared(flow).unwrap_or(false) {
                marked += 1;
            }
        }
        marked
    }

    /// This process stops receiving `group`:`port`.
    pub fn stop_group(&mut self, group: Ipv4Addr, port: u16) -> Result<(), SteeringError> {
        let key = self.mcast_key(group, port);
        let mut map = self.mcast_map()?;
        match map.get(&key, 0) {
            Ok(t) if self.anchor.as_ref().is_some_and(|a| a.token == t) => {
                map.remove(&key).map_err(|e| SteeringError::Bpf(format!("cannot stop {group}:{port}: {e}")))
            }
            _ => Ok(()),
        }
    }

    /// Removes the multicast receivers whose process is gone (`mine`: also this process's).
    fn sweep_groups(&mut self, mine: bool) {
        let Ok(mut map) = self.mcast_map() else { return };
        let anchors = open_anchors(self.dir()).ok();
        let token = self.anchor.as_ref().map(Anchor::token);
        let dead: Vec<RawMcastKey> = map
            .iter()
            .filter_map(|r| r.ok())
            .filter(|(k, t)| {
                if mine && Some(*t) == token {
                    return true;
                }
                let v = RawFlowValue { owner_pid: k.pid, datapath: 0, shared: 0, cookies: 0, pad: 0, token: *t };
                Some(*t) != token && !self.value_alive(&v, anchors.as_ref())
            })
            .map(|(k, _)| k)
            .collect();
        for k in dead {
            let _ = map.remove(&k);
        }
    }

    /// Releases every flow this process owns (at exit).
    pub fn release_all_mine(&mut self) -> usize {
        self.sweep_groups(true);
        let Some(token) = self.anchor.as_ref().map(Anchor::token) else { return 0 };
        let mine: Vec<Flow> = self.entries().into_iter().filter(|e| e.token == token).map(|e| e.flow).collect();
        mine.iter().filter(|f| self.release(**f).is_ok()).count()
    }

    /// Removes the entries whose owner is gone (its pid no longer exists, or its anchor left
    /// the anchors map: killed, exited); returns what was removed.
    pub fn sweep(&mut self) -> Vec<FlowEntry> {
        self.sweep_groups(false);
        let dead: Vec<FlowEntry> = self.entries().into_iter().filter(|e| !e.owner_alive()).collect();
        if let Ok(mut flows) = self.map() {
            for e in &dead {
                let key = e.flow.to_raw();
                // Only the entry we judged: a new owner may have replaced it meanwhile.
                if flows.get(&key, 0).is_ok_and(|v| v.token == e.token && v.owner_pid == e.owner_pid) {
                    let _ = flows.remove(&key);
                }
            }
        }
        dead
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_of_flow_round_trips_through_the_map_key_and_shows_its_kind() {
        let local = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), 80);
        let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let flows = [
            (Flow::udp(Ipv4Addr::UNSPECIFIED, 53), "udp *:53"),
            (Flow::tcp_listener(*local.ip(), 80), "tcp 10.0.0.1:80 listen"),
            (Flow::tcp_connection(local, peer), "tcp 10.0.0.1:80 <-> 10.0.0.2:40000"),
        ];
        for (flow, shown) in flows {
            assert_eq!(Flow::from_raw(&flow.to_raw()), Some(flow));
            assert_eq!(flow.to_string(), shown);
        }
        let raw = Flow::tcp_connection(local, peer).to_raw();
        assert_eq!(
            (raw.dst_ip, raw.dst_port, raw.src_ip, raw.src_port),
            ([10, 0, 0, 1], [0, 80], [10, 0, 0, 2], 40000u16.to_be_bytes())
        );
        assert_eq!(Flow::tcp_listener(*local.ip(), 80).to_raw().src_ip, [0; 4]);
    }
}
