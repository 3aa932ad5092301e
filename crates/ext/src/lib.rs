//! The stub of the exasock extension API (`<exasock/extensions.h>`).
//!
//! Programs link against it so they run with or without exasock: on its own it says exasock
//! is not loaded and fails every call that needs exasock with EOPNOTSUPP. The two header
//! helpers (`exasock_tcp_set_length`, `exasock_tcp_calc_checksum`) are pure functions and
//! work here too, with `wire`'s arithmetic (the preload library uses the same code). Under exasock, the preload
//! library exports the same symbols, and the dynamic linker resolves them to those first.

use libc::{c_char, c_int, c_void, size_t, ssize_t};

fn fail(errno: c_int) -> c_int {
    // SAFETY: errno is thread-local; writing it is what C callers expect.
    unsafe { *libc::__errno_location() = errno };
    -1
}

fn unsupported() -> c_int {
    fail(libc::EOPNOTSUPP)
}

/// Not running under exasock.
#[no_mangle]
pub extern "C" fn exasock_loaded() -> c_int {
    0
}

/// No exasock version.
#[no_mangle]
pub extern "C" fn exasock_version_code() -> u32 {
    0
}

/// No exasock version text.
#[no_mangle]
pub extern "C" fn exasock_version_text() -> *const c_char {
    std::ptr::null()
}

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_get_device(_fd: c_int, _dev: *mut c_char, _len: size_t, _port: *mut c_int) -> c_int {
    unsupported()
}

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_build_header(
    _fd: c_int,
    _buf: *mut c_void,
    _len: size_t,
    _offset: size_t,
    _flags: c_int,
) -> ssize_t {
    unsupported() as ssize_t
}

/// Sets the IPv4 total length of a header block for `data_len` bytes of payload (pure: works
/// without exasock). 0, or -1 with EFAULT (null header) or EINVAL (not a header block).
#[no_mangle]
pub extern "C" fn exasock_tcp_set_length(hdr: *mut c_void, hdr_len: size_t, data_len: size_t) -> c_int {
    if hdr.is_null() {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller gives hdr_len bytes at hdr, as the header's contract says.
    let hdr = unsafe { std::slice::from_raw_parts_mut(hdr.cast::<u8>(), hdr_len) };
    match wire::prebuilt::set_tcp_length(hdr, data_len) {
        Ok(()) => 0,
        Err(_) => fail(libc::EINVAL),
    }
}

/// Computes the TCP checksum of a header block and its payload into the header (pure: works
/// without exasock). 0, or -1 with EFAULT (null pointer) or EINVAL (not a header block).
#[no_mangle]
pub extern "C" fn exasock_tcp_calc_checksum(
    hdr: *mut c_void,
    hdr_len: size_t,
    data: *const c_void,
    data_len: size_t,
) -> c_int {
    if hdr.is_null() || (data.is_null() && data_len > 0) {
        return fail(libc::EFAULT);
    }
    // SAFETY: the caller gives hdr_len bytes at hdr and data_len bytes at data.
    let hdr = unsafe { std::slice::from_raw_parts_mut(hdr.cast::<u8>(), hdr_len) };
    let data: &[u8] =
        if data_len == 0 { &[] } else { unsafe { std::slice::from_raw_parts(data.cast::<u8>(), data_len) } };
    match wire::prebuilt::fill_tcp_checksum(hdr, data) {
        Ok(()) => 0,
        Err(_) => fail(libc::EINVAL),
    }
}

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_send_advance(_fd: c_int, _buf: *const c_void, _len: size_t) -> c_int {
    unsupported()
}

/// EOPNOTSUPP without exasock: there is no datapath of exasock's to send the frame through
/// (send it on a packet socket instead).
#[no_mangle]
pub extern "C" fn exasock_tcp_send_frame(_fd: c_int, _frame: *const c_void, _len: size_t) -> ssize_t {
    unsupported() as ssize_t
}

/// Sets errno to EOPNOTSUPP: latencies are measured only by measuring builds.
#[no_mangle]
pub extern "C" fn print_exasock_latencies() {
    unsupported();
}

/// Sets errno to EOPNOTSUPP.
#[no_mangle]
pub extern "C" fn clear_latencies() {
    unsupported();
}
