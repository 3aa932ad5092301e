//! A UDP socket's receive queue: datagrams with their boundaries, bounded in bytes like
//! SO_RCVBUF, in memory allocated once when the socket is made.

use crate::time::Instant;
use std::collections::VecDeque;
use std::net::SocketAddrV4;

/// Bytes charged per datagram on top of its payload, as the kernel charges an skb's overhead,
/// so a flood of empty datagrams cannot queue without bound.
pub const DATAGRAM_OVERHEAD: usize = 256;

/// What the stack knows of a datagram as it queues it, besides its bytes: the facts of its IP
/// header that recvmsg's control messages report (IP_PKTINFO, IP_RECVTOS, IP_RECVTTL,
/// IP_RECVORIGDSTADDR, SO_RXQ_OVFL, the timestamps). Kept per datagram in the queue's metadata
/// ring, which is allocated with the queue: nothing is allocated per datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    /// Who sent it.
    pub src: SocketAddrV4,
    /// The address and port it was sent to (a local address, a group or a broadcast).
    pub dst: SocketAddrV4,
    /// Its IP header's TOS byte (DSCP and ECN).
    pub tos: u8,
    /// Its IP header's TTL.
    pub ttl: u8,
    /// The kernel's index of the interface it arrived on.
    pub ifindex: u32,
    /// When the stack received it.
    pub timestamp: Instant,
    /// Datagrams the socket had dropped (queue full) when this one was queued, as Linux's
    /// skb dropcount that SO_RXQ_OVFL reports.
    pub drops: u32,
}

impl Arrival {
    /// A datagram from `src` to `dst` with default header facts (TTL 64, TOS 0), for tests.
    pub fn new(src: SocketAddrV4, dst: SocketAddrV4, timestamp: Instant) -> Arrival {
        Arrival { src, dst, tos: 0, ttl: 64, ifindex: 0, timestamp, drops: 0 }
    }
}

/// What a receive call learns about a datagram besides its bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DatagramInfo {
    /// Full payload length (MSG_TRUNC reports this).
    pub len: usize,
    /// Bytes copied into the caller's buffer.
    pub copied: usize,
    /// Who sent it.
    pub src: SocketAddrV4,
    /// The address it was sent to (IP_PKTINFO's ipi_addr, IP_RECVORIGDSTADDR).
    pub dst: SocketAddrV4,
    /// The local address a reply should come from (IP_PKTINFO's ipi_spec_dst): `dst` for
    /// unicast, for a group or broadcast the source the route back to the sender picks, as
    /// Linux's fib_compute_spec_dst.
    pub spec_dst: std::net::Ipv4Addr,
    /// Its IP header's TOS byte.
    pub tos: u8,
    /// Its IP header's TTL.
    pub ttl: u8,
    /// The interface it arrived on.
    pub ifindex: u32,
    /// When the stack received it.
    pub timestamp: Instant,
    /// The socket's drop count when it was queued (SO_RXQ_OVFL).
    pub drops: u32,
}

#[derive(Debug, Clone, Copy)]
struct Meta {
    start: usize,
    len: usize,
    arrival: Arrival,
}

/// The queue: a byte ring for payloads and a ring of their metadata.
#[derive(Debug)]
pub struct DatagramQueue {
    bytes: Box<[u8]>,
    meta: VecDeque<Meta>,
    // The counters are u32 (SO_RCVBUF is an int): the socket table's slots hold a UDP socket
    // inline, and every TCP connection's slot pays for its size.
    /// Next byte to write.
    tail: u32,
    /// Payload bytes in the ring.
    used: u32,
    /// Bytes charged (payloads plus overhead), against `limit`.
    charged: u32,
    limit: u32,
}

impl DatagramQueue {
    /// A queue that holds up to `limit` charged bytes (SO_RCVBUF).
    pub fn new(limit: usize) -> Self {
        let limit = limit.clamp(DATAGRAM_OVERHEAD + 1, i32::MAX as usize);
        DatagramQueue {
            bytes: vec![0u8; limit].into_boxed_slice(),
            meta: VecDeque::with_capacity(limit / DATAGRAM_OVERHEAD + 1),
            tail: 0,
            used: 0,
            charged: 0,
            limit: limit as u32,
        }
    }

    /// Changes the limit (setsockopt SO_RCVBUF); what is queued stays. The ring grows if needed.
    pub fn set_limit(&mut self, limit: usize) {
        let limit = limit.clamp(DATAGRAM_OVERHEAD + 1, i32::MAX as usize);
        if limit > self.bytes.len() {
            let mut bigger = vec![0u8; limit].into_boxed_slice();
            let mut at = 0;
            for m in self.meta.iter_mut() {
                copy_out(&self.bytes, m.start, &mut bigger[at..at + m.len]);
                m.start = at;
                at += m.len;
            }
            self.bytes = bigger;
            self.tail = at as u32;
        }
        self.limit = limit as u32;
    }

