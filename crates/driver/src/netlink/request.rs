//! The request socket: one question to the kernel's tables at a time, answers matched by
//! sequence number, dumps restarted when a concurrent change interrupts them.

use super::*;

/// A request socket to the kernel's routing tables (`NETLINK_ROUTE`): one question at a time,
/// blocking, each answer matched to its question by sequence number.
pub struct Netlink {
    fd: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
}

impl fmt::Debug for Netlink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Netlink").field("fd", &self.fd).field("seq", &self.seq).finish()
    }
}

impl AsFd for Netlink {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Netlink {
    /// Opens a request socket in the calling thread's network namespace (close-on-exec).
    pub fn open() -> io::Result<Netlink> {
        let fd = open_socket(0)?;
        // Errors then echo only the failing request's header; best effort (Linux >= 4.3).
        let _ = set_int_opt(&fd, SOL_NETLINK, NETLINK_CAP_ACK, 1);
        let timeout = libc::timeval { tv_sec: REPLY_TIMEOUT_SECS, tv_usec: 0 };
        set_opt(&fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &timeout)?;
        Ok(Netlink { fd, seq: 0, buf: vec![0; RECV_BUF] })
    }

    /// RTM_GETROUTE for one destination (the kernel's own FIB lookup, so policy routing and the
    /// preferred source come for free): like `ip route get DST`. A kernel refusal (ENETUNREACH,
    /// EHOSTUNREACH...) is an `io::Error` carrying the kernel's errno.
    pub fn route_to(&mut self, dst: Ipv4Addr) -> io::Result<RouteInfo> {
        let body = rtmsg(libc::AF_INET as u8, 32, RTM_F_LOOKUP_TABLE);
        let mut found = None;
        self.transact(RTM_GETROUTE, false, &body, &[(RTA_DST, &dst.octets())], |kind, payload| {
            if kind == RTM_NEWROUTE {
                found = parse_route(payload)?;
            }
            Ok(())
        })?;
        let route = found.ok_or_else(|| bad("no IPv4 route in the kernel's answer"))?;
        Ok(RouteInfo {
            dst,
            gateway: route.gateway,
            src: route.prefsrc,
            oif: route.oif,
            table: route.table,
            mtu: route.mtu,
            kind: route.kind,
        })
    }

    /// Dumps every IPv4 route of every table (main, local, policy tables): the caller filters by
    /// table, type and interface.
    pub fn routes(&mut self) -> io::Result<Vec<Route>> {
        let body = rtmsg(libc::AF_INET as u8, 0, 0);
        self.dump(RTM_GETROUTE, RTM_NEWROUTE, &body, parse_route)
    }

    /// Dumps the IPv4 neighbour table, of one interface or of all.
    pub fn neighbours(&mut self, ifindex: Option<u32>) -> io::Result<Vec<Neighbour>> {
        let body = ndmsg(0);
        let mut all = self.dump(RTM_GETNEIGH, RTM_NEWNEIGH, &body, parse_neighbour)?;
        all.retain(|n| ifindex.is_none_or(|i| n.ifindex == i));
        Ok(all)
    }

    /// The kernel's neighbour entry for `ip` on interface `ifindex`, or `None` if it has none.
    /// `ifindex` 0 means any interface (answered from a dump).
    pub fn neighbour(&mut self, ip: Ipv4Addr, ifindex: u32) -> io::Result<Option<Neighbour>> {
        if ifindex != 0 {
            let body = ndmsg(ifindex);
            let mut found = None;
            let asked = self.transact(RTM_GETNEIGH, false, &body, &[(NDA_DST, &ip.octets())], |kind, payload| {
                if kind == RTM_NEWNEIGH {
                    found = parse_neighbour(payload)?;
                }
                Ok(())
            });
            match asked {
                Ok(()) => return Ok(found.filter(|n| n.ip == ip)),
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Ok(None),
                // Kernels before 5.0 cannot get one entry: fall back to a dump.
                Err(e) if e.raw_os_error() == Some(libc::EOPNOTSUPP) => {}
                Err(e) => return Err(e),
            }
        }
        let all = self.neighbours(if ifindex == 0 { None } else { Some(ifindex) })?;
        Ok(all.into_iter().find(|n| n.ip == ip))
    }

