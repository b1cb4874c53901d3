/* SPDX-License-Identifier: MIT */
/*
 * xvs decap: the real-server side of TUN forwarding, for kernels without the ipip, fou or ip_gre
 * modules (`xvs decap attach IFACE`). On packets arriving on the interface it strips what the
 * director put in front of the client's packet:
 *   - IPIP (IPv4 protocol / IPv6 next header 4) and 6in4 / 6in6 (41);
 *   - GUE: UDP to one of the ports in `gue_ports` (6080 unless told otherwise), GUE version 0,
 *     a data message (C clear) with no optional fields but those the header length skips and
 *     no flags, carrying IPv4 (4) or IPv6 (41);
 *   - GRE version 0 with no flag but C (checksum present), carrying IPv4 or IPv6;
 * and hands the inner packet to the stack (XDP_PASS, with an Ethernet header for its family),
 * which delivers it to the VIP held on `lo`, as in DR. The ECN field is decapsulated as the
 * kernel's tunnels do (RFC 6040): CE outside and ECT inside marks the inner packet CE; CE
 * outside and not-ECT inside is dropped (INET_ECN_decapsulate returning 2).
 *
 * Only packets for this host are opened: a FIB lookup on the outer destination must say "local"
 * (or "this host does not forward"), so transit tunnel traffic is never turned into something
 * else. Anything not understood is passed untouched to the kernel (which drops it, having no
 * tunnel modules) and counted. Checksums of the outer UDP / GRE header are not verified (the
 * inner packet carries its own); a fragmented outer packet cannot be opened here and is passed.
 * Shape learned from Katran's decap program (decap.bpf.c); written for xvs.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_common.h"

#ifndef AF_INET
#define AF_INET 2
#endif
#ifndef AF_INET6
#define AF_INET6 10
#endif

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_DECAP_MAX_GUE_PORTS);
	__type(key, __u16);	/* UDP port, network order */
	__type(value, __u32);
} gue_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_DECAP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} decap_stats SEC(".maps");

struct udp_gue {
	__u16 sport;
	__u16 dport;
	__u16 len;
	__u16 check;
	__u8 hlen_flags; /* version (2 bits), C, hlen (5 bits, 4-byte words of optional fields) */
	__u8 proto_ctype;
	__u16 flags;
};

struct gre_base {
	__u16 flags;
	__u16 proto;
};

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&decap_stats, &idx);
	if (c)
		*c += 1;
	return action;
}

/* Is the outer destination this host (or does this host not forward at all)? */
static __always_inline int for_this_host(struct xdp_md *ctx, int v6, void *outer)
{
	struct bpf_fib_lookup fib = {};
	fib.ifindex = ctx->ingress_ifindex;
	if (v6) {
		struct ipv6hdr *ip6 = outer;
		fib.family = AF_INET6;
		__builtin_memcpy(fib.ipv6_src, &ip6->saddr, 16);
		__builtin_memcpy(fib.ipv6_dst, &ip6->daddr, 16);
		fib.l4_protocol = ip6->nexthdr;
		fib.tot_len = bpf_ntohs(ip6->payload_len) + sizeof(*ip6);
	} else {
		struct iphdr *ip = outer;
		fib.family = AF_INET;
		fib.ipv4_src = ip->saddr;
		fib.ipv4_dst = ip->daddr;
		fib.l4_protocol = ip->protocol;
		fib.tot_len = bpf_ntohs(ip->tot_len);
	}
	long rc = bpf_fib_lookup(ctx, &fib, sizeof(fib), 0);
	return rc == BPF_FIB_LKUP_RET_NOT_FWDED || rc == BPF_FIB_LKUP_RET_FWD_DISABLED;
}

/*
 * RFC 6040 decapsulation of the ECN field into the inner header at `in` (`inner_v6`), given the
 * outer DS field. Returns 0 to go on, -1 to drop (CE outside, not-ECT inside).
 */
static __always_inline int ecn_decap(__u8 outer_ds, int inner_v6, void *in, void *end)
{
	if ((outer_ds & 3) != 3)
		return 0;
	if (inner_v6) {
		struct ipv6hdr *i6 = in;
		if ((void *)(i6 + 1) > end)
			return -1;
		__u8 tc = (i6->priority << 4) | (i6->flow_lbl[0] >> 4);
		if ((tc & 3) == 0)
			return -1;
		i6->flow_lbl[0] |= 0x30; /* the ECN bits are the top two bits of flow_lbl[0]'s high nibble */
		return 0;
	}
	struct iphdr *i4 = in;
	if ((void *)(i4 + 1) > end)
		return -1;
	if ((i4->tos & 3) == 0)
		return -1;
	if ((i4->tos & 3) != 3) {
		/* IP_ECN_set_ce: tos |= 3, checksum updated as RFC 1624 (HC' = ~(~HC + ~m + m')) */
		__u16 old = bpf_htons((__u16)(i4->version << 12 | i4->ihl << 8 | i4->tos));
		i4->tos |= 3;
		__u16 new = bpf_htons((__u16)(i4->version << 12 | i4->ihl << 8 | i4->tos));
		__u32 sum = (__u16)~i4->check;
		sum += (__u16)~old;
		sum += new;
		sum = (sum & 0xffff) + (sum >> 16);
		sum = (sum & 0xffff) + (sum >> 16);
		i4->check = (__u16)~sum;
	}
	return 0;
}

