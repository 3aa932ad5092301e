//! The control plane of `exasock-ctl`: attach, detach and inspect an interface.
//!
//! Attaching loads the BPF object, pins its maps and a TCX ingress link under the interface's
//! state directory in the bpffs (so they outlive the command), turns GRO and LRO off, and sweeps
//! stale flows. Detaching unpins everything, which detaches the program.

use crate::bpf::{self, TC_PROGRAM};
use crate::ethtool;
use crate::steering::{state_dir, FlowEntry, Steering, BPFFS};
use aya::programs::links::{FdLink, PinnedLink};
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpFlags};
use aya::EbpfLoader;
use std::ffi::CString;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

/// Name of the pinned TCX link in an interface's state directory.
const TC_LINK: &str = "tc_link";
/// Names of the pinned XDP link, by attach mode (the name records the mode for `status`).
pub(crate) const XDP_LINK: &str = "xdp_link_skb";
pub(crate) const XDP_LINK_NATIVE: &str = "xdp_link_native";
/// Name of the XDP program in the object.
const XDP_PROGRAM: &str = "exasock_xdp";
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
    /// Detach refused: live processes serve flows on the interface (their pids, sorted).
    InUse {
        /// The interface.
        iface: String,
        /// The flows' live owners.
        pids: Vec<u32>,
        /// How many flows they hold.
        flows: usize,
    },
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
            ControlError::InUse { iface, pids, flows } => {
                let pids: Vec<String> = pids.iter().map(u32::to_string).collect();
                write!(
                    f,
                    "{iface} serves {flows} flow(s) of running processes (pid {}): stop them first, or detach with \
                     --force (their UDP sockets then receive through the kernel, their TCP connections are reset)",
                    pids.join(", ")
                )
            }
            ControlError::Other(m) => write!(f, "{m}"),
        }
    }
}

impl std::error::Error for ControlError {}

fn other(what: &str, e: impl fmt::Display) -> ControlError {
    ControlError::Other(format!("{what}: {e}"))
}

/// Which datapath processes use on an attached interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AttachDatapath {
    /// AF_PACKET rings only (tc drops the kernel's copy of accelerated flows).
    #[default]
    AfPacket,
    /// The XDP program beside the tc one: the first process binds AF_XDP sockets to every RX
    /// queue, later ones use AF_PACKET.
    Xdp,
}

/// How the XDP program is attached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum XdpMode {
    /// SKB (generic) mode on veth, where it measured faster than driver mode; driver mode on
    /// anything else.
    #[default]
    Auto,
    /// SKB (generic) mode: works on every device, never zero-copy.
    Skb,
    /// Driver (native) mode: the device's driver runs the program; zero-copy where it can.
    Native,
}

/// What `attach` sets up.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AttachOptions {
    /// AF_PACKET only, or XDP as well.
    pub datapath: AttachDatapath,
    /// The XDP program's attach mode (with `AttachDatapath::Xdp`).
    pub xdp_mode: XdpMode,
}

impl AttachOptions {
    /// The options the namespace tests run with: `EXASOCK_TEST_DATAPATH=xdp` attaches XDP
    /// (the suite runs once per datapath), anything else AF_PACKET.
    pub fn for_tests() -> AttachOptions {
        let xdp = std::env::var("EXASOCK_TEST_DATAPATH").is_ok_and(|v| v == "xdp" || v == "af_xdp");
        AttachOptions {
            datapath: if xdp { AttachDatapath::Xdp } else { AttachDatapath::AfPacket },
            xdp_mode: XdpMode::Auto,
        }
    }
}

/// What an attach did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachReport {
    /// False when the interface was attached already (attach is idempotent).
    pub newly_attached: bool,
    /// Flows of dead processes removed.
    pub swept: usize,
    /// What the interface runs now: "af_packet", "xdp (skb mode)" or "xdp (native mode)".
    pub datapath: String,
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
    /// "af_packet", "xdp (skb mode)" or "xdp (native mode)".
    pub datapath: String,
    /// TCP frames of flows served over AF_XDP that XDP let through to tc, which dropped them
    /// so that the kernel would not reset the connection (frames another device's tc
    /// redirected to this one skip SKB-mode XDP); TCP retransmitted them.
    pub xdp_missed: u64,
}

/// The sum over CPUs of the pinned `xdp_missed` counter in `dir` (0 if it cannot be read).
fn xdp_missed(dir: &Path) -> u64 {
    let Ok(data) = aya::maps::MapData::from_pin(dir.join("xdp_missed")) else { return 0 };
    let Ok(array) = aya::maps::PerCpuArray::<_, u64>::try_from(aya::maps::Map::PerCpuArray(data)) else { return 0 };
    array.get(&0, 0).map(|per_cpu| per_cpu.iter().sum()).unwrap_or(0)
}