    /// Dumps the IPv4 addresses, of one interface or of all.
    pub fn addresses(&mut self, ifindex: Option<u32>) -> io::Result<Vec<Address>> {
        let body = ifaddrmsg(ifindex.unwrap_or(0));
        let mut all = self.dump(RTM_GETADDR, RTM_NEWADDR, &body, parse_address)?;
        all.retain(|a| ifindex.is_none_or(|i| a.ifindex == i));
        Ok(all)
    }

    /// The multicast groups joined on an interface (some socket on the host is a member of
    /// each); an error on kernels before 6.13, which cannot dump them.
    pub fn groups(&mut self, ifindex: u32) -> io::Result<Vec<Ipv4Addr>> {
        let body = ifaddrmsg(ifindex);
        let all = self.dump(RTM_GETMULTICAST, RTM_GETMULTICAST, &body, parse_group)?;
        Ok(all.into_iter().filter(|g| g.ifindex == ifindex).map(|g| g.group).collect())
    }

    /// Runs a dump, restarting it while the kernel flags it inconsistent (a table changed
    /// during it).
    fn dump<T>(
        &mut self,
        request: u16,
        reply: u16,
        body: &[u8],
        parse: fn(&[u8]) -> io::Result<Option<T>>,
    ) -> io::Result<Vec<T>> {
        let mut tries = 0;
        loop {
            let mut out = Vec::new();
            let result = self.transact(request, true, body, &[], |kind, payload| {
                if kind == reply {
                    out.extend(parse(payload)?);
                }
                Ok(())
            });
            match result {
                Err(e) if e.kind() == io::ErrorKind::Interrupted && tries < DUMP_RETRIES => tries += 1,
                Err(e) => return Err(e),
                Ok(()) => return Ok(out),
            }
        }
    }

    /// Sends one request and feeds each reply message of its sequence number to `on_message`
    /// until the answer is complete: `NLMSG_DONE` for a dump, the first message otherwise. A
    /// parse error in one message does not stop reading, so a dump is always read to its end
    /// (the kernel refuses a new dump while one is unfinished); the first such error is returned.
    fn transact(
        &mut self,
        kind: u16,
        dump: bool,
        body: &[u8],
        attrs: &[(u16, &[u8])],
        mut on_message: impl FnMut(u16, &[u8]) -> io::Result<()>,
    ) -> io::Result<()> {
        self.seq = self.seq.wrapping_add(1);
        let seq = self.seq;
        let flags = NLM_F_REQUEST | if dump { NLM_F_DUMP } else { 0 };
        let request = build_message(kind, flags, seq, body, attrs);
        send_to_kernel(self.fd.as_raw_fd(), &request)?;
        let mut failed: Option<io::Error> = None;
        let mut interrupted = false;
        loop {
            let n = recv_datagram(self.fd.as_raw_fd(), &mut self.buf).map_err(|e| {
                if e.kind() == io::ErrorKind::WouldBlock {
                    io::Error::new(io::ErrorKind::TimedOut, "no answer from the kernel over netlink")
                } else {
                    e
                }
            })?;
            for msg in Messages::new(&self.buf[..n]) {
                let msg = msg?;
                if msg.seq != seq {
                    continue; // left over from an earlier, abandoned request
                }
                match msg.kind {
                    NLMSG_NOOP => {}
                    NLMSG_ERROR => {
                        parse_error(msg.payload)?;
                        return failed.map_or(Ok(()), Err);
                    }
                    NLMSG_DONE => {
                        if dump {
                            // A dump that fails part-way ends with a negative errno here.
                            if msg.payload.len() >= 4 {
                                parse_error(msg.payload)?;
                            }
                            return match failed {
                                Some(e) => Err(e),
                                None if interrupted => Err(io::Error::new(
                                    io::ErrorKind::Interrupted,
                                    "netlink dump interrupted by a concurrent change",
                                )),
                                None => Ok(()),
                            };
                        }
                    }
                    NLMSG_OVERRUN => return Err(bad("netlink overrun")),
                    _ => {
                        interrupted |= msg.flags & NLM_F_DUMP_INTR != 0;
                        if failed.is_none() {
                            failed = on_message(msg.kind, msg.payload).err();
                        }
                        if !dump {
                            return failed.map_or(Ok(()), Err);
                        }
                    }
                }
            }
        }
    }
}
