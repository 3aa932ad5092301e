//! The reading side, shared by exasock-stat and exasock-ctl status: every process's
//! publication file in the run directory, mapped read-only and read under its seqlocks,
//! keeping the live processes of one network namespace. A file whose process is gone (no
//! /proc/PID, or another start time: the pid was reused) is a dead process's: it is ignored
//! and removed.

use crate::layout::FILE_BYTES;
use crate::{naming, ProcessInfo, Region, SocketRecord};
use std::os::fd::AsRawFd;
use std::path::Path;

/// One socket as listed: its record and the process that published it.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The publishing process.
    pub process: ProcessInfo,
    /// The socket.
    pub socket: SocketRecord,
}

impl Entry {
    /// The descriptor shown for it: the lowest naming it (-1 if none is known).
    pub fn fd(&self) -> i32 {
        self.socket.fds().first().copied().unwrap_or(-1)
    }
}

/// Every live process publishing in the namespace `netns` (0: any), with its sockets.
pub fn processes(dir: &Path, netns: u64) -> Vec<(ProcessInfo, Vec<SocketRecord>)> {
    let mut all: Vec<Entry> = Vec::new();
    let mut procs: Vec<ProcessInfo> = Vec::new();
    read_into(dir, netns, &mut all, &mut procs);
    procs.into_iter().map(|p| (p, all.iter().filter(|e| e.process.pid == p.pid).map(|e| e.socket).collect())).collect()
}

/// Every socket published by live processes in the namespace `netns` (0: any), in no order.
pub fn read_all(dir: &Path, netns: u64) -> Vec<Entry> {
    let mut out = Vec::new();
    read_into(dir, netns, &mut out, &mut Vec::new());
    out
}

fn read_into(dir: &Path, netns: u64, out: &mut Vec<Entry>, procs: &mut Vec<ProcessInfo>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let name = e.file_name();
        let Some((pid, start)) = name.to_str().and_then(naming::parse_name) else { continue };
        if !alive(pid, start) {
            // Swept: may fail for another user's file in the sticky directory; then skipped.
            let _ = std::fs::remove_file(e.path());
            continue;
        }
        read_file(&e.path(), pid, start, netns, out, procs);
    }
}

/// Whether process `pid` lives and started at `start` (clock ticks since boot).
pub fn alive(pid: u32, start: u64) -> bool {
    std::fs::read(format!("/proc/{pid}/stat")).ok().and_then(|s| naming::start_time_of_stat(&s)) == Some(start)
}

fn read_file(path: &Path, pid: u32, start: u64, netns: u64, out: &mut Vec<Entry>, procs: &mut Vec<ProcessInfo>) {
    let Ok(file) = std::fs::File::open(path) else { return };
    let Ok(len) = file.metadata().map(|m| m.len() as usize) else { return };
    let len = len.min(FILE_BYTES);
    if len < crate::layout::RECORD_BYTES {
        return;
    }
    // SAFETY: a read-only shared mapping of a file we opened; unmapped below.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, libc::PROT_READ, libc::MAP_SHARED, file.as_raw_fd(), 0) };
    if p == libc::MAP_FAILED {
        return;
    }
    // SAFETY: the mapping is page-aligned, `len` bytes long and lives until the munmap below;
    // the writer only stores atomically. Loads of a read-only mapping are plain loads.
    if let Some(region) = unsafe { Region::from_raw(p.cast(), len) } {
        if let Some(process) = region.process().filter(|p| region.valid() && p.pid == pid && p.start_time == start) {
            if netns == 0 || process.netns_cookie == 0 || process.netns_cookie == netns {
                procs.push(process);
                out.extend(region.records().map(|(_, socket)| Entry { process, socket }));
            }
        }
    }
    // SAFETY: unmapping what was mapped above; nothing refers to it any more.
    unsafe { libc::munmap(p, len) };
}

/// This process's network namespace (SO_NETNS_COOKIE; 0 where the kernel has no cookie).
pub fn own_netns() -> u64 {
    const SO_NETNS_COOKIE: i32 = 71;
    // SAFETY: a socket of our own, closed when dropped.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return 0;
    }
    // SAFETY: fd was just made and is ours alone.
    let sock = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let mut cookie = 0u64;
    let mut len = 8 as libc::socklen_t;
    // SAFETY: an 8-byte option into our own u64.
    let r = unsafe {
        libc::getsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            SO_NETNS_COOKIE,
            (&mut cookie as *mut u64).cast(),
            &mut len,
        )
    };
    if r == 0 {
        cookie
    } else {
        0
    }
}
