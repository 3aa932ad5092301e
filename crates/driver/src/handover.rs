//! Hand-over of a TCP connection to a kernel socket with TCP_REPAIR, in the order CRIU's
//! libsoccr uses (which the kernel imposes): repair mode while the socket is CLOSED, both
//! queues' sequence numbers, bind and connect (no SYN: the socket is ESTABLISHED), options and
//! the timestamp clock, the unread and the unacknowledged bytes, the windows; then the FINs
//! (a received one is replayed through a raw socket, as libsoccr does, so the new owner reads
//! end of stream), repair mode off, and last the bytes never sent, as ordinary writes.
//!
//! The engine describes the connection (`stack::tcp::repair::TcpRepair`); this module knows
//! only the kernel's interface. It needs CAP_NET_ADMIN.

use crate::inet::{self, Family, Parsed, RawAddr};
use crate::transmit::KernelPath;
use stack::tcp::repair::TcpRepair;
use stack::tcp::State;
use std::io;
use std::net::SocketAddrV4;
use std::os::fd::RawFd;
use wire::{IpProtocol, Ipv4Packet, TcpFlags, TcpOptions, TcpRepr, TcpSegment};

/// TCP_REPAIR_QUEUE's values (linux/tcp.h).
const TCP_NO_QUEUE: i32 = 0;
const TCP_RECV_QUEUE: i32 = 1;
const TCP_SEND_QUEUE: i32 = 2;
/// TCP_REPAIR's values.
const TCP_REPAIR_ON: i32 = 1;
const TCP_REPAIR_OFF: i32 = 0;
/// Off without the window probe TCP_REPAIR_OFF sends: the connection goes on as quietly as it
/// would have in the engine.
const TCP_REPAIR_OFF_NO_WP: i32 = -1;
/// TCP_REPAIR_OPTIONS' option codes (TCPOPT_*).
const TCPOPT_MAXSEG: u32 = 2;
const TCPOPT_WINDOW: u32 = 3;
const TCPOPT_TIMESTAMP: u32 = 8;
const TCPOPT_SACK_PERM: u32 = 4;

/// struct tcp_repair_opt.
#[repr(C)]
#[derive(Clone, Copy)]
struct RepairOpt {
    code: u32,
    value: u32,
}

/// struct tcp_repair_window.
#[repr(C)]
struct RepairWindow {
    snd_wl1: u32,
    snd_wnd: u32,
    max_window: u32,
    rcv_wnd: u32,
    rcv_wup: u32,
}

/// What went wrong, naming the step (the socket is unusable after a failure past `connect`).
fn step_error(step: &str) -> io::Error {
    let e = io::Error::last_os_error();
    io::Error::new(e.kind(), format!("TCP_REPAIR hand-over: {step}: {e}"))
}

fn setsockopt<T>(fd: RawFd, level: i32, name: i32, value: &T, step: &str) -> io::Result<()> {
    // SAFETY: `value` is a live T of the size passed.
    let r = unsafe { libc::setsockopt(fd, level, name, (value as *const T).cast(), std::mem::size_of::<T>() as u32) };
    if r == 0 {
        Ok(())
    } else {
        Err(step_error(step))
    }
}

fn setsockopt_slice<T>(fd: RawFd, level: i32, name: i32, values: &[T], step: &str) -> io::Result<()> {
    // SAFETY: the slice is live for the length passed.
    let r = unsafe { libc::setsockopt(fd, level, name, values.as_ptr().cast(), std::mem::size_of_val(values) as u32) };
    if r == 0 {
        Ok(())
    } else {
        Err(step_error(step))
    }
}

fn local_of(fd: RawFd, family: Family) -> io::Result<SocketAddrV4> {
    match inet::local_of(fd, family) {
        Parsed::V4(a) => Ok(a),
        _ => Err(step_error("getsockname")),
    }
}

