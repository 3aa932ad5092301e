//! The test topology: two network namespaces joined by a veth pair.
//!
//! The accelerated program runs in one namespace ("accel"), real kernel programs in the other
//! ("peer"). Every real-network test, in Rust or in shell (through the `exasock-testbed` binary),
//! stands on this one helper, which keeps these promises:
//! - names are unique and short (`xs<pid>-<n>a`/`b`, at most 15 bytes, valid as interface names),
//!   and carry the owner's pid so that leftovers of dead runs are recognised and swept;
//! - the peer's TX checksum offload is off, so its frames carry real checksums and no TSO
//!   super-frames, as if from a wire;
//! - every spawned process runs under `timeout -s KILL`, so it dies even if we are killed first;
//! - teardown kills every process in the namespaces by pid before deleting them (deleting a
//!   namespace does not kill what runs in it), and runs on drop, so a failing test cleans up too;
//! - readiness is awaited by polling (link state, `ss`), never by sleeping a fixed time.

mod cmd;
pub mod impair;
mod names;
mod process;
pub mod tap;

pub use cmd::{command_output, ip};
pub use impair::{Direction, Filter, ImpairStats, Impairment};
pub use names::{remove_topology, sweep, sweep_all, SweepReport};
pub use process::NsChild;

use std::io;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which end of the topology.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Where the accelerated program runs.
    Accel,
    /// Where the kernel peers run.
    Peer,
}

/// One namespace of the topology and its end of the veth pair.
#[derive(Debug, Clone)]
pub struct Host {
    /// Network namespace name (as `ip netns` knows it).
    pub netns: String,
    /// The veth interface inside it.
    pub iface: String,
    /// Its IPv4 address (prefix length 24).
    pub ip: Ipv4Addr,
    /// Its MAC address.
    pub mac: [u8; 6],
}

/// Transport protocol, for readiness checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Proto {
    /// TCP: waits for a listening socket.
    Tcp,
    /// UDP: waits for a bound socket.
    Udp,
}

/// Shape of a topology to create.
#[derive(Debug, Clone)]
pub struct Options {
    /// Address of the accelerated end.
    pub accel_ip: Ipv4Addr,
    /// Address of the peer end.
    pub peer_ip: Ipv4Addr,
    /// MTU of both veth ends.
    pub mtu: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options { accel_ip: Ipv4Addr::new(10, 99, 0, 1), peer_ip: Ipv4Addr::new(10, 99, 0, 2), mtu: 1500 }
    }
}

/// A live topology; dropping it kills its processes and deletes its namespaces.
#[derive(Debug)]
pub struct Topology {
    /// The accelerated end.
    pub accel: Host,
    /// The kernel peer end.
    pub peer: Host,
    children: Mutex<Vec<u32>>,
    /// The impairment on the peer's veth, attached on first use.
    impairer: Mutex<Option<impair::Impairer>>,
}

pub(crate) static NEXT_INDEX: AtomicU32 = AtomicU32::new(0);
static SERIAL: Mutex<()> = Mutex::new(());

/// Serialises namespace tests within one test binary: hold the guard for the whole test.
pub fn serial() -> MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

/// Whether namespace tests can run here; `Err` says why not. Tests that get `Err` fail, unless
/// EXASOCK_SKIP_NETNS is set, in which case they print the reason and skip.
pub fn available() -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Err("network namespace tests need root".into());
    }
    for tool in ["ip", "ethtool", "ss", "timeout"] {
        if command_output(tool, &["-V"]).is_err() && command_output(tool, &["--version"]).is_err() {
            return Err(format!("`{tool}` is missing: run scripts/setup.sh"));
        }
    }
    Ok(())
}

/// For the top of a namespace test: `None` means skip (the reason is printed), otherwise go on.
/// Panics with the reason when the machine cannot run it and skipping was not asked for.
pub fn require() -> Option<MutexGuard<'static, ()>> {
    match available() {
        Ok(()) => Some(serial()),
        Err(why) if std::env::var_os("EXASOCK_SKIP_NETNS").is_some() => {
            println!("skipped: {why} (EXASOCK_SKIP_NETNS is set)");
            None
        }
        Err(why) => panic!("{why}; set EXASOCK_SKIP_NETNS=1 to skip namespace tests"),
    }
}

