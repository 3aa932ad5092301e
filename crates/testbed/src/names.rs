//! Topology names and the sweep of leftovers from dead runs.
//!
//! A name is `xs<owner pid>-<index><side>`, e.g. `xs4242-0a`: at most 15 bytes (pid up to 7
//! digits, index up to 3), so it is valid as an interface name too. A name whose owner pid is no
//! longer alive belongs to a dead run and is swept.

use crate::cmd::ip;
use crate::process::kill_pid;
use std::time::Duration;

const PREFIX: &str = "xs";

/// The namespace (and interface) names of topology `index` owned by `owner`.
pub(crate) fn pair(owner: u32, index: u32) -> (String, String) {
    let base = format!("{PREFIX}{owner}-{}", index % 1000);
    (format!("{base}a"), format!("{base}b"))
}

/// The owner pid encoded in a topology name, if it is one of ours.
fn owner_of(name: &str) -> Option<u32> {
    let rest = name.strip_prefix(PREFIX)?;
    let (pid, tail) = rest.split_once('-')?;
    let (index, side) = tail.split_at(tail.len().checked_sub(1)?);
    if !matches!(side, "a" | "b") || index.is_empty() || !index.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    pid.parse().ok()
}

fn alive(pid: u32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// What a sweep removed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SweepReport {
    /// Namespaces deleted.
    pub namespaces: Vec<String>,
}

/// Removes every topology namespace whose owner process is dead, killing what still runs in it.
pub fn sweep() -> SweepReport {
    sweep_matching(|pid| !alive(pid))
}

/// Removes every topology namespace, whoever owns it.
pub fn sweep_all() -> SweepReport {
    sweep_matching(|_| true)
}

/// Removes both namespaces of the topology `base` (a name without its a/b suffix).
pub fn remove_topology(base: &str) {
    remove(&[&format!("{base}a"), &format!("{base}b")]);
}

fn sweep_matching(doomed: impl Fn(u32) -> bool) -> SweepReport {
    let list = ip(&["netns", "list"]).unwrap_or_default();
    let names: Vec<String> = list
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter(|name| owner_of(name).is_some_and(&doomed))
        .map(str::to_owned)
        .collect();
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    remove(&refs);
    SweepReport { namespaces: names }
}

/// Pids of processes whose network namespace is `netns`.
pub(crate) fn pids_in(netns: &str) -> Vec<u32> {
    ip(&["netns", "pids", netns]).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect()
}

/// Kills everything inside the namespaces, waits for it to go, then deletes them (which also
/// deletes the veth ends inside).
pub(crate) fn remove(namespaces: &[&str]) {
    for ns in namespaces {
        for _ in 0..200 {
            let pids = pids_in(ns);
            if pids.is_empty() {
                break;
            }
            pids.into_iter().for_each(kill_pid);
            std::thread::sleep(Duration::from_millis(5));
        }
        // State that exasock pinned for interfaces of this namespace (keyed by its cookie)
        // goes with it; otherwise the bpffs would keep its maps for as long as the machine runs.
        if let Ok(Ok(cookie)) = crate::in_netns(ns, netns_cookie) {
            let _ = std::fs::remove_dir_all(format!("/run/exasock/{cookie}"));
        }
        let _ = ip(&["netns", "del", ns]);
    }
}

/// The calling thread's network namespace cookie (SO_NETNS_COOKIE), which keys exasock's state
/// in the bpffs (nic::steering::netns_cookie; the testbed does not depend on nic).
fn netns_cookie() -> std::io::Result<u64> {
    use std::os::fd::AsRawFd;
    let sock = std::os::unix::net::UnixDatagram::unbound()?;
    let mut cookie = 0u64;
    let mut len = std::mem::size_of::<u64>() as libc::socklen_t;
    // SAFETY: getsockopt into a u64 we own, on a socket we own.
    let r =
        unsafe { libc::getsockopt(sock.as_raw_fd(), libc::SOL_SOCKET, 71, (&mut cookie as *mut u64).cast(), &mut len) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(cookie)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_fit_interface_names_and_encode_the_owner() {
        let (a, b) = pair(4_194_304, 999);
        assert_eq!((a.as_str(), b.as_str()), ("xs4194304-999a", "xs4194304-999b"));
        assert!(a.len() <= 15);
        assert_eq!(owner_of(&a), Some(4_194_304));
        assert_eq!(owner_of("xs12-0b"), Some(12));
        for other in ["xs12-0c", "xs12-a", "xsab-0a", "ns1", "xs12", "xs-0a", ""] {
            assert_eq!(owner_of(other), None, "{other}");
        }
    }
}
