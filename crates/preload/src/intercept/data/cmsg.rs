//! Control messages recvmsg fills: receive timestamps (SO_TIMESTAMP, SO_TIMESTAMPNS,
//! SO_TIMESTAMPING) as the kernel encodes them.

use super::*;

/// Fills msg_control with the receive timestamps the socket asked for (software, taken when
/// the stack received the datagram, in CLOCK_REALTIME); MSG_CTRUNC when they do not fit.
#[allow(clippy::unnecessary_cast)] // msg_controllen's C type differs between libcs
pub(super) unsafe fn write_timestamps(m: &mut msghdr, ts: runtime::Timestamps, at: stack::Instant) {
    let capacity = m.msg_controllen;
    m.msg_controllen = 0;
    if !ts.any() {
        return;
    }
    let mut real_now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    libc::clock_gettime(libc::CLOCK_REALTIME, &mut real_now);
    let age = driver::clock::now().saturating_since(at);
    let stamp = std::time::Duration::new(real_now.tv_sec as u64, real_now.tv_nsec as u32).saturating_sub(age);
    let spec = libc::timespec { tv_sec: stamp.as_secs() as _, tv_nsec: stamp.subsec_nanos() as _ };
    let val = libc::timeval { tv_sec: stamp.as_secs() as _, tv_usec: stamp.subsec_micros() as _ };
    let software = ts.timestamping & (libc::SOF_TIMESTAMPING_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE) != 0;
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    let triple = [if software { spec } else { zero }, zero, zero];
    let mut used = 0usize;
    let mut push = |m: &mut msghdr, ty: libc::c_int, data: *const u8, len: usize| {
        let space = libc::CMSG_SPACE(len as u32) as usize;
        if m.msg_control.is_null() || used + space > capacity as usize {
            m.msg_flags |= libc::MSG_CTRUNC;
            return;
        }
        let c = (m.msg_control as *mut u8).add(used) as *mut libc::cmsghdr;
        (*c).cmsg_level = libc::SOL_SOCKET;
        (*c).cmsg_type = ty;
        (*c).cmsg_len = libc::CMSG_LEN(len as u32) as _;
        std::ptr::copy_nonoverlapping(data, libc::CMSG_DATA(c), len);
        used += space;
    };
    if ts.micro {
        push(m, libc::SCM_TIMESTAMP, (&val as *const libc::timeval).cast(), std::mem::size_of::<libc::timeval>());
    }
    if ts.nano {
        push(m, libc::SCM_TIMESTAMPNS, (&spec as *const libc::timespec).cast(), std::mem::size_of::<libc::timespec>());
    }
    if software {
        push(m, libc::SCM_TIMESTAMPING, triple.as_ptr().cast(), std::mem::size_of_val(&triple));
    }
    m.msg_controllen = used as _;
}