SEC("xdp")
int xvs_decap(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(XVS_DECAP_PASS, XDP_PASS);
	void *l3 = eth + 1;
	int v6;
	__u8 proto, outer_ds;
	void *x; /* first byte after the outer IP header */
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = l3;
		if ((void *)(ip + 1) > end || ip->ihl < 5)
			return count(XVS_DECAP_PASS, XDP_PASS);
		proto = ip->protocol;
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6 && proto != IPPROTO_GRE && proto != IPPROTO_UDP)
			return count(XVS_DECAP_PASS, XDP_PASS);
		if (ip->frag_off & bpf_htons(0x3fff))
			return count(XVS_DECAP_FRAGMENT, XDP_PASS);
		v6 = 0;
		outer_ds = ip->tos;
		x = l3 + ip->ihl * 4;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = l3;
		if ((void *)(ip6 + 1) > end)
			return count(XVS_DECAP_PASS, XDP_PASS);
		proto = ip6->nexthdr;
		if (proto != IPPROTO_IPIP && proto != IPPROTO_IPV6 && proto != IPPROTO_GRE && proto != IPPROTO_UDP)
			return count(XVS_DECAP_PASS, XDP_PASS);
		v6 = 1;
		outer_ds = (ip6->priority << 4) | (ip6->flow_lbl[0] >> 4);
		x = ip6 + 1;
	} else {
		return count(XVS_DECAP_PASS, XDP_PASS);
	}

	int inner_v6, kind;
	void *in;
	if (proto == IPPROTO_IPIP || proto == IPPROTO_IPV6) {
		inner_v6 = proto == IPPROTO_IPV6;
		kind = XVS_DECAP_IPIP;
		in = x;
	} else if (proto == IPPROTO_GRE) {
		struct gre_base *g = x;
		if ((void *)(g + 1) > end)
			return count(XVS_DECAP_BAD_GRE, XDP_PASS);
		/* version 0, no routing, key, sequence or recursion: only C, as ipvs_gre_encap sends */
		if (g->flags & ~bpf_htons(0x8000))
			return count(XVS_DECAP_BAD_GRE, XDP_PASS);
		if (g->proto == bpf_htons(ETH_P_IP))
			inner_v6 = 0;
		else if (g->proto == bpf_htons(ETH_P_IPV6))
			inner_v6 = 1;
		else
			return count(XVS_DECAP_BAD_GRE, XDP_PASS);
		kind = XVS_DECAP_GRE;
		in = (void *)(g + 1) + (g->flags ? 4 : 0);
	} else {
		struct udp_gue *u = x;
		if ((void *)u + 4 > end)
			return count(XVS_DECAP_PASS, XDP_PASS);
		__u16 port = u->dport;
		if (!bpf_map_lookup_elem(&gue_ports, &port))
			return count(XVS_DECAP_PASS, XDP_PASS);
		if ((void *)(u + 1) > end)
			return count(XVS_DECAP_BAD_GUE, XDP_PASS);
		/* version 0 data message; optional fields are only skipped when no flag asks for them */
		if ((u->hlen_flags & 0xe0) != 0 || u->flags != 0)
			return count(XVS_DECAP_BAD_GUE, XDP_PASS);
		if (u->proto_ctype == IPPROTO_IPIP)
			inner_v6 = 0;
		else if (u->proto_ctype == IPPROTO_IPV6)
			inner_v6 = 1;
		else
			return count(XVS_DECAP_BAD_GUE, XDP_PASS);
		kind = XVS_DECAP_GUE;
		in = (void *)(u + 1) + ((u->hlen_flags & 0x1f) << 2);
	}

	/* the inner packet must be what the tunnel header says */
	if (inner_v6) {
		struct ipv6hdr *i6 = in;
		if ((void *)(i6 + 1) > end || i6->version != 6)
			return count(XVS_DECAP_MALFORMED, XDP_DROP);
	} else {
		struct iphdr *i4 = in;
		if ((void *)(i4 + 1) > end || i4->version != 4 || i4->ihl < 5)
			return count(XVS_DECAP_MALFORMED, XDP_DROP);
	}
	if (!for_this_host(ctx, v6, l3))
		return count(XVS_DECAP_NOT_LOCAL, XDP_PASS);
	if (ecn_decap(outer_ds, inner_v6, in, end) < 0)
		return count(XVS_DECAP_ECN_DROP, XDP_DROP);

	/* move the Ethernet addresses up to the inner packet, then drop what lies before */
	unsigned char dst[ETH_ALEN], src[ETH_ALEN];
	__builtin_memcpy(dst, eth->h_dest, ETH_ALEN);
	__builtin_memcpy(src, eth->h_source, ETH_ALEN);
	int strip = (int)(in - l3);
	if (bpf_xdp_adjust_head(ctx, strip))
		return count(XVS_DECAP_MALFORMED, XDP_DROP);
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	eth = data;
	if ((void *)(eth + 1) > end)
		return count(XVS_DECAP_MALFORMED, XDP_DROP);
	__builtin_memcpy(eth->h_dest, dst, ETH_ALEN);
	__builtin_memcpy(eth->h_source, src, ETH_ALEN);
	eth->h_proto = inner_v6 ? bpf_htons(ETH_P_IPV6) : bpf_htons(ETH_P_IP);
	return count(kind, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
