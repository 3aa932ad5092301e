//! The original's output, byte for byte (../shared/exasock-behaviour.md §7,
//! util/exasock-stat.c): the list with its header, the -e columns, the -i blocks, the -s block
//! and its "not found" line. Ours on top: with -i, every socket's block ends with its drop
//! counters (a UDP socket's block has only that line; the original printed none for UDP).

use crate::args::{Options, SocketId};
use stat_format::reader::Entry;
use stat_format::{Kind, SocketRecord};
use std::fmt::Write;
use std::net::Ipv4Addr;

/// `a.b.c.d:port`, `*` for address 0 and for port 0.
pub fn address((ip, port): (Ipv4Addr, u16)) -> String {
    let host = if ip.is_unspecified() { "*".to_string() } else { ip.to_string() };
    if port == 0 {
        format!("{host}:*")
    } else {
        format!("{host}:{port}")
    }
}

fn proto(k: Kind) -> &'static str {
    if k.is_tcp() {
        "TCP"
    } else {
        "UDP"
    }
}

fn state(r: &SocketRecord) -> &'static str {
    r.state.map_or("-", |s| s.name())
}

/// The user's name, or the uid in decimal when it has none.
pub fn user(uid: u32) -> String {
    // SAFETY: passwd is plain data (integers and pointers): all zeros is a valid value.
    let mut pwd: libc::passwd = unsafe { std::mem::zeroed() };
    let mut buf = vec![0 as libc::c_char; 4096];
    let mut found: *mut libc::passwd = std::ptr::null_mut();
    // SAFETY: getpwuid_r writes into our struct and buffer, and points `found` at the struct.
    let r = unsafe { libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) };
    if r == 0 && !found.is_null() && !pwd.pw_name.is_null() {
        // SAFETY: pw_name points into `buf`, NUL-terminated by getpwuid_r.
        return unsafe { std::ffi::CStr::from_ptr(pwd.pw_name) }.to_string_lossy().into_owned();
    }
    uid.to_string()
}

/// The sockets the options select, in the original's order: TCP listeners, TCP connections,
/// UDP, connected UDP; within a section by pid, then descriptor.
pub fn select<'a>(o: &Options, entries: &'a [Entry]) -> Vec<&'a Entry> {
    let mut v: Vec<&Entry> = entries
        .iter()
        .filter(|e| {
            let k = e.socket.kind;
            let proto_ok = if k.is_tcp() { o.tcp } else { o.udp };
            let listening = matches!(k, Kind::TcpListen | Kind::Udp);
            proto_ok && if listening { o.listening } else { o.connected }
        })
        .collect();
    v.sort_by_key(|e| (e.socket.kind, e.process.pid, e.fd()));
    v
}

/// The socket `id` names: its pid and one of the descriptors naming it.
pub fn find(entries: &[Entry], id: SocketId) -> Option<&Entry> {
    entries.iter().find(|e| e.process.pid == id.pid && e.socket.fds().iter().any(|fd| *fd as u32 == id.fd))
}

/// The listing: `exasock-stat [-c] [-l] [-t] [-u] [-e] [-i]`.
pub fn list(o: &Options, entries: &[Entry]) -> String {
    let mut s = String::from("\nActive ExaNIC Sockets accelerated connections");
    if o.connected && o.listening {
        s.push_str(" (servers and established):\n");
    } else if o.connected {
        s.push_str(" (w/o servers):\n");
    } else if o.listening {
        s.push_str(" (only servers):\n");
    }
    let _ = write!(
        s,
        " {:<5} | {:<8} | {:<8} | {:<24} | {:<24} | {:<12}",
        "Proto", "Recv-Q", "Send-Q", "Local Address", "Foreign Address", "State"
    );
    if o.extend {
        let _ = write!(s, " | {:<12} | {:<10} | Program", "User", "PID:FD");
    }
    s.push('\n');
    for e in select(o, entries) {
        let r = &e.socket;
        let _ = write!(
            s,
            " {:<5} | {:<8} | {:<8} | {:<24} | {:<24} | {:<12}",
            proto(r.kind),
            r.recv_q as i32,
            r.send_q as i32,
            address(r.local),
            address(r.remote),
            state(r)
        );
        if o.extend {
            let pid_fd = format!("{}:{}", e.process.pid, e.fd());
            let _ = write!(s, " | {:<12} | {:<10} | {}", user(e.process.uid), pid_fd, e.process.program());
        }
        s.push('\n');
        if o.internal {
            internal(&mut s, e, 1);
            s.push('\n');
        }
    }
    s.push('\n');
    s
}

