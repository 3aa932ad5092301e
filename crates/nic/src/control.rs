//! The control plane of `exasock-ctl`: attach, detach and inspect an interface.
//!
//! Attaching loads the BPF object, pins its maps and a TCX ingress link under the interface's
//! state directory in the bpffs (so they outlive the command), turns GRO and LRO off, and sweeps
//! stale flows. Detaching unpins everything, which detaches the program.

use crate::bpf::{self, TC_PROGRAM};
use crate::ethtool;
use crate::steering::{state_dir, FlowEntry, Steering, BPFFS};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{SchedClassifier, TcAttachType};
use aya::EbpfLoader;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the pinned TCX link in an interface's state directory.
const TC_LINK: &str = "tc_link";
/// bpffs magic number (statfs f_type).
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

/// Why a control operation failed, with what to do about it.
#[derive(Debug)]
pub enum ControlError {
    /// Loading BPF programs needs root (or CAP_BPF + CAP_NET_ADMIN).
    NotRoot,
    /// No interface of that name in this network namespace.
    NoSuchInterface(String),
    /// The bpffs is not mounted at /run/exasock.
    NoBpffs,
    /// The veth peer sends TSO frames larger than the MTU, which no datapath may receive.
    PeerSendsTso(VethPeer),
    /// The kernel refused the program; carries the verifier log.
    Rejected(String),
    /// Anything else, described.
    Other(String),
}

impl fmt::Display for ControlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ControlError::NotRoot => {
                write!(f, "must be run as root (loading BPF programs needs CAP_BPF and CAP_NET_ADMIN)")
            }
            ControlError::NoSuchInterface(i) => {
                write!(f, "no interface named {i} in this network namespace (see `ip link`)")
            }
            ControlError::NoBpffs => {
                write!(f, "no bpffs at {BPFFS}: run scripts/setup.sh, or `mount -t bpf bpf {BPFFS}` in the initial mount namespace")
            }
            ControlError::PeerSendsTso(peer) => {
                let exec = peer.netns.as_ref().map(|ns| format!("ip netns exec {ns} ")).unwrap_or_default();
                write!(
                    f,
                    "the veth peer {} sends TSO frames larger than the MTU, which exasock cannot receive: \
                     run `{exec}ethtool -K {} tx off` (real checksums, no TSO, as from a wire), then attach again",
                    peer.iface, peer.iface
                )
            }
            ControlError::Rejected(log) => {
                write!(f, "the kernel rejected the steering program:\n{log}")
            }
            ControlError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ControlError {}

fn other(what: &str, e: impl fmt::Display) -> ControlError {
    ControlError::Other(format!("{what}: {e}"))
}

/// What an attach did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachReport {
    /// False when the interface was attached already (attach is idempotent).
    pub newly_attached: bool,
    /// Flows of dead processes removed.
    pub swept: usize,
}

/// One attached interface, as `exasock-ctl status` shows it.
#[derive(Debug, Clone)]
pub struct InterfaceStatus {
    /// Interface name.
    pub iface: String,
    /// Whether the tc ingress link is pinned and the interface still exists.
    pub program_attached: bool,
    /// Entries of the flows map (after sweeping the dead).
    pub flows: Vec<FlowEntry>,
    /// Flows of dead processes removed by this status call.
    pub swept: usize,
}

fn check_root() -> Result<(), ControlError> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err(ControlError::NotRoot);
    }
    Ok(())
}

fn ifindex(iface: &str) -> Result<u32, ControlError> {
    crate::if_index(iface).ok_or_else(|| ControlError::NoSuchInterface(iface.to_string()))
}

