//! Control messages: those recvmsg fills for a datagram from the stack (receive timestamps,
//! SO_RXQ_OVFL, IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR) in the kernel's order and with its
//! truncation rules, and those sendmsg reads (IP_PKTINFO, IP_TOS, IP_TTL) with its errnos.

use super::*;
use stack::udp::SendControl;

/// Writes control messages into a msghdr's buffer exactly as Linux's put_cmsg does: a message
/// that does not fit is cut to what is left (its cmsg_len says so) and MSG_CTRUNC is set; with
/// less room than a header, or no buffer, nothing is written and MSG_CTRUNC is set.
struct Writer {
    at: *mut u8,
    left: usize,
    used: usize,
    truncated: bool,
}

impl Writer {
    #[allow(clippy::unnecessary_cast)] // msg_controllen's C type differs between libcs
    fn new(m: &msghdr) -> Writer {
        let left = if m.msg_control.is_null() { 0 } else { m.msg_controllen as usize };
        Writer { at: m.msg_control.cast(), left, used: 0, truncated: false }
    }

    unsafe fn put(&mut self, level: c_int, ty: c_int, data: &[u8]) {
        let header = std::mem::size_of::<libc::cmsghdr>();
        if self.at.is_null() || self.left < header {
            self.truncated = true;
            return;
        }
        let mut len = libc::CMSG_LEN(data.len() as u32) as usize;
        if self.left < len {
            self.truncated = true;
            len = self.left;
        }
        // The caller's buffer need not be aligned for a cmsghdr: write it bytewise.
        let c = libc::cmsghdr { cmsg_len: len as _, cmsg_level: level, cmsg_type: ty };
        std::ptr::copy_nonoverlapping((&c as *const libc::cmsghdr).cast::<u8>(), self.at, header);
        std::ptr::copy_nonoverlapping(data.as_ptr(), self.at.add(header), len - header);
        let space = (libc::CMSG_SPACE(data.len() as u32) as usize).min(self.left);
        self.at = self.at.add(space);
        self.left -= space;
        self.used += space;
    }

    unsafe fn put_value<T>(&mut self, level: c_int, ty: c_int, value: &T) {
        let bytes = std::slice::from_raw_parts((value as *const T).cast::<u8>(), std::mem::size_of::<T>());
        self.put(level, ty, bytes);
    }

    fn finish(self, m: &mut msghdr) {
        m.msg_controllen = self.used as _;
        if self.truncated {
            m.msg_flags |= libc::MSG_CTRUNC;
        }
    }
}

/// Fills msg_control with what the socket's options ask for about a datagram from the stack,
/// in the order Linux's udp_recvmsg adds them: the timestamps and SO_RXQ_OVFL
/// (sock_recv_cmsgs), then IP_PKTINFO, IP_TTL, IP_TOS, IP_ORIGDSTADDR (ip_cmsg_recv_offset).
/// Timestamps are software ones, taken when the stack received the datagram, in
/// CLOCK_REALTIME.
pub(super) unsafe fn write_control(m: &mut msghdr, want: runtime::Ancillary, info: &DatagramInfo) {
    let mut w = Writer::new(m);
    if want.any() {
        write_timestamps(&mut w, want, info.timestamp);
        if want.rxq_ovfl && info.drops != 0 {
            w.put_value(libc::SOL_SOCKET, libc::SO_RXQ_OVFL, &info.drops);
        }
        let in_addr = |a: std::net::Ipv4Addr| libc::in_addr { s_addr: u32::from(a).to_be() };
        if want.pktinfo {
            let p = libc::in_pktinfo {
                ipi_ifindex: info.ifindex as c_int,
                ipi_spec_dst: in_addr(info.spec_dst),
                ipi_addr: in_addr(*info.dst.ip()),
            };
            w.put_value(libc::IPPROTO_IP, libc::IP_PKTINFO, &p);
        }
        if want.ttl {
            w.put_value(libc::IPPROTO_IP, libc::IP_TTL, &c_int::from(info.ttl));
        }
        if want.tos {
            w.put(libc::IPPROTO_IP, libc::IP_TOS, &[info.tos]);
        }
        if want.orig_dst {
            let mut sin: libc::sockaddr_in = std::mem::zeroed();
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = info.dst.port().to_be();
            sin.sin_addr = in_addr(*info.dst.ip());
            w.put_value(libc::IPPROTO_IP, libc::IP_ORIGDSTADDR, &sin);
        }
    }
    w.finish(m);
}