impl Topology {
    /// Creates a topology with default addresses, owned by this process.
    pub fn create() -> io::Result<Topology> {
        Topology::with_options(&Options::default(), std::process::id())
    }

    /// Creates a topology; `owner` is the pid whose death makes it a leftover for [`sweep`].
    pub fn with_options(options: &Options, owner: u32) -> io::Result<Topology> {
        sweep();
        // Another process may have made topologies for the same owner (a shell running
        // `exasock-testbed up` twice): skip names that exist.
        let existing = ip(&["netns", "list"]).unwrap_or_default();
        let (a, b) = loop {
            let (a, b) = names::pair(owner, NEXT_INDEX.fetch_add(1, Ordering::Relaxed));
            if !existing.lines().any(|l| l.split_whitespace().next() == Some(a.as_str())) {
                break (a, b);
            }
        };
        let topo = Topology {
            accel: Host { netns: a.clone(), iface: a, ip: options.accel_ip, mac: [0; 6] },
            peer: Host { netns: b.clone(), iface: b, ip: options.peer_ip, mac: [0; 6] },
            children: Mutex::new(Vec::new()),
            impairer: Mutex::new(None),
        };
        // From here on, a failure drops `topo`, which removes whatever was made.
        let mut topo = topo;
        topo.build(options)?;
        Ok(topo)
    }

    fn build(&mut self, options: &Options) -> io::Result<()> {
        let (a, b) = (&self.accel, &self.peer);
        ip(&["netns", "add", &a.netns])?;
        ip(&["netns", "add", &b.netns])?;
        // Two queues each way, so that a datapath binding every RX queue (AF_XDP) is exercised
        // on more than one.
        let q = ["numtxqueues", "2", "numrxqueues", "2"];
        ip(&[
            &["link", "add", &a.iface, "netns", &a.netns][..],
            &q,
            &["type", "veth", "peer", "name", &b.iface, "netns", &b.netns],
            &q,
        ]
        .concat())?;
        for host in [a, b] {
            let ns = host.netns.as_str();
            // No IPv6: its router solicitations and DAD would be noise on every ring.
            ns_exec(ns, &["sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1"])?;
            ns_exec(ns, &["sysctl", "-qw", "net.ipv6.conf.default.disable_ipv6=1"])?;
            ip(&["-n", ns, "link", "set", "lo", "up"])?;
            ip(&["-n", ns, "link", "set", &host.iface, "mtu", &options.mtu.to_string()])?;
            ip(&["-n", ns, "addr", "add", &format!("{}/24", host.ip), "dev", &host.iface])?;
            ip(&["-n", ns, "link", "set", &host.iface, "up"])?;
        }
        // Real checksums and no TSO/GSO frames from the peer, as from a wire.
        ns_exec(&b.netns, &["ethtool", "-K", &b.iface, "tx", "off"])?;
        let mac_a = read_mac(&a.netns, &a.iface)?;
        let mac_b = read_mac(&b.netns, &b.iface)?;
        self.accel.mac = mac_a;
        self.peer.mac = mac_b;
        self.wait_link_up(Duration::from_secs(10))
    }

    fn wait_link_up(&self, timeout: Duration) -> io::Result<()> {
        poll_until(timeout, "veth carrier", || {
            Ok([&self.accel, &self.peer]
                .iter()
                .all(|h| ip(&["-n", &h.netns, "-o", "link", "show", &h.iface]).is_ok_and(|s| s.contains("state UP"))))
        })
    }

    /// The host at `side`.
    pub fn host(&self, side: Side) -> &Host {
        match side {
            Side::Accel => &self.accel,
            Side::Peer => &self.peer,
        }
    }

