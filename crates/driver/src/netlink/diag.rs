//! sock_diag (NETLINK_SOCK_DIAG): which UDP sockets of this network namespace hold a port, so
//! that a flow claimed on a port another process shares (SO_REUSEADDR/SO_REUSEPORT) is left to
//! the kernel to deliver among them.

use super::*;

const NETLINK_SOCK_DIAG: libc::c_int = 4;
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// struct inet_diag_req_v2: family, protocol, ext, pad, states, inet_diag_sockid (48 bytes).
const INET_DIAG_REQ_V2_LEN: usize = 56;
/// struct inet_diag_msg: family, state, timer, retrans, inet_diag_sockid, expires, rqueue,
/// wqueue, uid, inode.
const INET_DIAG_MSG_LEN: usize = 72;

/// One UDP socket as sock_diag reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpSocketInfo {
    /// The address it is bound to.
    pub local: std::net::SocketAddrV4,
    /// Its inode number (`st_ino` of its descriptors), which tells whose it is.
    pub inode: u64,
}

/// Parses one `inet_diag_msg`; `None` for another family.
pub fn parse_udp_diag(payload: &[u8]) -> io::Result<Option<UdpSocketInfo>> {
    if payload.len() < INET_DIAG_MSG_LEN {
        return Err(bad("truncated inet_diag_msg"));
    }
    if payload[0] != libc::AF_INET as u8 {
        return Ok(None);
    }
    let port = u16::from_be_bytes([payload[4], payload[5]]);
    let ip = attr_ipv4(&payload[8..12], "bad inet_diag source address")?;
    let inode = u32_at(payload, 68).ok_or_else(|| bad("truncated inet_diag_msg"))?;
    Ok(Some(UdpSocketInfo { local: std::net::SocketAddrV4::new(ip, port), inode: u64::from(inode) }))
}

/// The IPv4 UDP sockets bound to `port` in the calling thread's network namespace (a dump of
/// every UDP socket, filtered here: for claims, which are rare).
pub fn udp_sockets_on_port(port: u16) -> io::Result<Vec<UdpSocketInfo>> {
    let fd = open_socket_of(NETLINK_SOCK_DIAG, 0)?;
    let timeout = libc::timeval { tv_sec: REPLY_TIMEOUT_SECS, tv_usec: 0 };
    set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
    let mut body = [0u8; INET_DIAG_REQ_V2_LEN];
    body[0] = libc::AF_INET as u8;
    body[1] = libc::IPPROTO_UDP as u8;
    body[4..8].copy_from_slice(&u32::MAX.to_ne_bytes());
    let request = build_message(SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, 1, &body, &[]);
    send_to_kernel(fd.as_raw_fd(), &request)?;
    let mut buf = vec![0u8; RECV_BUF];
    let mut out = Vec::new();
    loop {
        let n = recv_datagram(fd.as_raw_fd(), &mut buf)?;
        for msg in Messages::new(&buf[..n]) {
            let msg = msg?;
            match msg.kind {
                NLMSG_DONE => return Ok(out),
                NLMSG_ERROR => {
                    parse_error(msg.payload)?;
                    return Ok(out);
                }
                SOCK_DIAG_BY_FAMILY => {
                    out.extend(parse_udp_diag(msg.payload)?.filter(|s| s.local.port() == port));
                }
                _ => {}
            }
        }
    }
}