fn bpffs_mounted() -> bool {
    let path = CString::new(BPFFS).unwrap();
    // SAFETY: statfs writes into a zeroed struct we own.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(path.as_ptr(), &mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}

/// Attaches exasock to `iface`: idempotent.
pub fn attach(iface: &str) -> Result<AttachReport, ControlError> {
    check_root()?;
    ifindex(iface)?;
    if let Some(peer) = veth_peer(iface).filter(|p| p.tso) {
        return Err(ControlError::PeerSendsTso(peer));
    }
    if !bpffs_mounted() {
        return Err(ControlError::NoBpffs);
    }
    let dir = state_dir(iface).map_err(|e| other("cannot read our network namespace", e))?;
    std::fs::create_dir_all(&dir).map_err(|e| other(&format!("cannot create {}", dir.display()), e))?;
    let link_path = dir.join(TC_LINK);
    let newly_attached = !link_path.exists();
    if newly_attached {
        if let Err(e) = load_and_pin(iface, &dir, &link_path) {
            // Leave nothing half-made behind: the next attach starts clean.
            let _ = remove_state_dir(&dir);
            return Err(e);
        }
    }
    disable_gro_lro(iface).map_err(|e| other(&format!("cannot turn GRO/LRO off on {iface}"), e))?;
    let mut steering = Steering::open(iface).map_err(|e| other("cannot open the flows map", e))?;
    // Wildcard flows answer only for the interface's own addresses; running exasock processes
    // keep this current as addresses change.
    let addrs = crate::steering::interface_addrs(iface).map_err(|e| other("cannot read the addresses", e))?;
    steering
        .set_local_addrs(&crate::steering::wildcard_addrs(&addrs))
        .map_err(|e| other("cannot record the interface's addresses", e))?;
    let swept = steering.swept_on_open();
    Ok(AttachReport { newly_attached, swept })
}

/// Loads the object with its maps pinned in `dir`, attaches the tc program to ingress through
/// TCX and pins the link, which keeps it attached after we exit.
fn load_and_pin(iface: &str, dir: &Path, link_path: &Path) -> Result<(), ControlError> {
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(dir)
        .load(bpf::object())
        .map_err(|e| ControlError::Rejected(format!("{e:#}")))?;
    let prog: &mut SchedClassifier = ebpf
        .program_mut(TC_PROGRAM)
        .ok_or_else(|| other("BPF object", "no tc program"))?
        .try_into()
        .map_err(|e| other("BPF object", e))?;
    prog.load().map_err(|e| ControlError::Rejected(format!("{e}")))?;
    let id = prog.attach(iface, TcAttachType::Ingress).map_err(|e| other("cannot attach to tc ingress", e))?;
    let link = prog.take_link(id).map_err(|e| other("tc link", e))?;
    let link = FdLink::try_from(link).map_err(|e| {
        other("tc ingress attached through netlink, not TCX (kernel older than 6.6?); exasock needs TCX", e)
    })?;
    link.pin(link_path).map_err(|e| other(&format!("cannot pin {}", link_path.display()), e))?;
    Ok(())
}

/// Detaches exasock from `iface`: unpins the link (which detaches the program) and the maps.
pub fn detach(iface: &str) -> Result<bool, ControlError> {
    check_root()?;
    let dir = state_dir(iface).map_err(|e| other("cannot read our network namespace", e))?;
    if !dir.exists() {
        return Ok(false);
    }
    remove_state_dir(&dir)?;
    Ok(true)
}

fn remove_state_dir(dir: &Path) -> Result<(), ControlError> {
    let link_path = dir.join(TC_LINK);
    if link_path.exists() {
        let link = PinnedLink::from_pin(&link_path).map_err(|e| other("cannot open the pinned tc link", e))?;
        drop(link.unpin().map_err(|e| other("cannot unpin the tc link", e))?);
    }
    for entry in std::fs::read_dir(dir).map_err(|e| other("cannot list state", e))?.flatten() {
        std::fs::remove_file(entry.path())
            .map_err(|e| other(&format!("cannot remove {}", entry.path().display()), e))?;
    }
    std::fs::remove_dir(dir).map_err(|e| other(&format!("cannot remove {}", dir.display()), e))
}

/// Every interface attached in this network namespace, sweeping dead owners' flows.
pub fn status() -> Result<Vec<InterfaceStatus>, ControlError> {
    let netns_dir: PathBuf = crate::steering::netns_dir().map_err(|e| other("cannot read our network namespace", e))?;
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(&netns_dir) else {
        return Ok(out);
    };
    let mut names: Vec<String> = entries.flatten().filter_map(|e| e.file_name().into_string().ok()).collect();
    names.sort();
    for iface in names {
        if ifindex(&iface).is_err() {
            // The interface is gone: its state is stale and only holds kernel memory.
            let _ = remove_state_dir(&netns_dir.join(&iface));
            continue;
        }
        let program_attached = netns_dir.join(&iface).join(TC_LINK).exists();
        let (flows, swept) = match Steering::open(&iface) {
            Ok(mut s) => {
                let swept = s.swept_on_open() + s.sweep().len();
                (s.entries(), swept)
            }
            Err(_) => (Vec::new(), 0),
        };
        out.push(InterfaceStatus { iface, program_attached, flows, swept });
    }
    Ok(out)
}

/// Turns off GRO and LRO: no frame larger than the MTU may reach a datapath.
fn disable_gro_lro(iface: &str) -> io::Result<()> {
    const ETHTOOL_GFLAGS: u32 = 0x25;
    const ETHTOOL_SFLAGS: u32 = 0x26;
    const ETHTOOL_GGRO: u32 = 0x2b;
    const ETHTOOL_SGRO: u32 = 0x2c;
    const ETH_FLAG_LRO: u32 = 1 << 15;
    if ethtool::value(iface, ETHTOOL_GGRO, 0)? != 0 {
        ethtool::value(iface, ETHTOOL_SGRO, 0)?;
    }
    let flags = ethtool::value(iface, ETHTOOL_GFLAGS, 0)?;
    if flags & ETH_FLAG_LRO != 0 {
        ethtool::value(iface, ETHTOOL_SFLAGS, flags & !ETH_FLAG_LRO)?;
    }
    Ok(())
}

/// The other end of a veth pair, found by its index in whichever named network namespace (or
/// this one) holds a veth whose own peer is us.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VethPeer {
    /// The namespace's name under /run/netns, or `None` for our own namespace.
    pub netns: Option<String>,
    /// The peer interface's name.
    pub iface: String,
    /// Whether the peer segments in software late or not at all (TSO on): it then hands us
    /// frames larger than the MTU.
    pub tso: bool,
}