/// Writes `data` into the queue repair mode selected, halving the chunk when the kernel
/// refuses a large one (it builds one linear buffer per call: libsoccr's __send_queue).
fn fill_queue(fd: RawFd, mut data: &[u8], step: &str) -> io::Result<()> {
    let mut chunk = data.len().max(1);
    while !data.is_empty() {
        let n = chunk.min(data.len());
        // SAFETY: sending from a live slice of `n` bytes.
        let r = unsafe { libc::send(fd, data.as_ptr().cast(), n, libc::MSG_NOSIGNAL) };
        if r > 0 {
            data = &data[r as usize..];
        } else if chunk > 1024 {
            chunk /= 2;
        } else {
            return Err(step_error(step));
        }
    }
    Ok(())
}

/// Writes the bytes that never left, once the socket is out of repair mode: ordinary sends,
/// waiting for room if the socket is non-blocking.
fn write_unsent(fd: RawFd, mut data: &[u8]) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: sending from a live slice.
        let r = unsafe { libc::send(fd, data.as_ptr().cast(), data.len(), libc::MSG_NOSIGNAL) };
        if r > 0 {
            data = &data[r as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => {
                let mut p = libc::pollfd { fd, events: libc::POLLOUT, revents: 0 };
                // SAFETY: one pollfd we own.
                unsafe { libc::poll(&mut p, 1, 1000) };
            }
            _ => return Err(io::Error::new(e.kind(), format!("TCP_REPAIR hand-over: unsent bytes: {e}"))),
        }
    }
    Ok(())
}

/// Sends one segment from the peer's address to ours through the driver's raw socket, so that
/// the kernel socket takes it as the peer's (libsoccr's send_fin): how a FIN already received,
/// or an ACK of our FIN, reaches the repaired socket.
fn inject_from_peer(kernel: &KernelPath, r: &TcpRepair, seq: u32, ack: u32, flags: TcpFlags) -> io::Result<()> {
    let window = (r.window.snd_wnd >> r.wscale.map_or(0, |(snd, _)| snd)).min(65_535) as u16;
    let repr = TcpRepr {
        src_port: r.remote.port(),
        dst_port: r.local.port(),
        seq,
        ack: Some(ack),
        flags,
        window,
        urgent: 0,
        options: TcpOptions::NONE,
        payload_len: 0,
    };
    let mut packet = vec![0u8; 20 + repr.buffer_len()];
    {
        let mut ip = Ipv4Packet::new_unchecked(&mut packet[..20]);
        ip.set_version_and_header_len(4, 20);
        ip.set_total_len((20 + repr.buffer_len()) as u16);
        ip.set_flags_and_frag_offset(true, false, 0);
        ip.set_ttl(64);
        ip.set_protocol(IpProtocol::TCP);
        ip.set_src_addr(*r.remote.ip());
        ip.set_dst_addr(*r.local.ip());
        ip.fill_checksum();
    }
    repr.emit(&mut TcpSegment::new_unchecked(&mut packet[20..]), *r.remote.ip(), *r.local.ip())
        .map_err(|e| io::Error::other(format!("TCP_REPAIR hand-over: building a segment: {e:?}")))?;
    kernel
        .send(&packet)
        .map_err(|e| io::Error::new(e.kind(), format!("TCP_REPAIR hand-over: replaying a segment: {e}")))
}

/// Makes the kernel TCP socket `fd` (CLOSED: new, or bound to the connection's port) carry on
/// connection `r`. On success the kernel socket is the connection; the engine must forget it
/// and release its flow. On failure before `connect` the socket is left unconnected.
pub fn restore(fd: RawFd, r: &TcpRepair, kernel: &KernelPath) -> io::Result<()> {
    let sol_tcp = libc::IPPROTO_TCP;
    setsockopt(fd, sol_tcp, libc::TCP_REPAIR, &TCP_REPAIR_ON, "TCP_REPAIR on")?;
    let result = restore_in_repair(fd, r, kernel);
    if result.is_err() && !connected(fd) {
        // Not connected yet: the socket is as it was. Once connected it stays in repair
        // mode, where it sends nothing of a connection it has only half of.
        let _ = setsockopt(fd, sol_tcp, libc::TCP_REPAIR, &TCP_REPAIR_OFF, "TCP_REPAIR off");
    }
    result
}