/// The datapath an interface's state directory says it runs.
fn datapath_name(dir: &Path) -> String {
    if dir.join(XDP_LINK_NATIVE).exists() {
        "xdp (native mode)".into()
    } else if dir.join(XDP_LINK).exists() {
        "xdp (skb mode)".into()
    } else {
        "af_packet".into()
    }
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

/// Attaches exasock to `iface` with AF_PACKET: idempotent.
pub fn attach(iface: &str) -> Result<AttachReport, ControlError> {
    attach_with(iface, &AttachOptions::default())
}

/// Attaches exasock to `iface`: idempotent. Attaching an interface again with another datapath
/// switches it (XDP added or removed; the tc program and the maps stay).
pub fn attach_with(iface: &str, options: &AttachOptions) -> Result<AttachReport, ControlError> {
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
    set_xdp(iface, &dir, options)?;
    disable_gro_lro(iface).map_err(|e| other(&format!("cannot turn GRO/LRO off on {iface}"), e))?;
    let mut steering = Steering::open(iface).map_err(|e| other("cannot open the flows map", e))?;
    // Wildcard flows answer only for the interface's own addresses; running exasock processes
    // keep this current as addresses change.
    let addrs = crate::steering::interface_addrs(iface).map_err(|e| other("cannot read the addresses", e))?;
    steering
        .set_local_addrs(&crate::steering::wildcard_addrs(&addrs))
        .map_err(|e| other("cannot record the interface's addresses", e))?;
    let swept = steering.swept_on_open();
    Ok(AttachReport { newly_attached, swept, datapath: datapath_name(&dir) })
}

/// Adds the XDP program (pinned link) when asked for and missing, removes it when AF_PACKET
/// alone is asked for, switches its mode when another is asked for.
fn set_xdp(iface: &str, dir: &Path, options: &AttachOptions) -> Result<(), ControlError> {
    let native = match options.xdp_mode {
        XdpMode::Skb => false,
        XdpMode::Native => true,
        XdpMode::Auto => !matches!(ethtool::driver(iface), Ok((d, _)) if d == "veth"),
    };
    let (want, unwanted) = if native { (XDP_LINK_NATIVE, XDP_LINK) } else { (XDP_LINK, XDP_LINK_NATIVE) };
    let mut remove = vec![unwanted];
    if options.datapath == AttachDatapath::AfPacket {
        remove.push(want);
    }
    for name in remove {
        let path = dir.join(name);
        if path.exists() {
            let link = PinnedLink::from_pin(&path).map_err(|e| other("cannot open the pinned XDP link", e))?;
            drop(link.unpin().map_err(|e| other("cannot unpin the XDP link", e))?);
        }
    }
    if options.datapath == AttachDatapath::AfPacket || dir.join(want).exists() {
        return Ok(());
    }
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(dir)
        .load(bpf::object())
        .map_err(|e| ControlError::Rejected(format!("{e:#}")))?;
    let prog: &mut Xdp = ebpf
        .program_mut(XDP_PROGRAM)
        .ok_or_else(|| other("BPF object", "no XDP program"))?
        .try_into()
        .map_err(|e| other("BPF object", e))?;
    prog.load().map_err(|e| ControlError::Rejected(format!("{e}")))?;
    let flags = if native { XdpFlags::DRV_MODE } else { XdpFlags::SKB_MODE };
    let id = prog.attach(iface, flags).map_err(|e| {
        let mode = if native { "driver (native)" } else { "SKB (generic)" };
        other(&format!("cannot attach the XDP program to {iface} in {mode} mode"), e)
    })?;
    let link = prog.take_link(id).map_err(|e| other("XDP link", e))?;
    let link = FdLink::try_from(link).map_err(|e| other("XDP attached through netlink, not a bpf link", e))?;
    link.pin(dir.join(want)).map_err(|e| other("cannot pin the XDP link", e))?;
    Ok(())
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
/// Refused (`InUse`, naming their pids) while running processes serve flows on it, unless
/// `force`.
pub fn detach(iface: &str, force: bool) -> Result<bool, ControlError> {
    check_root()?;
    let dir = state_dir(iface).map_err(|e| other("cannot read our network namespace", e))?;
    if !dir.exists() {
        return Ok(false);
    }
    if !force {
        // Dead owners' flows are swept on open; what is left belongs to running processes.
        if let Ok(s) = Steering::open(iface) {
            let live: Vec<FlowEntry> = s.entries().into_iter().filter(FlowEntry::owner_alive).collect();
            let mut pids: Vec<u32> = live.iter().map(|f| f.owner_pid).collect();
            pids.sort_unstable();
            pids.dedup();
            if !pids.is_empty() {
                return Err(ControlError::InUse { iface: iface.to_owned(), pids, flows: live.len() });
            }
        }
    }
    remove_state_dir(&dir)?;
    Ok(true)
}

fn remove_state_dir(dir: &Path) -> Result<(), ControlError> {
    for name in [TC_LINK, XDP_LINK, XDP_LINK_NATIVE] {
        let link_path = dir.join(name);
        if link_path.exists() {
            let link = PinnedLink::from_pin(&link_path).map_err(|e| other("cannot open a pinned link", e))?;
            drop(link.unpin().map_err(|e| other("cannot unpin a link", e))?);
        }
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
        let datapath = datapath_name(&netns_dir.join(&iface));
        let xdp_missed = xdp_missed(&netns_dir.join(&iface));
        out.push(InterfaceStatus { iface, program_attached, flows, swept, datapath, xdp_missed });
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
