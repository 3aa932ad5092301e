//! The extension API of <exasock/extensions.h>: these definitions take precedence over the
//! stub libexasock_ext.so a program links.

use crate::errno;
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

// The TCP extensions come with accelerated TCP: until then they fail as the stub does.

#[no_mangle]
pub extern "C" fn exasock_tcp_get_device(_fd: c_int, _dev: *mut c_char, _len: size_t, _port: *mut c_int) -> c_int {
    errno::fail(libc::EOPNOTSUPP)
}

#[no_mangle]
pub extern "C" fn exasock_tcp_build_header(
    _fd: c_int,
    _buf: *mut c_void,
    _len: size_t,
    _off: size_t,
    _flags: c_int,
) -> ssize_t {
    errno::fail(libc::EOPNOTSUPP)
}

#[no_mangle]
pub extern "C" fn exasock_tcp_send_advance(_fd: c_int, _buf: *const c_void, _len: size_t) -> c_int {
    errno::fail(libc::EOPNOTSUPP)
}
