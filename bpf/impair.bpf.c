// SPDX-License-Identifier: GPL-2.0
/* Link impairment for the testbed: drops, duplicates and reorders frames at configured rates on
 * one veth, ingress and egress independently. Test support only: nothing in the product loads it.
 *
 * Randomness: the n-th frame a direction examines draws splitmix64(seed, n), with n taken by an
 * atomic counter, so the same seed and the same traffic give the same decisions (bpf_get_prandom
 * cannot be seeded).
 *
 * Duplication: bpf_clone_redirect to the same interface and direction. The clone carries
 * IMPAIR_MARK so that this program lets it through untouched when it comes round again.
 *
 * Reordering: a frame chosen for it is copied into a per-direction slot and dropped; the next
 * frame of that direction that is compatible with it (IPv4, same IP protocol and header length,
 * neither a GSO frame, so the kernel's checksum and offload metadata stay valid) carries it: the
 * carrier goes first, the held frame right after it. A held frame therefore waits for the next
 * compatible frame, however long that takes: a frame left in the slot when traffic stops is
 * delivered by the next one (TCP's retransmission provides one). On egress the clone leaves
 * before the original, so the carrier is cloned and the skb rewritten to the held frame; on
 * ingress a clone is queued behind the current frame, so the skb is rewritten to the held
 * frame, cloned, and restored to the carrier.
 *
 * Filters choose which frames may be impaired: an ethertype, an IP protocol, a length range, and
 * whether pure TCP ACKs (no payload, no SYN/FIN/RST) are spared. Frames outside the filter pass
 * untouched and draw nothing. */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/tcp.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>

char LICENSE[] SEC("license") = "GPL";

#define IMPAIR_MARK 0x1e5a11e5
#define HELD_MAX 10240
#define PPM 1000000

#define DIR_INGRESS 0
#define DIR_EGRESS 1

/* Shared with crates/testbed/src/impair.rs (ImpairConfig). */
struct impair_config {
	__u64 seed;
	__u32 loss_ppm;
	__u32 dup_ppm;
	__u32 reorder_ppm;
	__u32 min_len;       /* frames shorter than this pass untouched */
	__u32 max_len;       /* 0: no limit */
	__u16 ethertype;     /* host order; 0: any */
	__u8 ip_proto;       /* 0: any (IPv4 frames only when set) */
	__u8 spare_pure_acks;
};

/* Shared with crates/testbed/src/impair.rs (ImpairStats). */
struct impair_stats {
	__u64 draws;      /* frames that passed the filter (the PRNG's counter) */
	__u64 seen;       /* frames examined, our own clones excluded */
	__u64 dropped;
	__u64 duplicated;
	__u64 reordered;  /* held frames delivered after a later one */
	__u64 held_over;  /* frames chosen for reordering that stayed in order (slot busy, too big) */
};

#define SLOT_EMPTY 0
#define SLOT_BUSY 1
#define SLOT_FULL 2

struct held_frame {
	__u64 state; /* SLOT_*; 64 bits for the atomic compare-and-swap */
	__u32 len;
	__u32 key;  /* compatibility: IP protocol << 8 | IHL */
	__u8 data[HELD_MAX];
};

struct scratch {
	__u8 data[HELD_MAX];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct impair_config);
} impair_config SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct impair_stats);
} impair_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 2);
	__type(key, __u32);
	__type(value, struct held_frame);
} impair_held SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct scratch);
} impair_scratch SEC(".maps");