const ETHTOOL_GTSO: u32 = 0x1e;

/// The name under /run/netns of the namespace holding `iface`'s link partner, as `ip` shows it
/// (`link-netns NAME`); None when it has none or `ip` cannot name it.
fn link_netns(iface: &str) -> Option<String> {
    let out = std::process::Command::new("ip").args(["-o", "link", "show", "dev", iface]).output().ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let mut words = text.split_whitespace();
    words.by_ref().find(|w| *w == "link-netns")?;
    words.next().map(str::to_string)
}

fn peer_ifindex(iface: &str) -> Option<u32> {
    match ethtool::driver(iface) {
        Ok((driver, _)) if driver == "veth" => ethtool::stat(iface, "peer_ifindex").ok().flatten().map(|i| i as u32),
        _ => None,
    }
}

/// Finds the veth peer of `iface`, if it is a veth and its peer is in a namespace we can see.
pub fn veth_peer(iface: &str) -> Option<VethPeer> {
    let our_index = ifindex(iface).ok()?;
    let peer_index = peer_ifindex(iface)?;
    let named = link_netns(iface);
    let iface = iface.to_string();
    let inspect = move || -> Option<(String, bool)> {
        let mut name = [0 as libc::c_char; libc::IF_NAMESIZE];
        // SAFETY: if_indextoname writes at most IF_NAMESIZE bytes into `name`.
        let p = unsafe { libc::if_indextoname(peer_index, name.as_mut_ptr()) };
        if p.is_null() {
            return None;
        }
        // SAFETY: if_indextoname wrote a NUL-terminated name.
        let peer = unsafe { std::ffi::CStr::from_ptr(name.as_ptr()) }.to_string_lossy().into_owned();
        // Index numbers repeat across namespaces: in our own, index N may be ourselves.
        (peer != iface && peer_ifindex(&peer)? == our_index).then_some(())?;
        Some((peer.clone(), ethtool::value(&peer, ETHTOOL_GTSO, 0).ok()? != 0))
    };
    if let Some((iface, tso)) = inspect() {
        return Some(VethPeer { netns: None, iface, tso });
    }
    use std::os::unix::fs::MetadataExt;
    let own = std::fs::metadata("/proc/thread-self/ns/net").ok()?.ino();
    // Index numbers repeat in every namespace, so another pair of veths elsewhere can look like
    // ours: when `ip` names the peer's namespace (link-netns NAME, resolved through the kernel's
    // namespace ids), only that one is searched.
    let dir = std::fs::read_dir("/run/netns").ok()?;
    for entry in dir.flatten() {
        if named.as_deref().is_some_and(|n| entry.file_name().to_str() != Some(n)) {
            continue;
        }
        if entry.metadata().is_ok_and(|m| m.ino() == own) {
            continue;
        }
        let Ok(ns) = std::fs::File::open(entry.path()) else { continue };
        let found = std::thread::scope(|s| {
            s.spawn(|| {
                use std::os::fd::AsRawFd;
                // SAFETY: setns on a namespace fd changes only this short-lived thread.
                if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                    return None;
                }
                inspect()
            })
            .join()
            .ok()
            .flatten()
        });
        if let Some((iface, tso)) = found {
            return Some(VethPeer { netns: entry.file_name().into_string().ok(), iface, tso });
        }
    }
    None
}
