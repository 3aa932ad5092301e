// SPDX-License-Identifier: GPL-2.0
/* Flow steering for exasock on one interface.
 *
 * `flows` names the flows the user-space stack serves. Two programs read it:
 * - exasock_sock (socket filter, one instance per process, on its AF_PACKET ring): passes the
 *   frames of flows owned by this process and nothing else;
 * - exasock_tc (tc ingress): drops frames of AF_PACKET-served flows, which the ring's tap has
 *   already seen, so the kernel never answers them, as long as the owner is alive; once the
 *   owner is gone the kernel gets them again and answers (ICMP, RST). It also drops, and
 *   counts in `xdp_missed`, TCP frames of AF_XDP-served flows that XDP let through.
 * - exasock_xdp (XDP, loaded by `exasock-ctl attach --datapath xdp`): redirects frames of flows
 *   served over AF_XDP to the XSK of the queue they arrived on (`xsks`, indexed by
 *   rx_queue_index), provided the entry carries the token of the process whose XSKs are in
 *   `xsks` (`xsk_owner`); everything else, and everything when no XSK is bound to the queue
 *   (the owner died: the kernel released its sockets), is XDP_PASS.
 * Everything not in `flows` goes to the kernel untouched.
 *
 * Lookups: the exact 4-tuple (a TCP connection's entry) first, then (local address, port) with
 * no remote, then (0, port) with no remote. For TCP an entry without a remote (a listener) takes
 * only segments that open a connection (SYN without ACK): every other segment without an exact
 * entry is the kernel's, so kernel connections already on a claimed port keep working, and one
 * connection can leave its entry without its listener. Except: a listener whose entry says it
 * sent SYN cookies also takes bare ACKs (a cookie's final ACK) for which the kernel has no
 * socket (tc and XDP ask it; the socket filter passes them and the stack checks the cookie).
 *
 * ICMP errors (destination unreachable, time exceeded, parameter problem) quoting a TCP
 * segment go to the owner of the quoted connection's exact entry, as its segments do (tc lets
 * the kernel see them too: it has no socket for the connection and ignores them).
 *
 * Liveness: a UDP flow's owner holds a kernel socket bound to the port (bpf_sk_lookup_udp finds
 * it); a TCP flow's owner holds its anchor, a socket in `anchors` under the token of the flow's
 * value (the kernel removes it when the last copy closes: the process died).
 *
 * A wildcard flow (a socket bound to INADDR_ANY) matches only datagrams addressed to the
 * interface: an address in `local_addrs` (the interface's addresses and their directed
 * broadcasts, kept by `exasock-ctl attach` and by every exasock process from rtnetlink), the
 * limited broadcast or a multicast group. Traffic the kernel forwards or rewrites (DNAT) to
 * that port is not ours. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/if_packet.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

#include "flows.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct flow_key);
	__type(value, struct flow_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct frag_key);
	__type(value, struct frag_value);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} frags SEC(".maps");

/* One anchor socket per process that claims flows, under a random 64-bit token (never the
 * pid, which is reused). Value size 8 so that user space can look a token up (the kernel
 * answers with the socket's cookie) to sweep entries whose anchor is gone. */
struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} anchors SEC(".maps");

/* The AF_XDP sockets of the process serving this interface over AF_XDP, one per RX queue. */
struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsks SEC(".maps");

/* Entry 0: the anchor token of the process whose sockets are in `xsks` (0: none). */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xsk_owner SEC(".maps");

/* Multicast receivers: (group, pid, port) -> anchor token (see flows.h). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, struct mcast_key);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} mcast SEC(".maps");

/* The addresses a wildcard flow answers for (network byte order); the value is unused. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 256);
	__type(key, __u32);
	__type(value, __u32);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} local_addrs SEC(".maps");

/* Entry 0: TCP frames of flows served over AF_XDP that reached tc ingress with their owner
 * alive (XDP did not redirect them) and were dropped there; see exasock_tc. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
} xdp_missed SEC(".maps");

/* Whether a wildcard flow may take a datagram to `daddr`. */
static __always_inline int wildcard_destination(__u32 daddr)
{
	if ((bpf_ntohl(daddr) >> 28) == 0xe || daddr == 0xffffffff)
		return 1;
	return bpf_map_lookup_elem(&local_addrs, &daddr) != 0;
}

/* Set per process when its socket filter is loaded. */
volatile const __u32 OWNER_PID = 0;

#define IP_MF 0x2000
#define IP_OFFSET 0x1fff

struct match {
	struct flow_value *owner;
	struct flow_key key;
	__u32 src_ip;
	__u32 dst_ip;
	__u16 src_port;
	/* An ICMP error about the flow (its quoted header named it). */
	__u8 icmp;
};

