//! Claiming flows: the per-process side of the `flows` map that the BPF programs steer by.
//!
//! A process claims each (protocol, local address, local port) it serves before frames of that
//! flow can reach its ring, and releases it when done. Entries of processes that died without
//! releasing are swept (here when a claim finds one, by `exasock-ctl` on attach and status).
//! The owner must keep a kernel socket bound to the flow's port for as long as it serves it:
//! that socket reserves the port, and the tc program takes its absence as the owner's death.

use crate::bpf::{RawFlowKey, RawFlowValue, FLOWS_MAP, LOCAL_ADDRS_MAP};
use aya::maps::{HashMap, Map, MapData, MapError};
use std::fmt;
use std::io;
use std::net::Ipv4Addr;
use std::path::PathBuf;

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

/// The addresses a wildcard flow answers for on an interface with these addresses (and prefix
/// lengths): each address and, below /31, its directed broadcast. The limited broadcast and
/// multicast groups are matched by the BPF programs themselves.
pub fn wildcard_addrs(addrs: &[(Ipv4Addr, u8)]) -> Vec<Ipv4Addr> {
    let mut out = Vec::new();
    for &(addr, prefix_len) in addrs {
        out.push(addr);
        if prefix_len < 31 {
            let host_mask = u32::MAX >> prefix_len;
            out.push(Ipv4Addr::from(u32::from(addr) | host_mask));
        }
    }
    out.sort();
    out.dedup();
    out
}

/// The IPv4 addresses (with prefix lengths) of an interface, from getifaddrs.
pub fn interface_addrs(iface: &str) -> io::Result<Vec<(Ipv4Addr, u8)>> {
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
            let addr = &*(ifa.ifa_addr as *const libc::sockaddr_in);
            let prefix_len = if ifa.ifa_netmask.is_null() {
                32
            } else {
                u32::from_be((*(ifa.ifa_netmask as *const libc::sockaddr_in)).sin_addr.s_addr).count_ones() as u8
            };
            out.push((Ipv4Addr::from(u32::from_be(addr.sin_addr.s_addr)), prefix_len));
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

/// A flow the stack serves, as the steering programs match it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Flow {
    /// UDP or TCP.
    pub protocol: Protocol,
    /// Local address; `UNSPECIFIED` matches every address of the interface (INADDR_ANY).
    pub local_ip: Ipv4Addr,
    /// Local port.
    pub local_port: u16,
}

impl fmt::Display for Flow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Udp => "udp",
            Protocol::Tcp => "tcp",
        };
        if self.local_ip.is_unspecified() {
            write!(f, "{proto} *:{}", self.local_port)
        } else {
            write!(f, "{proto} {}:{}", self.local_ip, self.local_port)
        }
    }
}

impl Flow {
    fn to_raw(self) -> RawFlowKey {
        RawFlowKey {
            dst_ip: self.local_ip.octets(),
            dst_port: self.local_port.to_be_bytes(),
            proto: self.protocol.number(),
            pad: 0,
        }
    }

    fn from_raw(raw: &RawFlowKey) -> Option<Flow> {
        let protocol = match raw.proto {
            17 => Protocol::Udp,
            6 => Protocol::Tcp,
            _ => return None,
        };
        Some(Flow { protocol, local_ip: Ipv4Addr::from(raw.dst_ip), local_port: u16::from_be_bytes(raw.dst_port) })
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
}

impl FlowEntry {
    /// Whether the owning process still exists.
    pub fn owner_alive(&self) -> bool {
        pid_alive(self.owner_pid)
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

/// One interface's flows map. The pin is opened for each operation (claims are rare), so no
/// descriptor is held between them.
pub struct Steering {
    path: PathBuf,
    pid: u32,
    swept_on_open: usize,
}

type FlowsMap = HashMap<MapData, RawFlowKey, RawFlowValue>;

impl fmt::Debug for Steering {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Steering").field("pid", &self.pid).finish()
    }
}

impl Steering {
    /// Opens the flows map of an attached interface.
    pub fn open(iface: &str) -> Result<Steering, SteeringError> {
        let dir =
            state_dir(iface).map_err(|e| SteeringError::Bpf(format!("cannot read our network namespace: {e}")))?;
        let path = dir.join(FLOWS_MAP);
        if !path.exists() {
            return Err(SteeringError::NotAttached { iface: iface.to_string() });
        }
        let mut steering = Steering { path, pid: std::process::id(), swept_on_open: 0 };
        steering.map()?;
        // Every process that starts serving flows clears what dead ones left behind.
        steering.swept_on_open = steering.sweep().len();
        Ok(steering)
    }