unsafe fn write_timestamps(w: &mut Writer, want: runtime::Ancillary, at: stack::Instant) {
    if !want.any_timestamp() {
        return;
    }
    let mut real_now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    libc::clock_gettime(libc::CLOCK_REALTIME, &mut real_now);
    let age = driver::clock::now().saturating_since(at);
    let stamp = std::time::Duration::new(real_now.tv_sec as u64, real_now.tv_nsec as u32).saturating_sub(age);
    let spec = libc::timespec { tv_sec: stamp.as_secs() as _, tv_nsec: stamp.subsec_nanos() as _ };
    let val = libc::timeval { tv_sec: stamp.as_secs() as _, tv_usec: stamp.subsec_micros() as _ };
    let software = want.timestamping & (libc::SOF_TIMESTAMPING_SOFTWARE | libc::SOF_TIMESTAMPING_RX_SOFTWARE) != 0;
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    if want.micro {
        w.put_value(libc::SOL_SOCKET, libc::SCM_TIMESTAMP, &val);
    }
    if want.nano {
        w.put_value(libc::SOL_SOCKET, libc::SCM_TIMESTAMPNS, &spec);
    }
    if software {
        w.put_value(libc::SOL_SOCKET, libc::SCM_TIMESTAMPING, &[spec, zero, zero]);
    }
}

/// What a sendmsg's control messages ask of one datagram, or the errno Linux's ip_cmsg_send
/// gives for them (EFAULT for a length without a buffer; EINVAL for a malformed message, a
/// TTL outside 1..=255 or a TOS outside 0..=255). Messages of other levels are ignored, as
/// there; those the stack does not do send through the kernel socket.
pub(super) struct TxControl {
    /// For the stack.
    pub stack: SendControl,
    /// Something the stack cannot do (IP options, SO_MARK, SO_PRIORITY, a transmit time...):
    /// the datagram goes through the kernel socket, which does it.
    pub kernel_only: bool,
}

#[allow(clippy::unnecessary_cast)] // msg_controllen's and cmsg_len's C types differ between libcs
/// Reads a sendmsg's control messages.
pub(super) unsafe fn read_control(m: &msghdr) -> Result<TxControl, c_int> {
    let mut out = TxControl { stack: SendControl::default(), kernel_only: false };
    let total = m.msg_controllen as usize;
    if total == 0 {
        return Ok(out);
    }
    if m.msg_control.is_null() {
        return Err(libc::EFAULT);
    }
    let header = std::mem::size_of::<libc::cmsghdr>();
    let base = m.msg_control as *const u8;
    let mut at = 0usize;
    // As the kernel's for_each_cmsghdr: stop when no whole header is left.
    while at + header <= total {
        let mut c: libc::cmsghdr = std::mem::zeroed();
        std::ptr::copy_nonoverlapping(base.add(at), (&mut c as *mut libc::cmsghdr).cast::<u8>(), header);
        let len = c.cmsg_len as usize;
        // CMSG_OK: at least a header, and within the buffer.
        if len < header || len > total - at {
            return Err(libc::EINVAL);
        }
        let data = std::slice::from_raw_parts(base.add(at + header), len - header);
        let int = || (data.len() == 4).then(|| i32::from_ne_bytes([data[0], data[1], data[2], data[3]]));
        match (c.cmsg_level, c.cmsg_type) {
            (libc::SOL_SOCKET, libc::SO_MARK | libc::SO_PRIORITY | libc::SCM_TXTIME) => {
                // The kernel validates them; the stack does not apply them.
                out.kernel_only = true;
            }
            (libc::SOL_SOCKET, libc::SO_TIMESTAMPING) => {
                // Transmit timestamps are the kernel's.
                out.kernel_only = true;
            }
            // Anything else (SCM_RIGHTS, which the kernel ignores here; what it refuses): the
            // kernel's answer.
            (libc::SOL_SOCKET, _) => out.kernel_only = true,
            (libc::IPPROTO_IP, libc::IP_PKTINFO) => {
                if data.len() != std::mem::size_of::<libc::in_pktinfo>() {
                    return Err(libc::EINVAL);
                }
                let mut p: libc::in_pktinfo = std::mem::zeroed();
                std::ptr::copy_nonoverlapping(
                    data.as_ptr(),
                    (&mut p as *mut libc::in_pktinfo).cast::<u8>(),
                    data.len(),
                );
                out.stack.ifindex = p.ipi_ifindex as u32;
                out.stack.src = Some(std::net::Ipv4Addr::from(u32::from_be(p.ipi_spec_dst.s_addr)));
            }
            (libc::IPPROTO_IP, libc::IP_TTL) => match int() {
                Some(v @ 1..=255) => out.stack.ttl = Some(v as u8),
                _ => return Err(libc::EINVAL),
            },
            (libc::IPPROTO_IP, libc::IP_TOS) => {
                let v = match data.len() {
                    4 => int().unwrap_or(-1),
                    1 => i32::from(data[0]),
                    _ => return Err(libc::EINVAL),
                };
                if !(0..=255).contains(&v) {
                    return Err(libc::EINVAL);
                }
                out.stack.tos = Some(v as u8);
            }
            // IP options, or a type the kernel refuses: the kernel's.
            (libc::IPPROTO_IP, _) => out.kernel_only = true,
            (libc::IPPROTO_UDP, _) => out.kernel_only = true,
            _ => {}
        }
        // CMSG_NXTHDR: the next header at the aligned end of this one.
        at += (len + std::mem::size_of::<usize>() - 1) & !(std::mem::size_of::<usize>() - 1);
    }
    Ok(out)
}
