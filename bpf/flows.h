/* Shared between the BPF programs and Rust (nic::steering mirrors these layouts).
 * Keys and addresses are in network byte order, as on the wire. */
#ifndef EXASOCK_FLOWS_H
#define EXASOCK_FLOWS_H

#include <linux/types.h>

/* A flow the stack serves: (protocol, local IPv4, local port). dst_ip 0 is the wildcard
 * (a socket bound to INADDR_ANY). */
struct flow_key {
	__u32 dst_ip;
	__u16 dst_port;
	__u8 proto;
	__u8 pad;
};

#define DATAPATH_AF_PACKET 1
#define DATAPATH_AF_XDP 2

/* Who serves a flow: the owning process and how its frames reach it. `shared` is set once
 * another socket (another process's, bound with SO_REUSEADDR/SO_REUSEPORT) holds the flow's
 * port too: the kernel then serves the flow, delivering to its sockets as Linux does (the
 * owner's kernel socket included), and the owner's ring gets none of it. */
struct flow_value {
	__u32 owner_pid;
	__u8 datapath;
	__u8 shared;
	__u8 pad[2];
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
	__u8 pad[2];
};

#endif