    fn map(&self) -> Result<FlowsMap, SteeringError> {
        let data = MapData::from_pin(&self.path)
            .map_err(|e| SteeringError::Bpf(format!("cannot open {}: {e}", self.path.display())))?;
        HashMap::try_from(Map::HashMap(data))
            .map_err(|e| SteeringError::Bpf(format!("{} is not the flows map: {e}", self.path.display())))
    }

    /// How many dead owners' entries `open` removed.
    pub fn swept_on_open(&self) -> usize {
        self.swept_on_open
    }

    /// Claims `flow` for this process. A stale entry of a dead process is replaced; a live
    /// owner's is not.
    pub fn claim(&mut self, flow: Flow, datapath: Datapath) -> Result<(), SteeringError> {
        let key = flow.to_raw();
        let value = RawFlowValue { owner_pid: self.pid, datapath: datapath.number(), shared: 0, pad: [0; 2] };
        let mut flows = self.map()?;
        for _ in 0..2 {
            match flows.insert(key, value, BPF_NOEXIST) {
                Ok(()) => return Ok(()),
                Err(e) if errno(&e) == Some(libc::EEXIST) => {
                    let Ok(existing) = flows.get(&key, 0) else {
                        continue;
                    };
                    if existing.owner_pid == self.pid {
                        return Ok(());
                    }
                    if pid_alive(existing.owner_pid) {
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
        let value = RawFlowValue { owner_pid: self.pid, datapath: datapath.number(), shared: 0, pad: [0; 2] };
        self.map()?.insert(flow.to_raw(), value, 0).map_err(|e| match errno(&e) {
            Some(libc::E2BIG) => SteeringError::Full,
            _ => SteeringError::Bpf(format!("cannot claim {flow}: {e}")),
        })
    }

    /// Releases `flow` if this process owns it; another owner's entry is left alone.
    pub fn release(&mut self, flow: Flow) -> Result<(), SteeringError> {
        let key = flow.to_raw();
        let mut flows = self.map()?;
        match flows.get(&key, 0) {
            Ok(v) if v.owner_pid == self.pid => {
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

    /// Every entry of the map.
    pub fn entries(&self) -> Vec<FlowEntry> {
        let Ok(flows) = self.map() else { return Vec::new() };
        flows
            .iter()
            .filter_map(|r| r.ok())
            .filter_map(|(k, v)| {
                let datapath = match v.datapath {
                    1 => Datapath::AfPacket,
                    2 => Datapath::AfXdp,
                    _ => return None,
                };
                Some(FlowEntry { flow: Flow::from_raw(&k)?, owner_pid: v.owner_pid, datapath, shared: v.shared != 0 })
            })
            .collect()
    }

    /// Releases every flow this process owns (at exit).
    pub fn release_all_mine(&mut self) -> usize {
        let mine: Vec<Flow> = self.entries().into_iter().filter(|e| e.owner_pid == self.pid).map(|e| e.flow).collect();
        mine.iter().filter(|f| self.release(**f).is_ok()).count()
    }

    /// Removes the entries of processes that no longer exist; returns what was removed.
    pub fn sweep(&mut self) -> Vec<FlowEntry> {
        let dead: Vec<FlowEntry> = self.entries().into_iter().filter(|e| !e.owner_alive()).collect();
        if let Ok(mut flows) = self.map() {
            for e in &dead {
                let _ = flows.remove(&e.flow.to_raw());
            }
        }
        dead
    }
}
