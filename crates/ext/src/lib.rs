//! The stub of the exasock extension API (`<exasock/extensions.h>`).
//!
//! Programs link against it so they run with or without exasock: on its own it says exasock
//! is not loaded and fails every other call with EOPNOTSUPP. Under exasock, the preload
//! library exports the same symbols, and the dynamic linker resolves them to those first.

use libc::{c_char, c_int, c_void, size_t, ssize_t};

fn unsupported() -> c_int {
    // SAFETY: errno is thread-local; writing it is what C callers expect.
    unsafe { *libc::__errno_location() = libc::EOPNOTSUPP };
    -1
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

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_set_length(_hdr: *mut c_void, _hdr_len: size_t, _data_len: size_t) -> c_int {
    unsupported()
}

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_calc_checksum(
    _hdr: *mut c_void,
    _hdr_len: size_t,
    _data: *const c_void,
    _data_len: size_t,
) -> c_int {
    unsupported()
}

/// EOPNOTSUPP without exasock.
#[no_mangle]
pub extern "C" fn exasock_tcp_send_advance(_fd: c_int, _buf: *const c_void, _len: size_t) -> c_int {
    unsupported()
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