#define TCP_FLAG_ACK 0x10
#define TCP_FLAG_SYN 0x02
#define TCP_FLAG_RST 0x04

#define ICMP_DEST_UNREACH 3
#define ICMP_TIME_EXCEEDED 11
#define ICMP_PARAMETERPROB 12

/* Which program looks: the socket filter cannot ask the kernel for sockets, tc and XDP can. */
#define IN_SOCKET 0
#define IN_TC 1
#define IN_XDP 2

/* Reads frame bytes in any of the three program types (`xdp` is a constant at each call site,
 * so only one helper is compiled into each program). */
static __always_inline long load_bytes(void *ctx, int xdp, __u32 off, void *buf, __u32 len)
{
	if (xdp)
		return bpf_xdp_load_bytes(ctx, off, buf, len);
	return bpf_skb_load_bytes(ctx, off, buf, len);
}

/* Whether the kernel has a socket (established, TIME_WAIT or a request) for the TCP 4-tuple
 * of `m`: only tc and XDP may ask; the socket filter answers no. */
static __always_inline int kernel_has_tcp(void *ctx, int where, struct match *m)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk = 0;

	t.ipv4.saddr = m->key.src_ip;
	t.ipv4.daddr = m->key.dst_ip;
	t.ipv4.sport = m->key.src_port;
	t.ipv4.dport = m->key.dst_port;
	if (where != IN_SOCKET)
		sk = bpf_skc_lookup_tcp(ctx, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	int listening = sk->state == 10; /* TCP_LISTEN: no connection of its own */
	bpf_sk_release(sk);
	return !listening;
}

/* An ICMP error (destination unreachable, time exceeded, parameter problem) quoting the IPv4
 * header and first 8 bytes of a TCP segment we sent: the connection's exact entry, so the
 * error reaches the stack that owns it (RFC 5927: the stack checks the quoted sequence number).
 * UDP's errors stay the kernel's, which reports them on the flow's kernel socket. */
static __always_inline int lookup_icmp(void *skb, int xdp, __u32 l4, struct match *m)
{
	__u8 type;
	struct iphdr q;
	__u16 ports[2];

	if (load_bytes(skb, xdp, l4, &type, sizeof(type)) < 0)
		return 0;
	if (type != ICMP_DEST_UNREACH && type != ICMP_TIME_EXCEEDED && type != ICMP_PARAMETERPROB)
		return 0;
	if (load_bytes(skb, xdp, l4 + 8, &q, sizeof(q)) < 0)
		return 0;
	if (q.version != 4 || q.ihl < 5 || q.protocol != IPPROTO_TCP || (bpf_ntohs(q.frag_off) & IP_OFFSET))
		return 0;
	if (load_bytes(skb, xdp, l4 + 8 + q.ihl * 4, ports, sizeof(ports)) < 0)
		return 0;
	__builtin_memset(&m->key, 0, sizeof(m->key));
	/* The quoted segment went from us (its source) to the peer. */
	m->key.dst_ip = q.saddr;
	m->key.dst_port = ports[0];
	m->key.src_ip = q.daddr;
	m->key.src_port = ports[1];
	m->key.proto = IPPROTO_TCP;
	m->icmp = 1;
	m->owner = bpf_map_lookup_elem(&flows, &m->key);
	return m->owner != 0;
}

/* Finds the owner of the frame's flow: exact 4-tuple, then the local address, then the
 * wildcard. Offsets are from the Ethernet header in all program types. Returns 0 when the
 * frame is no flow of ours. */
