//! The resolver functions: while they run, the sockets they make stay on the kernel (DNS is
//! never accelerated, as in the original).

use crate::init::in_resolver;
use libc::{addrinfo, c_char, c_int, hostent, sockaddr, socklen_t};
use std::sync::atomic::{AtomicPtr, Ordering};

fn next(slot: &AtomicPtr<libc::c_void>, name: &'static [u8]) -> *mut libc::c_void {
    let p = slot.load(Ordering::Relaxed);
    if !p.is_null() {
        return p;
    }
    // SAFETY: NUL-terminated name.
    let p = unsafe { libc::dlsym(libc::RTLD_NEXT, name.as_ptr().cast()) };
    slot.store(p, Ordering::Relaxed);
    p
}

macro_rules! guarded {
    ($( fn $name:ident($($arg:ident: $ty:ty),*) -> $ret:ty; )*) => {$(
        #[no_mangle]
        pub unsafe extern "C" fn $name($($arg: $ty),*) -> $ret {
            static SLOT: AtomicPtr<libc::c_void> = AtomicPtr::new(std::ptr::null_mut());
            let p = next(&SLOT, concat!(stringify!($name), "\0").as_bytes());
            if p.is_null() {
                libc::abort();
            }
            let f: unsafe extern "C" fn($($ty),*) -> $ret = std::mem::transmute(p);
            in_resolver(|| f($($arg),*))
        }
    )*};
}

guarded! {
    fn getaddrinfo(node: *const c_char, service: *const c_char, hints: *const addrinfo, res: *mut *mut addrinfo) -> c_int;
    fn getnameinfo(sa: *const sockaddr, salen: socklen_t, host: *mut c_char, hostlen: socklen_t, serv: *mut c_char, servlen: socklen_t, flags: c_int) -> c_int;
    fn gethostbyname(name: *const c_char) -> *mut hostent;
    fn gethostbyname2(name: *const c_char, af: c_int) -> *mut hostent;
    fn gethostbyaddr(addr: *const libc::c_void, len: socklen_t, ty: c_int) -> *mut hostent;
    fn gethostbyname_r(name: *const c_char, ret: *mut hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int;
    fn gethostbyname2_r(name: *const c_char, af: c_int, ret: *mut hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int;
    fn gethostbyaddr_r(addr: *const libc::c_void, len: socklen_t, ty: c_int, ret: *mut hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int;
}
