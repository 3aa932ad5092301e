//! The one place where the stack's errors become the errno Linux gives.

use stack::udp::UdpError;

/// The errno for a UDP error.
pub fn udp(e: UdpError) -> i32 {
    match e {
        UdpError::BadHandle => libc::EBADF,
        UdpError::WouldBlock => libc::EAGAIN,
        UdpError::MessageTooLong => libc::EMSGSIZE,
        UdpError::NoDestination => libc::EDESTADDRREQ,
        UdpError::NotBound => libc::EINVAL,
        UdpError::NetworkUnreachable => libc::ENETUNREACH,
        UdpError::BroadcastDenied => libc::EACCES,
        UdpError::AddressInUse => libc::EADDRINUSE,
        UdpError::Membership => libc::EADDRINUSE,
        UdpError::InvalidAddress => libc::EINVAL,
    }
}

/// Sets errno and returns -1, the C convention.
pub fn fail<T: From<i8>>(errno: i32) -> T {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = errno };
    T::from(-1)
}

/// The current errno.
pub fn get() -> i32 {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() }
}

/// Sets errno.
pub fn set(errno: i32) {
    // SAFETY: errno is thread-local.
    unsafe { *libc::__errno_location() = errno };
}