static __always_inline int lookup_in(void *skb, int where, struct match *m)
{
	int xdp = where == IN_XDP;
	__u16 proto;
	struct iphdr ip;
	__u16 ports[2];
	int cookie_ack = 0;

	if (load_bytes(skb, xdp, 12, &proto, sizeof(proto)) < 0 || proto != bpf_htons(ETH_P_IP))
		return 0;
	if (load_bytes(skb, xdp, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return 0;
	if (ip.version != 4 || ip.ihl < 5)
		return 0;
	if (ip.protocol == IPPROTO_ICMP) {
		if (bpf_ntohs(ip.frag_off) & (IP_OFFSET | IP_MF))
			return 0;
		m->src_ip = ip.saddr;
		return lookup_icmp(skb, xdp, ETH_HLEN + ip.ihl * 4, m);
	}
	if (ip.protocol != IPPROTO_UDP && ip.protocol != IPPROTO_TCP)
		return 0;

	__u16 frag = bpf_ntohs(ip.frag_off);
	struct frag_key fk = { .src_ip = ip.saddr, .dst_ip = ip.daddr, .id = ip.id, .proto = ip.protocol };
	m->src_ip = ip.saddr;
	m->dst_ip = ip.daddr;

	if (frag & IP_OFFSET) {
		struct frag_value *fv = bpf_map_lookup_elem(&frags, &fk);
		if (!fv)
			return 0;
		m->key = fv->flow;
		m->src_port = fv->src_port;
		m->owner = bpf_map_lookup_elem(&flows, &m->key);
		return m->owner != 0;
	}

	__u32 l4 = ETH_HLEN + ip.ihl * 4;
	if (load_bytes(skb, xdp, l4, ports, sizeof(ports)) < 0)
		return 0;
	m->src_port = ports[0];
	__builtin_memset(&m->key, 0, sizeof(m->key));
	m->key.dst_ip = ip.daddr;
	m->key.dst_port = ports[1];
	m->key.src_ip = ip.saddr;
	m->key.src_port = ports[0];
	m->key.proto = ip.protocol;
	m->owner = bpf_map_lookup_elem(&flows, &m->key);
	if (!m->owner) {
		/* No connection of ours: a socket bound to the address or the wildcard (a UDP socket,
		 * a TCP listener), which for TCP takes only a connection's opening SYN, and a bare
		 * ACK (a SYN cookie's final ACK) once it has sent cookies. */
		if (ip.protocol == IPPROTO_TCP) {
			__u8 flags;
			if (load_bytes(skb, xdp, l4 + 13, &flags, sizeof(flags)) < 0)
				return 0;
			if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK | TCP_FLAG_RST)) == TCP_FLAG_ACK) {
				cookie_ack = 1;
				if (kernel_has_tcp(skb, where, m))
					return 0;
			} else if ((flags & (TCP_FLAG_SYN | TCP_FLAG_ACK)) != TCP_FLAG_SYN) {
				return 0;
			}
		}
		m->key.src_ip = 0;
		m->key.src_port = 0;
		m->owner = bpf_map_lookup_elem(&flows, &m->key);
		if (!m->owner && wildcard_destination(ip.daddr)) {
			m->key.dst_ip = 0;
			m->owner = bpf_map_lookup_elem(&flows, &m->key);
		}
	}
	if (!m->owner || (cookie_ack && !m->owner->cookies))
		return 0;
	if (frag & IP_MF) {
		struct frag_value fv = { .flow = m->key, .src_port = ports[0] };
		bpf_map_update_elem(&frags, &fk, &fv, BPF_ANY);
	}
	return 1;
}

static __always_inline int lookup(struct __sk_buff *skb, int where, struct match *m)
{
	return lookup_in(skb, where, m);
}

/* The destination of an IPv4 UDP datagram (its first fragment or whole) when it is a multicast
 * group, else 0; the destination port in *port. */
static __always_inline __u32 multicast_udp(struct __sk_buff *skb, __u16 *port)
{
	__u16 proto;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0 || proto != bpf_htons(ETH_P_IP))
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return 0;
	if (ip.version != 4 || ip.ihl < 5 || ip.protocol != IPPROTO_UDP || (bpf_ntohl(ip.daddr) >> 28) != 0xe)
		return 0;
	if (bpf_ntohs(ip.frag_off) & IP_OFFSET)
		return 0;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4 + 2, port, sizeof(*port)) < 0)
		return 0;
	return ip.daddr;
}

SEC("socket")
int exasock_sock(struct __sk_buff *skb)
{
	struct match m = {};
	__u16 port = 0;
	__u32 group = multicast_udp(skb, &port);

	/* A group is taken by every process that receives it on that port (its own set), never
	 * through the flows map's single owner. */
	if (group) {
		struct mcast_key k = { .group = group, .pid = OWNER_PID, .port = port };
		return bpf_map_lookup_elem(&mcast, &k) ? skb->len : 0;
	}

	/* A shared flow is the kernel's to deliver (tc lets it through). */
	if (lookup(skb, IN_SOCKET, &m) && m.owner->owner_pid == OWNER_PID && !m.owner->shared)
		return skb->len;
	return 0;
}

/* Whether a UDP flow's owner lives: a kernel socket still holds the flow's port (the owner
 * keeps one open for as long as it serves the flow), so none means the owner is gone and the
 * kernel must answer. */
