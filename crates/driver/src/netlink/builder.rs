//! Building requests: header, fixed body, attributes.

use super::*;

pub(super) fn rtmsg(family: u8, dst_len: u8, flags: u32) -> [u8; RTMSG_LEN] {
    let mut m = [0u8; RTMSG_LEN];
    m[0] = family;
    m[1] = dst_len;
    m[8..12].copy_from_slice(&flags.to_ne_bytes());
    m
}

pub(super) fn ndmsg(ifindex: u32) -> [u8; NDMSG_LEN] {
    let mut m = [0u8; NDMSG_LEN];
    m[0] = libc::AF_INET as u8;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m
}

pub(super) fn ifaddrmsg(ifindex: u32) -> [u8; IFADDRMSG_LEN] {
    let mut m = [0u8; IFADDRMSG_LEN];
    m[0] = libc::AF_INET as u8;
    m[4..8].copy_from_slice(&ifindex.to_ne_bytes());
    m
}

/// One request: header, fixed body, attributes, each padded to 4 bytes.
pub(super) fn build_message(kind: u16, flags: u16, seq: u32, body: &[u8], attrs: &[(u16, &[u8])]) -> Vec<u8> {
    let mut m = vec![0u8; NLMSG_HDRLEN];
    m.extend_from_slice(body);
    m.resize(align4(m.len()), 0);
    for &(kind, data) in attrs {
        let len = (RTA_HDRLEN + data.len()) as u16;
        m.extend_from_slice(&len.to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(data);
        m.resize(align4(m.len()), 0);
    }
    let total = m.len() as u32;
    m[0..4].copy_from_slice(&total.to_ne_bytes());
    m[4..6].copy_from_slice(&kind.to_ne_bytes());
    m[6..8].copy_from_slice(&flags.to_ne_bytes());
    m[8..12].copy_from_slice(&seq.to_ne_bytes());
    // nlmsg_pid stays 0: the kernel knows who sent it.
    m
}
