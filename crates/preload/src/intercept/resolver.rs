//! The resolver functions (the original's list: gethost*, getaddrinfo(_a), getnameinfo, getserv*,
//! getproto*, getnet*, rcmd*, rexec*, ruserok*, rresvport*): while they run, the sockets they make
//! stay on the kernel (DNS is never accelerated, as in the original).

use crate::init::in_resolver;
use libc::{addrinfo, c_char, c_int, hostent, sockaddr, socklen_t};
use std::sync::atomic::{AtomicPtr, Ordering};

/// The structures these functions fill (servent, protoent, netent...) only pass through.
type V = libc::c_void;

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
    fn gethostent() -> *mut hostent;
    fn gethostent_r(ret: *mut hostent, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut hostent, h_errnop: *mut c_int) -> c_int;
    fn getaddrinfo_a(mode: c_int, list: *mut *mut V, nitems: c_int, sevp: *mut V) -> c_int;
    fn getservbyname(name: *const c_char, proto: *const c_char) -> *mut V;
    fn getservbyname_r(name: *const c_char, proto: *const c_char, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getservbyport(port: c_int, proto: *const c_char) -> *mut V;
    fn getservbyport_r(port: c_int, proto: *const c_char, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getservent() -> *mut V;
    fn getservent_r(ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getprotobyname(name: *const c_char) -> *mut V;
    fn getprotobyname_r(name: *const c_char, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getprotobynumber(proto: c_int) -> *mut V;
    fn getprotobynumber_r(proto: c_int, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getprotoent() -> *mut V;
    fn getprotoent_r(ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V) -> c_int;
    fn getnetbyname(name: *const c_char) -> *mut V;
    fn getnetbyname_r(name: *const c_char, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V, h_errnop: *mut c_int) -> c_int;
    fn getnetbyaddr(net: u32, ty: c_int) -> *mut V;
    fn getnetbyaddr_r(net: u32, ty: c_int, ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V, h_errnop: *mut c_int) -> c_int;
    fn getnetent() -> *mut V;
    fn getnetent_r(ret: *mut V, buf: *mut c_char, buflen: libc::size_t, result: *mut *mut V, h_errnop: *mut c_int) -> c_int;
    fn rcmd(ahost: *mut *mut c_char, port: libc::c_ushort, locuser: *const c_char, remuser: *const c_char, cmd: *const c_char, fd2p: *mut c_int) -> c_int;
    fn rcmd_af(ahost: *mut *mut c_char, port: libc::c_ushort, locuser: *const c_char, remuser: *const c_char, cmd: *const c_char, fd2p: *mut c_int, af: libc::sa_family_t) -> c_int;
    fn rexec(ahost: *mut *mut c_char, port: c_int, user: *const c_char, passwd: *const c_char, cmd: *const c_char, fd2p: *mut c_int) -> c_int;
    fn rexec_af(ahost: *mut *mut c_char, port: c_int, user: *const c_char, passwd: *const c_char, cmd: *const c_char, fd2p: *mut c_int, af: libc::sa_family_t) -> c_int;
    fn ruserok(rhost: *const c_char, superuser: c_int, ruser: *const c_char, luser: *const c_char) -> c_int;
    fn ruserok_af(rhost: *const c_char, superuser: c_int, ruser: *const c_char, luser: *const c_char, af: libc::sa_family_t) -> c_int;
    fn rresvport(port: *mut c_int) -> c_int;
    fn rresvport_af(port: *mut c_int, af: libc::sa_family_t) -> c_int;
}