    /// Queues a datagram; false (and nothing queued) when it does not fit the limit.
    pub fn push(&mut self, payload: &[u8], arrival: &Arrival) -> bool {
        let cost = payload.len() + DATAGRAM_OVERHEAD;
        if self.charged as usize + cost > self.limit as usize || payload.len() > self.bytes.len() - self.used as usize {
            return false;
        }
        let start = self.tail as usize;
        let cap = self.bytes.len();
        let first = payload.len().min(cap - start);
        self.bytes[start..start + first].copy_from_slice(&payload[..first]);
        self.bytes[..payload.len() - first].copy_from_slice(&payload[first..]);
        self.tail = ((start + payload.len()) % cap) as u32;
        self.charged += cost as u32;
        self.used += payload.len() as u32;
        self.meta.push_back(Meta { start, len: payload.len(), arrival: *arrival });
        true
    }

    /// Copies the oldest datagram into `buf` (truncating), removing it unless `peek`.
    pub fn pop(&mut self, buf: &mut [u8], peek: bool) -> Option<DatagramInfo> {
        let m = *self.meta.front()?;
        let copied = m.len.min(buf.len());
        copy_out(&self.bytes, m.start, &mut buf[..copied]);
        if !peek {
            self.meta.pop_front();
            self.charged -= (m.len + DATAGRAM_OVERHEAD) as u32;
            self.used -= m.len as u32;
            if self.meta.is_empty() {
                self.tail = 0;
            }
        }
        let a = m.arrival;
        Some(DatagramInfo {
            len: m.len,
            copied,
            src: a.src,
            dst: a.dst,
            spec_dst: *a.dst.ip(),
            tos: a.tos,
            ttl: a.ttl,
            ifindex: a.ifindex,
            timestamp: a.timestamp,
            drops: a.drops,
        })
    }

    /// Length of the next datagram (FIONREAD on a UDP socket).
    pub fn next_len(&self) -> Option<usize> {
        self.meta.front().map(|m| m.len)
    }

    /// Datagrams queued.
    pub fn len(&self) -> usize {
        self.meta.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.meta.is_empty()
    }

    /// Bytes charged against the limit (SIOCINQ-like accounting for exasock-stat).
    pub fn charged(&self) -> usize {
        self.charged as usize
    }
}

/// Copies `out.len()` bytes of the ring starting at `start`, wrapping at its end.
fn copy_out(ring: &[u8], start: usize, out: &mut [u8]) {
    let first = out.len().min(ring.len() - start);
    out[..first].copy_from_slice(&ring[start..start + first]);
    let rest = out.len() - first;
    out[first..].copy_from_slice(&ring[..rest]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::net::Ipv4Addr;

    fn addr(port: u16) -> SocketAddrV4 {
        SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 1), port)
    }

    #[test]
    fn boundaries_peek_truncate_and_limit() {
        let mut q = DatagramQueue::new(3 * (DATAGRAM_OVERHEAD + 100));
        assert!(q.push(&[1; 100], &Arrival::new(addr(1), addr(9), Instant::ZERO)));
        assert!(q.push(
            &[],
            &Arrival {
                tos: 0x2e,
                ttl: 3,
                ifindex: 7,
                drops: 4,
                ..Arrival::new(addr(2), addr(9), Instant::from_nanos(5))
            }
        ));
        assert!(q.push(&[3; 100], &Arrival::new(addr(3), addr(9), Instant::ZERO)));
        assert!(!q.push(&[4; 1], &Arrival::new(addr(4), addr(9), Instant::ZERO)), "over the limit");
        let mut buf = [0u8; 10];
        let info = q.pop(&mut buf, true).unwrap();
        assert_eq!((info.len, info.copied, info.src), (100, 10, addr(1)));
        assert_eq!(q.len(), 3, "peek leaves it");
        q.pop(&mut buf, false).unwrap();
        let info = q.pop(&mut buf, false).unwrap();
        assert_eq!((info.len, info.copied, info.timestamp), (0, 0, Instant::from_nanos(5)));
        assert_eq!((info.tos, info.ttl, info.ifindex, info.drops), (0x2e, 3, 7, 4), "each datagram's header facts");
        assert!(q.push(&[5; 50], &Arrival::new(addr(5), addr(9), Instant::ZERO)), "room again");
        assert_eq!(q.next_len(), Some(100));
    }

    proptest! {
        /// Any sequence of pushes and pops behaves like a FIFO of the accepted datagrams.
        #[test]
        fn behaves_like_a_bounded_fifo(ops in proptest::collection::vec((any::<bool>(), 0usize..3000), 1..300)) {
            let mut q = DatagramQueue::new(16 * 1024);
            let mut model: VecDeque<Vec<u8>> = VecDeque::new();
            let mut n = 0u8;
            for (push, len) in ops {
                if push {
                    n = n.wrapping_add(1);
                    let data: Vec<u8> = (0..len).map(|i| n.wrapping_add(i as u8)).collect();
                    if q.push(&data, &Arrival::new(addr(1), addr(2), Instant::ZERO)) {
                        model.push_back(data);
                    } else {
                        let charged: usize = model.iter().map(|d| d.len() + DATAGRAM_OVERHEAD).sum();
                        prop_assert!(charged + len + DATAGRAM_OVERHEAD > 16 * 1024 || len > 16 * 1024 - model.iter().map(Vec::len).sum::<usize>());
                    }
                } else {
                    let mut buf = vec![0u8; 4000];
                    let got = q.pop(&mut buf, false).map(|i| buf[..i.copied].to_vec());
                    prop_assert_eq!(got, model.pop_front());
                }
            }
        }
    }
}