/// The -i block, indented `indent` spaces.
fn internal(s: &mut String, e: &Entry, indent: usize) {
    let r = &e.socket;
    let pad = " ".repeat(indent);
    let _ = writeln!(s, "{pad}internal diagnostics:");
    match r.kind {
        Kind::TcpConn => {
            let _ = writeln!(s, "{pad}    Rx Bytes: {} (Delivered: {})", r.rx_bytes, r.rx_delivered);
            let _ = writeln!(s, "{pad}    Tx Bytes: {} (Acked: {})", r.tx_bytes, r.tx_acked);
            let _ = writeln!(
                s,
                "{pad}    Retransmitted Segments: {} (Fast Retransmit: {}, Timeouts: {})",
                r.retrans_fast.wrapping_add(r.retrans_timeout),
                r.retrans_fast,
                r.retrans_timeout
            );
            let _ = writeln!(s, "{pad}    Retransmitted Bytes: {}", r.retrans_bytes as u32);
            let _ = writeln!(
                s,
                "{pad}    Window (peer,local): {},{}  Scale (peer,local): {},{}",
                r.window_peer, r.window_local, r.wscale_peer, r.wscale_local
            );
            let _ = writeln!(
                s,
                "{pad}    Congestion Window: {}  Slow Start Threshold: {}  MSS (Tx,Rx): {},{}",
                r.cwnd, r.ssthresh, r.mss_tx, r.mss_rx
            );
        }
        Kind::TcpListen => {
            let _ = writeln!(
                s,
                "{pad}    Connection Requests: {} (Established: {})",
                r.conn_requests as u32, r.conn_established as u32
            );
        }
        Kind::Udp | Kind::UdpConn => {}
    }
    let _ = writeln!(
        s,
        "{pad}    Drops: {} (Receive Queue Full: {}, Checksum: {}, No Buffer: {})",
        r.drops_queue_full + e.process.drops_checksum + e.process.drops_no_buffer,
        r.drops_queue_full,
        e.process.drops_checksum,
        e.process.drops_no_buffer
    );
}

/// `exasock-stat -s PID:FD [-e] [-i]`.
pub fn single(o: &Options, id: SocketId, entries: &[Entry]) -> String {
    let Some(e) = find(entries, id) else {
        return format!("Socket {}:{} not found (not an active accelerated socket)\n\n", id.pid as i32, id.fd as i32);
    };
    let r = &e.socket;
    let mut s = String::new();
    let _ = writeln!(s, "Socket (PID:FD): {}:{}", id.pid as i32, id.fd as i32);
    let _ = writeln!(s, "    Proto: {}  State: {}", proto(r.kind), state(r));
    let _ = writeln!(s, "    Local Address: {}", address(r.local));
    let _ = writeln!(s, "    Foreign Address: {}", address(r.remote));
    let _ = write!(s, "    Recv-Q: {}", r.recv_q as i32);
    if r.kind == Kind::TcpConn {
        let _ = write!(s, "  Send-Q: {}", r.send_q as i32);
    }
    s.push('\n');
    if o.extend {
        let _ = writeln!(s, "    User: {}  Program: {}", user(e.process.uid), e.process.program());
    }
    if o.internal {
        internal(&mut s, e, 4);
    }
    s.push('\n');
    s
}

/// The usage text (stderr), the original's with our two options.
pub fn usage(name: &str) -> String {
    format!(
        "Usage:
   {name} [-cltuei]
   {name} -s <socket> [-ei]
   {name} [-h]
    -c, --connected    display connected sockets (default: all)
    -l, --listening    display listening server sockets
    -t, --tcp          display TCP sockets (default: all)
    -u, --udp          display UDP sockets
    -e, --extend       display more information (user, program, fd)
    -i, --internal     display internal TCP diagnostics
    -s, --socket       specify socket to display information about
                       (<socket> defined as PID:FD, where PID is the process ID
                       and FD is the file descriptor)
        --json         print one JSON object per socket (see the README for the fields)
        --watch [N]    redraw every N seconds (default 2) until interrupted
    -h, --help         display tool usage info

"
    )
}

/// The help text (stderr).
pub fn help(name: &str) -> String {
    format!(
        "\nexasock-stat (ExaSock version {})
Display ExaNIC Sockets accelerated connections

{}Output:
   Proto:
       The protocol used by the socket (TCP or UDP)
   Recv-Q:
       Connected: The count of bytes not copied by the user program connected to this socket
       Listening: The count of connections waiting to be accepted by the user program
   Send-Q:
       Connected: The count of bytes not acknowledged by the remote host
       Listening: N/A
   Local Address:
       Address and port number of the local end of the socket
   Foreign Address:
       Address and port number of the remote end of the socket
   State:
       The state of the socket
Extended Output (-e/--extend enabled):
   User:
       The username or the user id (UID) of the owner of the socket
   PID:FD:
       PID of the process that owns the socket and value of the socket's file descriptor
   Program:
       Process name of the process that owns the socket

",
        env!("CARGO_PKG_VERSION"),
        usage(name)
    )
}