static __always_inline __u64 splitmix64(__u64 x)
{
	x += 0x9e3779b97f4a7c15ULL;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

/* A draw in [0, PPM) for decision `which` of frame `n`. */
static __always_inline __u32 draw(__u64 seed, __u64 n, __u32 which)
{
	return splitmix64(seed ^ splitmix64(n * 4 + which)) % PPM;
}

struct frame_info {
	__u16 ethertype;
	__u8 is_ipv4;
	__u8 ip_proto;
	__u8 ihl;
	__u8 pure_ack;
};

static __always_inline void inspect(struct __sk_buff *skb, struct frame_info *f)
{
	__u16 proto;
	struct iphdr ip;

	if (bpf_skb_load_bytes(skb, 12, &proto, sizeof(proto)) < 0)
		return;
	f->ethertype = bpf_ntohs(proto);
	if (f->ethertype != ETH_P_IP || bpf_skb_load_bytes(skb, ETH_HLEN, &ip, sizeof(ip)) < 0)
		return;
	if (ip.version != 4 || ip.ihl < 5)
		return;
	f->is_ipv4 = 1;
	f->ip_proto = ip.protocol;
	f->ihl = ip.ihl;
	if (ip.protocol != IPPROTO_TCP || (bpf_ntohs(ip.frag_off) & 0x1fff))
		return;
	struct tcphdr tcp;
	if (bpf_skb_load_bytes(skb, ETH_HLEN + ip.ihl * 4, &tcp, sizeof(tcp)) < 0)
		return;
	__u32 headers = ip.ihl * 4 + tcp.doff * 4;
	f->pure_ack = tcp.ack && !tcp.syn && !tcp.fin && !tcp.rst && bpf_ntohs(ip.tot_len) <= headers;
}

static __always_inline int selected(struct __sk_buff *skb, const struct impair_config *c, const struct frame_info *f)
{
	if (skb->len < c->min_len || (c->max_len && skb->len > c->max_len))
		return 0;
	if (c->ethertype && f->ethertype != c->ethertype)
		return 0;
	if (c->ip_proto && (!f->is_ipv4 || f->ip_proto != c->ip_proto))
		return 0;
	if (c->spare_pure_acks && f->pure_ack)
		return 0;
	return 1;
}

/* The frame can be held, or carry a held frame of compatibility `key`. */
static __always_inline __u32 reorder_key(struct __sk_buff *skb, const struct frame_info *f)
{
	if (!f->is_ipv4 || skb->gso_size || skb->len > HELD_MAX)
		return 0;
	return ((__u32)f->ip_proto << 8) | f->ihl | 0x10000;
}

/* Rewrites the skb's bytes to `len` bytes of `data`. */
static __always_inline int rewrite(struct __sk_buff *skb, __u8 *data, __u32 len)
{
	if (len < ETH_HLEN || len > HELD_MAX)
		return -1;
	if (bpf_skb_change_tail(skb, len, 0) < 0)
		return -1;
	return bpf_skb_store_bytes(skb, 0, data, len, 0);
}

/* Emits the held frame after the current one (see the file comment). Returns 0 on success. */
static __always_inline int release(struct __sk_buff *skb, struct held_frame *h, __u32 dir)
{
	__u32 len = h->len;
	if (len < ETH_HLEN || len > HELD_MAX)
		return -1;
	if (dir == DIR_EGRESS) {
		skb->mark = IMPAIR_MARK;
		bpf_clone_redirect(skb, skb->ifindex, 0);
		skb->mark = 0;
		return rewrite(skb, h->data, len);
	}
	__u32 zero = 0;
	struct scratch *s = bpf_map_lookup_elem(&impair_scratch, &zero);
	__u32 own = skb->len;
	if (!s || own < ETH_HLEN || own > HELD_MAX)
		return -1;
	if (bpf_skb_load_bytes(skb, 0, s->data, own) < 0)
		return -1;
	if (rewrite(skb, h->data, len) < 0)
		return -1;
	skb->mark = IMPAIR_MARK;
	bpf_clone_redirect(skb, skb->ifindex, BPF_F_INGRESS);
	skb->mark = 0;
	return rewrite(skb, s->data, own);
}

/* How a frame leaves without going on. At egress a drop (TC_ACT_SHOT) tells the sender that
 * the transmit failed (NET_XMIT_DROP): the kernel's TCP then does not count the segment as
 * sent, leaves SND.NXT behind it and sends it again as new data, so a "lost" segment was never
 * lost, and a held one, delivered later, reaches the receiver beyond the sender's SND.NXT: the
 * receiver's ACK acknowledges unsent data, the sender drops every such ACK and the connection
 * stalls for good. A loss on the wire reports success: a redirect does (the kernel answers
 * NET_XMIT_SUCCESS for it whatever becomes of the frame), and one to ifindex 0, which no
 * device has, frees the frame. (TC_ACT_STOLEN would too under cls_bpf, but tcx, which the
 * loader uses on current kernels, takes it for "next program" and lets the frame through.) */
static __always_inline int gone(__u32 dir)
{
	return dir == DIR_EGRESS ? bpf_redirect(0, 0) : TC_ACT_SHOT;
}

static __always_inline int impair(struct __sk_buff *skb, __u32 dir)
{
	if (skb->mark == IMPAIR_MARK) {
		skb->mark = 0;
		return TC_ACT_OK;
	}
	struct impair_config *c = bpf_map_lookup_elem(&impair_config, &dir);
	struct impair_stats *st = bpf_map_lookup_elem(&impair_stats, &dir);
	struct held_frame *h = bpf_map_lookup_elem(&impair_held, &dir);
	if (!c || !st || !h)
		return TC_ACT_OK;
	__sync_fetch_and_add(&st->seen, 1);

	struct frame_info f = {};
	inspect(skb, &f);
	__u32 key = reorder_key(skb, &f);
	int chosen_for_reorder = 0;

	if (selected(skb, c, &f)) {
		__u64 n = __sync_fetch_and_add(&st->draws, 1);
		if (draw(c->seed, n, 0) < c->loss_ppm) {
			__sync_fetch_and_add(&st->dropped, 1);
			return gone(dir);
		}
		chosen_for_reorder = draw(c->seed, n, 2) < c->reorder_ppm;
		if (draw(c->seed, n, 1) < c->dup_ppm) {
			skb->mark = IMPAIR_MARK;
			bpf_clone_redirect(skb, skb->ifindex, dir == DIR_INGRESS ? BPF_F_INGRESS : 0);
			skb->mark = 0;
			__sync_fetch_and_add(&st->duplicated, 1);
			/* Its copy already went in order: holding it back would reorder nothing. */
			if (chosen_for_reorder)
				__sync_fetch_and_add(&st->held_over, 1);
			chosen_for_reorder = 0;
		}
	}

	/* This frame carries a held one. */
	if (key && h->state == SLOT_FULL && h->key == key &&
	    __sync_val_compare_and_swap(&h->state, SLOT_FULL, SLOT_BUSY) == SLOT_FULL) {
		if (chosen_for_reorder)
			__sync_fetch_and_add(&st->held_over, 1);
		int err = release(skb, h, dir);
		h->state = SLOT_EMPTY;
		if (err < 0)
			return gone(dir); /* the skb is neither frame any more */
		__sync_fetch_and_add(&st->reordered, 1);
		return TC_ACT_OK;
	}

	if (chosen_for_reorder) {
		__u32 len = skb->len;
		if (key && len >= ETH_HLEN && len <= HELD_MAX &&
		    __sync_val_compare_and_swap(&h->state, SLOT_EMPTY, SLOT_BUSY) == SLOT_EMPTY) {
			if (bpf_skb_load_bytes(skb, 0, h->data, len) == 0) {
				h->len = len;
				h->key = key;
				h->state = SLOT_FULL;
				return gone(dir);
			}
			h->state = SLOT_EMPTY;
		}
		__sync_fetch_and_add(&st->held_over, 1);
	}
	return TC_ACT_OK;
}

SEC("classifier")
int impair_ingress(struct __sk_buff *skb)
{
	return impair(skb, DIR_INGRESS);
}

SEC("classifier")
int impair_egress(struct __sk_buff *skb)
{
	return impair(skb, DIR_EGRESS);
}
