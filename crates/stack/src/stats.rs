//! Counters for every drop and every unusual path (exasock-stat -i shows them).

/// What the stack did with frames and datagrams. Names follow Linux's SNMP counters where one
/// exists (in the comment).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames handed to `receive`.
    pub rx_frames: u64,
    /// Frames whose destination MAC is not ours, broadcast or a joined group's.
    pub rx_not_our_mac: u64,
    /// Frames carrying something other than IPv4 (ARP is the kernel's).
    pub rx_not_ipv4: u64,
    /// Frames with an 802.1Q tag (VLANs are not served yet).
    pub rx_vlan: u64,
    /// IPv4 headers too short or lengths inconsistent (IpInHdrErrors, IpInTruncatedPkts).
    pub ip_malformed: u64,
    /// IPv4 header checksum wrong (IpInCsumErrors).
    pub ip_bad_checksum: u64,
    /// IPv4 destination not ours, not broadcast, not a joined group (IpInAddrErrors).
    pub ip_not_ours: u64,
    /// Protocols we do not serve (IpInUnknownProtos).
    pub ip_unknown_protocol: u64,
    /// Fragments received (IpReasmReqds).
    pub frag_received: u64,
    /// Datagrams reassembled (IpReasmOKs).
    pub frag_reassembled: u64,
    /// Fragments dropped: overlap, limits, bad lengths (IpReasmFails).
    pub frag_dropped: u64,
    /// UDP headers too short or lengths inconsistent (UdpInErrors).
    pub udp_malformed: u64,
    /// UDP checksum wrong (UdpInCsumErrors).
    pub udp_bad_checksum: u64,
    /// UDP datagrams to no socket (UdpNoPorts; no ICMP is sent: the kernel owns ICMP).
    pub udp_no_socket: u64,
    /// UDP datagrams dropped because the socket's queue was full (UdpRcvbufErrors).
    pub udp_rcvbuf_full: u64,
    /// UDP datagrams queued to sockets (UdpInDatagrams).
    pub udp_delivered: u64,
    /// UDP datagrams sent (UdpOutDatagrams).
    pub udp_sent: u64,
    /// UDP datagrams to a group whose copy went to the kernel to loop to this host's members
    /// (IP_MULTICAST_LOOP); not counted in `tx_to_kernel`.
    pub udp_looped: u64,
    /// Frames handed to the port.
    pub tx_frames: u64,
    /// IP packets handed to the kernel because the neighbour was unknown.
    pub tx_to_kernel: u64,
    /// Frames the port refused after part of a datagram had gone (the datagram is lost).
    pub tx_dropped: u64,
    /// Datagrams not sent because the transmit ring had no room for all their frames (the
    /// caller got EAGAIN or waited).
    pub tx_ring_full: u64,
    /// Fragments sent (IpFragCreates).
    pub frag_created: u64,
    /// ICMP messages received (IcmpInMsgs): only errors about our TCP connections are steered
    /// to the stack.
    pub icmp_in: u64,
    /// ICMP messages too short, with a bad checksum or a quoted header that is not IPv4
    /// (IcmpInErrors).
    pub icmp_malformed: u64,
    /// ICMP messages TCP has no use for (not an error, or quoting no TCP segment).
    pub icmp_ignored: u64,
    /// ICMP errors quoting a connection the stack does not have.
    pub icmp_no_socket: u64,
    /// ICMP errors a connection acted on.
    pub tcp_icmp_taken: u64,
    /// ICMP errors a connection ignored (out of window: RFC 5927; or not applicable).
    pub tcp_icmp_ignored: u64,
    /// TCP segments received (TcpInSegs).
    pub tcp_in_segs: u64,
    /// TCP segments sent (TcpOutSegs).
    pub tcp_out_segs: u64,
    /// TCP segments too short, inconsistent or to a group address (TcpInErrs).
    pub tcp_malformed: u64,
    /// TCP checksum wrong (TcpInCsumErrors).
    pub tcp_bad_checksum: u64,
    /// TCP segments for no socket (answered with RST when configured) (TcpOutRsts share).
    pub tcp_no_socket: u64,
    /// RSTs sent for segments that matched no socket.
    pub tcp_resets_sent: u64,
    /// Connections opened actively (TcpActiveOpens).
    pub tcp_active_opens: u64,
    /// Connections opened passively (TcpPassiveOpens).
    pub tcp_passive_opens: u64,
    /// SYNs dropped because a listener's queue was full (ListenDrops).
    pub tcp_listen_drops: u64,
    /// Final ACKs dropped because the accept queue was full (ListenOverflows).
    pub tcp_listen_overflows: u64,
    /// SYN-ACKs sent with a SYN cookie because a listener's SYN queue was full (SyncookiesSent).
    pub tcp_syncookies_sent: u64,
    /// Final ACKs whose SYN cookie was valid: connections made from them (SyncookiesRecv).
    pub tcp_syncookies_recv: u64,
    /// ACKs checked for a cookie that carried none of ours (SyncookiesFailed).
    pub tcp_syncookies_failed: u64,
    /// Bare final ACKs dropped while TCP_DEFER_ACCEPT waits for data (TCPDeferAcceptDrop).
    pub tcp_defer_accept_drops: u64,
    /// TCP segments the port refused (recovered by retransmission).
    pub tcp_tx_busy: u64,
    /// TCP super-segments handed to a datapath that cuts them (GSO); their pieces are counted
    /// in `tcp_out_segs`.
    pub tcp_gso_frames: u64,
    /// Connections that closed at once instead of entering TIME_WAIT, with
    /// `TcpConfig::max_time_wait` reached (TCPTimeWaitOverflow).
    pub tcp_time_wait_overflow: u64,
}

/// Work the stack's tables did, counted: a deterministic measure of per-segment cost that tests
/// compare across numbers of connections (wall time is not deterministic). Hash probes inside
/// the demultiplexer's maps are not visible; its lookups are.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Work {
    /// TCP demultiplexer lookups (connection by 4-tuple, listener by address, wildcard).
    pub demux_lookups: u64,
    /// Timer-wheel slots and entries looked at (expiry and the next-deadline search).
    pub timer_visits: u64,
    /// Sockets `transmit` looked at.
    pub transmit_visits: u64,
}
