//! The extension API of <exasock/extensions.h>: these definitions take precedence over the
//! stub libexasock_ext.so a program links. The TCP calls work on accelerated TCP sockets
//! (EOPNOTSUPP on any other descriptor, as the original); their protocol work is the stack's
//! (`stack::tcp::prebuilt`), reached through `runtime::extensions`. The two header helpers
//! are the stub's pure functions (`wire::prebuilt`), defined here too so that a program
//! linked against another stub (the original's, which fails them) still gets them.
//! print_exasock_latencies and clear_latencies are not defined here: the stub's run (errno
//! EOPNOTSUPP), as in the original's builds without MEASURE_LATENCY.

use crate::fdtable::{self, FdState};
use crate::{errno, runtime};
use libc::{c_char, c_int, c_void, size_t, ssize_t};

const MAJOR: u32 = 0;
const MINOR: u32 = 1;
const REVISION: u32 = 0;

#[no_mangle]
pub extern "C" fn exasock_loaded() -> c_int {
    1
}

#[no_mangle]
pub extern "C" fn exasock_version_code() -> u32 {
    (MAJOR << 16) + (MINOR << 8) + REVISION
}

#[no_mangle]
pub extern "C" fn exasock_version_text() -> *const c_char {
    c"0.1.0".as_ptr()
}

/// The slot of an accelerated TCP socket (connection or listener).
fn accelerated_tcp(fd: c_int) -> Option<u32> {
    match fdtable::get(fd) {
        FdState::Accel(slot) if fdtable::is_tcp(fd) => Some(slot),
        _ => None,
    }
}

/// `len` bytes at `ptr` as a slice (empty for a zero length, which may come with NULL).
///
/// # Safety
/// `ptr` must be valid for `len` bytes when `len > 0` and not NULL.
unsafe fn bytes<'a>(ptr: *const c_void, len: size_t) -> &'a [u8] {
    if len == 0 {
        &[]
    } else {
        std::slice::from_raw_parts(ptr.cast::<u8>(), len)
    }
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_get_device(fd: c_int, dev: *mut c_char, len: size_t, port: *mut c_int) -> c_int {
    if accelerated_tcp(fd).is_none() {
        return errno::fail(libc::EOPNOTSUPP);
    }
    if dev.is_null() && len > 0 {
        return errno::fail(libc::EFAULT);
    }
    let out: &mut [u8] = if len == 0 { &mut [] } else { std::slice::from_raw_parts_mut(dev.cast::<u8>(), len) };
    if !runtime::interface_name(out) {
        return errno::fail(libc::EOPNOTSUPP);
    }
    if !port.is_null() {
        *port = 0;
    }
    0
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_build_header(
    fd: c_int,
    buf: *mut c_void,
    len: size_t,
    offset: size_t,
    flags: c_int,
) -> ssize_t {
    let Some(slot) = accelerated_tcp(fd) else { return errno::fail(libc::EOPNOTSUPP) };
    if offset != 0 || flags != 0 {
        return errno::fail(libc::EINVAL);
    }
    if buf.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let out = std::slice::from_raw_parts_mut(buf.cast::<u8>(), len);
    match runtime::tcp_build_header(slot, out) {
        Ok(n) => n as ssize_t,
        Err(e) => errno::fail(e.errno()),
    }
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_set_length(hdr: *mut c_void, hdr_len: size_t, data_len: size_t) -> c_int {
    if hdr.is_null() {
        return errno::fail(libc::EFAULT);
    }
    let hdr = std::slice::from_raw_parts_mut(hdr.cast::<u8>(), hdr_len);
    match wire::prebuilt::set_tcp_length(hdr, data_len) {
        Ok(()) => 0,
        Err(_) => errno::fail(libc::EINVAL),
    }
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_calc_checksum(
    hdr: *mut c_void,
    hdr_len: size_t,
    data: *const c_void,
    data_len: size_t,
) -> c_int {
    if hdr.is_null() || (data.is_null() && data_len > 0) {
        return errno::fail(libc::EFAULT);
    }
    let hdr = std::slice::from_raw_parts_mut(hdr.cast::<u8>(), hdr_len);
    match wire::prebuilt::fill_tcp_checksum(hdr, bytes(data, data_len)) {
        Ok(()) => 0,
        Err(_) => errno::fail(libc::EINVAL),
    }
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_send_frame(fd: c_int, frame: *const c_void, len: size_t) -> ssize_t {
    let Some(slot) = accelerated_tcp(fd) else { return errno::fail(libc::EOPNOTSUPP) };
    if frame.is_null() {
        return errno::fail(libc::EFAULT);
    }
    match runtime::tcp_send_frame(slot, bytes(frame, len)) {
        Ok(n) => n as ssize_t,
        Err(e) => errno::fail(e.errno()),
    }
}

#[no_mangle]
pub unsafe extern "C" fn exasock_tcp_send_advance(fd: c_int, buf: *const c_void, len: size_t) -> c_int {
    let Some(slot) = accelerated_tcp(fd) else { return errno::fail(libc::EOPNOTSUPP) };
    if buf.is_null() && len > 0 {
        return errno::fail(libc::EFAULT);
    }
    match runtime::tcp_send_advance(slot, bytes(buf, len)) {
        Ok(()) => 0,
        Err(e) => errno::fail(e.errno()),
    }
}