static __always_inline int udp_owner_alive(struct __sk_buff *skb, struct match *m)
{
	struct bpf_sock_tuple t = {};
	struct bpf_sock *sk;

	t.ipv4.saddr = m->src_ip;
	t.ipv4.daddr = m->key.dst_ip;
	t.ipv4.sport = m->src_port;
	t.ipv4.dport = m->key.dst_port;
	if (!t.ipv4.daddr) {
		struct iphdr ip;
		if (bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
			return 0;
		t.ipv4.daddr = ip.daddr;
	}
	sk = bpf_sk_lookup_udp(skb, &t, sizeof(t.ipv4), BPF_F_CURRENT_NETNS, 0);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

/* Whether a TCP flow's owner lives: its anchor is still in `anchors` (the kernel removes it
 * when the last descriptor of the socket closes, at the owner's exit or kill). */
static __always_inline int anchor_alive(__u64 token)
{
	struct bpf_sock *sk;

	if (!token)
		return 0;
	sk = bpf_map_lookup_elem(&anchors, &token);
	if (!sk)
		return 0;
	bpf_sk_release(sk);
	return 1;
}

SEC("classifier")
int exasock_tc(struct __sk_buff *skb)
{
	struct match m = {};

	__u16 port;

	/* A copy the host looped back to itself (a broadcast or a group it sent) is for the
	 * host's sockets: the kernel delivers it (no ring sees looped frames). */
	if (skb->pkt_type == PACKET_LOOPBACK)
		return TC_ACT_OK;
	/* Multicast goes on to the kernel, which delivers it to its own members (none: it drops
	 * it before UDP); exasock's kernel sockets drop their copies (a filter on each). The
	 * processes that receive the group over AF_PACKET took it at their rings' taps. */
	if (multicast_udp(skb, &port))
		return TC_ACT_OK;
	/* A shared flow is the kernel's: it delivers among the port's sockets as Linux does. */
	if (!lookup(skb, IN_TC, &m) || m.owner->shared)
		return TC_ACT_OK;
	/* An ICMP error reaches the owner and the kernel both (the kernel has no socket for the
	 * connection and ignores it). */
	if (m.icmp)
		return TC_ACT_OK;
	if (m.owner->datapath == DATAPATH_AF_XDP) {
		/* XDP did not redirect this frame of a flow served over AF_XDP: SKB-mode XDP skips
		 * frames that another device's tc redirected here (skb_is_redirected), and a queue
		 * may have no XSK for a moment. While the owner lives, the kernel must not answer a
		 * segment of its connection (its RST would end it): dropped and counted, and TCP
		 * retransmits it. A UDP datagram goes on to the owner's kernel socket, which the
		 * owner reads too. */
		if (m.key.proto == IPPROTO_TCP && anchor_alive(m.owner->token)) {
			__u32 zero = 0;
			__u64 *missed = bpf_map_lookup_elem(&xdp_missed, &zero);
			if (missed)
				*missed += 1;
			return TC_ACT_SHOT;
		}
		return TC_ACT_OK;
	}
	if (m.owner->datapath != DATAPATH_AF_PACKET)
		return TC_ACT_OK;
	if (m.key.proto == IPPROTO_TCP)
		return anchor_alive(m.owner->token) ? TC_ACT_SHOT : TC_ACT_OK;
	return udp_owner_alive(skb, &m) ? TC_ACT_SHOT : TC_ACT_OK;
}

SEC("xdp")
int exasock_xdp(struct xdp_md *ctx)
{
	struct match m = {};
	__u32 zero = 0;
	__u64 *owner;

	/* A shared flow, or one served over AF_PACKET, is left to the kernel (and tc). */
	if (!lookup_in(ctx, IN_XDP, &m) || m.owner->datapath != DATAPATH_AF_XDP || m.owner->shared)
		return XDP_PASS;
	/* A group reached through a wildcard flow goes to the owner's XSK only when the owner
	 * joined it on that port (its `mcast` entry); any other group is the kernel's, which
	 * delivers it to the host's members (source-specific ones, IP_MULTICAST_ALL sockets). A
	 * flow for the group itself (a socket bound to it) takes it. */
	if (m.key.dst_ip == 0 && (bpf_ntohl(m.dst_ip) >> 28) == 0xe) {
		struct mcast_key k = { .group = m.dst_ip, .pid = m.owner->owner_pid, .port = m.key.dst_port };
		if (!bpf_map_lookup_elem(&mcast, &k))
			return XDP_PASS;
	}
	/* Only the flows of the process whose sockets are bound: a dead owner's entries (its
	 * successor's XSKs are in the map) go to the kernel, which answers them. */
	owner = bpf_map_lookup_elem(&xsk_owner, &zero);
	if (!owner || *owner != m.owner->token)
		return XDP_PASS;
	/* No XSK on this queue (the owner died and the kernel removed it): XDP_PASS. */
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}