    /// Runs `argv` in a namespace to completion, killed after `timeout`; fails on a non-zero exit
    /// with the program's output in the error.
    pub fn run(&self, side: Side, argv: &[&str], timeout: Duration) -> io::Result<String> {
        let out = self.spawn(side, argv, timeout)?.finish(timeout)?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(io::Error::other(format!(
                "{argv:?} in {side:?} exited with {}: {}{}",
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    }

    /// Starts `argv` in a namespace with piped stdin/stdout/stderr. It is killed after `timeout`
    /// even if this process dies, and at the latest when the topology is dropped.
    pub fn spawn(&self, side: Side, argv: &[&str], timeout: Duration) -> io::Result<NsChild> {
        let child = NsChild::spawn(&self.host(side).netns, argv, timeout)?;
        self.children.lock().unwrap_or_else(|e| e.into_inner()).push(child.pid());
        Ok(child)
    }

    /// Waits until something in the namespace listens on `port` (TCP) or is bound to it (UDP).
    pub fn wait_listening(&self, side: Side, proto: Proto, port: u16, timeout: Duration) -> io::Result<()> {
        let flag = match proto {
            Proto::Tcp => "-Hltn",
            Proto::Udp => "-Hlun",
        };
        let filter = format!("sport = :{port}");
        let ns = self.host(side).netns.clone();
        poll_until(timeout, &format!("{proto:?} port {port} in {ns}"), || {
            Ok(!ns_exec(&ns, &["ss", flag, &filter])?.trim().is_empty())
        })
    }

    /// Runs `f` on a thread that has entered the namespace at `side`: sockets it creates live
    /// there (a network namespace is per thread) and may be used from any thread afterwards.
    pub fn in_ns<R: Send>(&self, side: Side, f: impl FnOnce() -> R + Send) -> io::Result<R> {
        in_netns(&self.host(side).netns, f)
    }

    /// Sends raw Ethernet frames out of `side`'s interface (AF_PACKET), as a hostile host
    /// would: every frame goes out (when the qdisc pushes back, it waits and tries again), `gap`
    /// apart (zero: a flood).
    pub fn send_raw_frames(&self, side: Side, frames: Vec<Vec<u8>>, gap: Duration) -> io::Result<()> {
        let iface = self.host(side).iface.clone();
        self.in_ns(side, move || -> io::Result<()> {
            let name = std::ffi::CString::new(iface).map_err(io::Error::other)?;
            // SAFETY: plain socket calls on a socket of our own, with buffers we own.
            unsafe {
                let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0);
                if fd < 0 {
                    return Err(io::Error::last_os_error());
                }
                let mut sll: libc::sockaddr_ll = std::mem::zeroed();
                sll.sll_family = libc::AF_PACKET as u16;
                sll.sll_ifindex = libc::if_nametoindex(name.as_ptr()) as i32;
                sll.sll_halen = 6;
                let mut result = Ok(());
                for f in frames.iter().filter(|f| f.len() >= 6) {
                    sll.sll_addr[..6].copy_from_slice(&f[..6]);
                    let sent = |_| {
                        libc::sendto(
                            fd,
                            f.as_ptr().cast(),
                            f.len(),
                            0,
                            (&sll as *const libc::sockaddr_ll).cast(),
                            std::mem::size_of::<libc::sockaddr_ll>() as u32,
                        ) >= 0
                    };
                    if !(0..100).any(|i| {
                        if i > 0 {
                            std::thread::sleep(Duration::from_micros(20));
                        }
                        sent(i)
                    }) {
                        result = Err(io::Error::last_os_error());
                        break;
                    }
                    if !gap.is_zero() {
                        std::thread::sleep(gap);
                    }
                }
                libc::close(fd);
                result
            }
        })?
    }

    /// Reads a counter from `nstat` in a namespace (e.g. "UdpInDatagrams"), absolute value.
    pub fn counter(&self, side: Side, name: &str) -> io::Result<u64> {
        let out = ns_exec(&self.host(side).netns, &["nstat", "-asz", name])?;
        out.lines()
            .find_map(|l| {
                let mut it = l.split_whitespace();
                (it.next() == Some(name)).then(|| it.next().and_then(|v| v.parse().ok())).flatten()
            })
            .ok_or_else(|| io::Error::other(format!("counter {name} not in nstat output: {out}")))
    }

    /// Impairs the frames going `dir` as `imp` says, from now on (`Impairment::none()` stops);
    /// the direction's counters and decisions start again.
    /// The program sits on the peer's veth, ingress and egress: no program runs on the
    /// accelerated side, so kernel baselines and exasock runs cross the same impaired link.
    /// A kernel's TCP hands tc its segments before GSO splits them (GSO is always on for TCP),
    /// and veth carries TSO frames whole, so the first call limits both veth ends to one segment
    /// per packet (`gso_max_segs 1`): every frame impaired is one wire frame, as on a real link.
    /// exasock never sends super-frames, so this changes nothing for it.
    pub fn impair(&self, dir: Direction, imp: &Impairment) -> io::Result<()> {
        let mut slot = self.impairer.lock().unwrap_or_else(|e| e.into_inner());
        if slot.is_none() {
            for host in [&self.peer, &self.accel] {
                ip(&["-n", &host.netns, "link", "set", "dev", &host.iface, "gso_max_segs", "1"])?;
            }
            let iface = self.peer.iface.clone();
            *slot = Some(in_netns(&self.peer.netns, move || impair::Impairer::attach(&iface))??);
        }
        slot.as_mut().expect("attached above").set(dir, imp)
    }

    /// What the impairment has done to the frames going `dir` since it was last set (all zero
    /// when never impaired).
    pub fn impair_stats(&self, dir: Direction) -> io::Result<ImpairStats> {
        match self.impairer.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            Some(imp) => imp.stats(dir),
            None => Ok(ImpairStats::default()),
        }
    }

    /// Kills every process started through this topology and every other process still inside
    /// its namespaces, then deletes them. Idempotent; also run on drop.
    pub fn teardown(&self) {
        self.impairer.lock().unwrap_or_else(|e| e.into_inner()).take();
        for pid in self.children.lock().unwrap_or_else(|e| e.into_inner()).drain(..) {
            process::kill_pid(pid);
        }
        names::remove(&[&self.accel.netns, &self.peer.netns]);
    }
}

impl Drop for Topology {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Runs `f` on a thread that has entered the namespace `netns`.
pub fn in_netns<R: Send>(netns: &str, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    let ns = std::fs::File::open(format!("/var/run/netns/{netns}"))?;
    std::thread::scope(|s| {
        s.spawn(|| {
            // SAFETY: setns on a valid namespace fd only changes this thread's namespace.
            if unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(f())
        })
        .join()
        .unwrap_or_else(|p| std::panic::resume_unwind(p))
    })
}

/// Runs a command inside a namespace (no timeout wrapper: for quick tools like ip, ss, sysctl).
pub fn ns_exec(netns: &str, argv: &[&str]) -> io::Result<String> {
    let mut args = vec!["netns", "exec", netns];
    args.extend_from_slice(argv);
    ip(&args)
}

fn read_mac(netns: &str, iface: &str) -> io::Result<[u8; 6]> {
    let out = ip(&["-n", netns, "-o", "link", "show", iface])?;
    let text = out
        .split("link/ether ")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .ok_or_else(|| io::Error::other(format!("no MAC in: {out}")))?;
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in mac.iter_mut() {
        *byte = parts
            .next()
            .and_then(|p| u8::from_str_radix(p, 16).ok())
            .ok_or_else(|| io::Error::other(format!("bad MAC {text}")))?;
    }
    Ok(mac)
}

/// Polls `ready` every few milliseconds until it says true or `timeout` passes.
pub fn poll_until(timeout: Duration, what: &str, mut ready: impl FnMut() -> io::Result<bool>) -> io::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        if ready()? {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("timed out after {timeout:?} waiting for {what}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
