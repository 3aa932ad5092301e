//! The two raw calls the datapaths share: setsockopt with a typed value, and bpf(2) on one map
//! element (for maps aya's typed wrappers cannot drive: a SOCKHASH with 8-byte values, an
//! XSKMAP's companions).

use std::io;
use std::os::fd::RawFd;

/// bpf(2) commands used here.
pub(crate) const BPF_MAP_LOOKUP_ELEM: libc::c_int = 1;
pub(crate) const BPF_MAP_UPDATE_ELEM: libc::c_int = 2;

/// setsockopt(2) with `value` as the option's bytes.
pub(crate) fn setsockopt<T>(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: value points to a live T of the given size.
    let r = unsafe {
        libc::setsockopt(fd, level, name, (value as *const T).cast(), std::mem::size_of::<T>() as libc::socklen_t)
    };
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// bpf(2) `cmd` (BPF_MAP_LOOKUP_ELEM, BPF_MAP_UPDATE_ELEM...) on map `map` with the element at
/// `key` and `value`, which must be of the map's key and value sizes.
///
/// # Safety
/// `key` and `value` must point to live memory of the map's key and value sizes (`value`
/// writable for a lookup) for the duration of the call.
pub(crate) unsafe fn bpf_map_elem(
    cmd: libc::c_int,
    map: RawFd,
    key: *const u8,
    value: *const u8,
    flags: u64,
) -> io::Result<()> {
    #[repr(C)]
    struct Attr {
        map_fd: u32,
        pad: u32,
        key: u64,
        value: u64,
        flags: u64,
    }
    let attr = Attr { map_fd: map as u32, pad: 0, key: key as u64, value: value as u64, flags };
    // SAFETY: the attribute points at the caller's key and value, live for the call.
    let r = unsafe { libc::syscall(libc::SYS_bpf, cmd, &attr as *const Attr, std::mem::size_of::<Attr>() as u32) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Keeps a mapping out of fork children (MADV_DONTFORK). A ring mapped from a socket holds the
/// socket: a child's copy (a fork child of the program, exasock's watcher) would keep an AF_XDP
/// socket bound, and the kernel redirecting frames into it, after its owner died.
pub(crate) fn dont_fork(addr: *mut libc::c_void, len: usize) {
    // SAFETY: advice on a mapping the caller just made; failure only keeps the default.
    unsafe { libc::madvise(addr, len, libc::MADV_DONTFORK) };
}
