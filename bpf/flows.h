/* Shared between the BPF programs and Rust (nic::steering mirrors these layouts).
 * Keys and addresses are in network byte order, as on the wire. */
#ifndef EXASOCK_FLOWS_H
#define EXASOCK_FLOWS_H

#include <linux/types.h>

/* A flow the stack serves: (protocol, local IPv4, local port, remote IPv4, remote port), named
 * as an arriving frame carries them (dst = local, src = remote). dst_ip 0 is the wildcard (a
 * socket bound to INADDR_ANY). The remote half is zero for UDP sockets and TCP listeners, and
 * the peer's address for one TCP connection. Lookups try the exact 4-tuple, then (dst_ip,
 * dst_port), then (0, dst_port). 16 bytes, 8-byte aligned, no holes. */
struct flow_key {
	__u32 dst_ip;
	__u32 src_ip;
	__u16 dst_port;
	__u16 src_port;
	__u8 proto;
	__u8 pad[3];
};

#define DATAPATH_AF_PACKET 1
#define DATAPATH_AF_XDP 2

/* Who serves a flow: the owning process and how its frames reach it. `shared` is set once
 * another socket (another process's, bound with SO_REUSEADDR/SO_REUSEPORT) holds the flow's
 * port too: the kernel then serves the flow, delivering to its sockets as Linux does (the
 * owner's kernel socket included), and the owner's ring gets none of it. `token` names the
 * owner's anchor in `anchors` (0: none, an entry written before anchors existed); owner_pid is
 * what the socket filter compares and what `exasock-ctl status` shows. `cookies` is set on a
 * TCP listener's entry once it has answered a SYN with a SYN cookie: from then on a bare ACK of
 * no connection (a cookie's final ACK) goes to the listener's owner too, unless the kernel has
 * a socket for its 4-tuple. */
struct flow_value {
	__u32 owner_pid;
	__u8 datapath;
	__u8 shared;
	__u8 cookies;
	__u8 pad;
	__u64 token;
};

/* An IPv4 datagram being fragmented: later fragments carry no ports, so they are matched on
 * (src, dst, id, proto) to the flow their first fragment belonged to. */
struct frag_key {
	__u32 src_ip;
	__u32 dst_ip;
	__u16 id;
	__u8 proto;
	__u8 pad;
};

struct frag_value {
	struct flow_key flow;
	__u16 src_port;
	__u8 pad[6];
};

/* A multicast group a process receives on a port (issue 17): several processes may each
 * receive every datagram of one group:port, so this is a set of (group, port, owner) rather
 * than one owner per flow. The socket filter of process `pid` takes a datagram to group:port
 * when (group, pid, port) is here; the value is the owner's anchor token, for sweeping. */
struct mcast_key {
	__u32 group;
	__u32 pid;
	__u16 port;
	__u8 pad[6];
};

#endif