fn connected(fd: RawFd) -> bool {
    // SAFETY: getpeername into a buffer we own, large enough for either family.
    unsafe {
        let mut raw: RawAddr = std::mem::zeroed();
        let mut len = RawAddr::len(Family::V6);
        libc::syscall(libc::SYS_getpeername, fd, &mut raw as *mut RawAddr, &mut len) == 0
    }
}

fn restore_in_repair(fd: RawFd, r: &TcpRepair, kernel: &KernelPath) -> io::Result<()> {
    let sol_tcp = libc::IPPROTO_TCP;
    let queue = |q: i32, step: &str| setsockopt(fd, sol_tcp, libc::TCP_REPAIR_QUEUE, &q, step);
    queue(TCP_RECV_QUEUE, "selecting the receive queue")?;
    setsockopt(fd, sol_tcp, libc::TCP_QUEUE_SEQ, &r.rcv_queue_seq, "receive queue sequence")?;
    queue(TCP_SEND_QUEUE, "selecting the send queue")?;
    setsockopt(fd, sol_tcp, libc::TCP_QUEUE_SEQ, &r.snd_una, "send queue sequence")?;

    // An accepted connection's socket is new: it binds the listener's address (repair mode
    // allows sharing the port). A connecting socket was bound when it connected.
    // A dual-stack (AF_INET6) socket names the connection's addresses IPv4-mapped.
    let family = Family::of(fd).unwrap_or(Family::V4);
    let bound = local_of(fd, family)?;
    if bound.port() == 0 {
        let sa = RawAddr::new(r.local, family);
        // SAFETY: binding to an address we own, with its family's length.
        if unsafe { libc::bind(fd, sa.as_ptr(), RawAddr::len(family)) } != 0 {
            return Err(step_error("bind"));
        }
    } else if bound.port() != r.local.port() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP_REPAIR hand-over: the socket is bound to {bound}, the connection is {}", r.local),
        ));
    }
    // The options the connection ran with (an orphan's new socket has none of them).
    let o = &r.options;
    let secs = |d: std::time::Duration| d.as_secs().clamp(1, i32::MAX as u64) as i32;
    for (level, name, value, step) in [
        (libc::IPPROTO_IP, libc::IP_TOS, i32::from(o.tos), "IP_TOS"),
        (libc::IPPROTO_IP, libc::IP_TTL, i32::from(o.ttl), "IP_TTL"),
        (sol_tcp, libc::TCP_NODELAY, i32::from(o.nodelay), "TCP_NODELAY"),
        (libc::SOL_SOCKET, libc::SO_KEEPALIVE, i32::from(o.keepalive), "SO_KEEPALIVE"),
        (sol_tcp, libc::TCP_KEEPIDLE, secs(o.keep_idle), "TCP_KEEPIDLE"),
        (sol_tcp, libc::TCP_KEEPINTVL, secs(o.keep_interval), "TCP_KEEPINTVL"),
        (sol_tcp, libc::TCP_KEEPCNT, o.keep_count.clamp(1, 127) as i32, "TCP_KEEPCNT"),
    ] {
        setsockopt(fd, level, name, &value, step)?;
    }
    // The kernel sizes its segments at connect, from its MSS clamp (536 by default) and the
    // path MTU, and TCP_REPAIR_OPTIONS' MSS does not size them again: the peer's MSS goes in
    // first, as TCP_MAXSEG.
    let mss = i32::from(r.mss_clamp);
    setsockopt(fd, sol_tcp, libc::TCP_MAXSEG, &mss, "TCP_MAXSEG")?;
    let sa = RawAddr::new(r.remote, family);
    // SAFETY: connecting to an address we own, with its family's length (in repair mode: no
    // SYN).
    if unsafe { libc::connect(fd, sa.as_ptr(), RawAddr::len(family)) } != 0 {
        return Err(step_error("connect"));
    }
    let now_local = local_of(fd, family)?;
    if now_local != r.local {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("TCP_REPAIR hand-over: the kernel chose {now_local}, the connection is {}", r.local),
        ));
    }

    let mut opts = Vec::with_capacity(4);
    if r.sack {
        opts.push(RepairOpt { code: TCPOPT_SACK_PERM, value: 0 });
    }
    if let Some((snd, rcv)) = r.wscale {
        opts.push(RepairOpt { code: TCPOPT_WINDOW, value: u32::from(snd) | u32::from(rcv) << 16 });
    }
    if r.timestamp.is_some() {
        opts.push(RepairOpt { code: TCPOPT_TIMESTAMP, value: 0 });
    }
    opts.push(RepairOpt { code: TCPOPT_MAXSEG, value: u32::from(r.mss_clamp) });
    setsockopt_slice(fd, sol_tcp, libc::TCP_REPAIR_OPTIONS, &opts, "TCP_REPAIR_OPTIONS")?;
    if let Some(tsval) = r.timestamp {
        setsockopt(fd, sol_tcp, libc::TCP_TIMESTAMP, &tsval, "TCP_TIMESTAMP")?;
    }

    // Room for what is restored (the kernel charges the queues to the socket's buffers).
    let need = |n: usize| (2 * n + 65_536).min(i32::MAX as usize) as i32;
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, &need(r.recv_queue.len()), "SO_RCVBUFFORCE");
    let _ = setsockopt(fd, libc::SOL_SOCKET, libc::SO_SNDBUFFORCE, &need(r.send_queue.len()), "SO_SNDBUFFORCE");

    if !r.recv_queue.is_empty() {
        queue(TCP_RECV_QUEUE, "selecting the receive queue")?;
        fill_queue(fd, &r.recv_queue, "restoring unread bytes")?;
    }
    if r.sent > 0 {
        queue(TCP_SEND_QUEUE, "selecting the send queue")?;
        fill_queue(fd, &r.send_queue[..r.sent], "restoring unacknowledged bytes")?;
    }
    let w = RepairWindow {
        snd_wl1: r.window.snd_wl1,
        snd_wnd: r.window.snd_wnd,
        max_window: r.window.max_window,
        rcv_wnd: r.window.rcv_wnd,
        rcv_wup: r.window.rcv_wup,
    };
    setsockopt(fd, sol_tcp, libc::TCP_REPAIR_WINDOW, &w, "TCP_REPAIR_WINDOW")?;

    // The FINs, in the order they happened. Ours: shutdown in repair mode with the send
    // queue selected, so that it counts as sent (the peer's ACK of it is then acceptable, and
    // the kernel sends it again only if it times out); when it was acknowledged, an ACK
    // replayed below says so at once.
    let ours_first = matches!(r.state, State::FinWait1 | State::FinWait2 | State::Closing);
    let our_fin = || -> io::Result<()> {
        queue(TCP_SEND_QUEUE, "selecting the queue for our FIN")?;
        // SAFETY: shutdown of a descriptor we were given.
        if unsafe { libc::shutdown(fd, libc::SHUT_WR) } != 0 {
            return Err(step_error("shutdown for our FIN"));
        }
        queue(TCP_NO_QUEUE, "leaving the queues")
    };
    let data_end = r.snd_una.wrapping_add(r.send_queue.len() as u32);
    if r.fin_sent && ours_first {
        our_fin()?;
    }
    if r.fin_received {
        inject_from_peer(kernel, r, r.rcv_nxt(), r.snd_una, TcpFlags::FIN)?;
    }
    if r.fin_sent && !ours_first {
        our_fin()?;
    }
    if r.fin_acked {
        let seq = r.rcv_nxt().wrapping_add(u32::from(r.fin_received));
        inject_from_peer(kernel, r, seq, data_end.wrapping_add(1), TcpFlags::empty())?;
    }
    setsockopt(fd, sol_tcp, libc::TCP_REPAIR, &TCP_REPAIR_OFF_NO_WP, "TCP_REPAIR off")?;

    write_unsent(fd, &r.send_queue[r.sent..])?;
    if r.fin_queued && !r.fin_sent {
        // SAFETY: shutdown of a descriptor we were given.
        if unsafe { libc::shutdown(fd, libc::SHUT_WR) } != 0 {
            return Err(step_error("shutdown after the unsent bytes"));
        }
    }
    Ok(())
}
