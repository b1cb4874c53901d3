/* SPDX-License-Identifier: MIT */
/*
 * xvs steering program: redirect into the AF_XDP socket of this rx queue only the packets the
 * balancer owns, and XDP_PASS everything else to the kernel untouched.
 *
 * Ours:
 *  - client packets to a virtual service (proto, VIP, port), or to a port-0 service on that VIP;
 *  - non-first IPv4 fragments and IPv6 packets with extension headers to a VIP address (the
 *    TS fast path decides what to do with them and counts it);
 *  - replies from a NAT real server (proto, RIP, port) to an address that is not the director's own
 *    (replies to the director itself, e.g. health checks, stay with the kernel);
 *  - ICMP errors about a packet from a VIP, to a NAT real server, or about one of our tunnel
 *    packets (icmp_error_about).
 * This program never rewrites packets; all decisions beyond "ours or not" are made in TS.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_common.h"

/* linux/icmp.h drags in libc headers that do not build for -target bpf: spell out what we use. */
#define ICMP_DEST_UNREACH 3
#define ICMP_SOURCE_QUENCH 4
#define ICMP_TIME_EXCEEDED 11
struct icmphdr {
	__u8 type;
	__u8 code;
	__u16 checksum;
	__u32 rest;
};
struct icmp6hdr {
	__u8 icmp6_type;
	__u8 icmp6_code;
	__u16 icmp6_cksum;
	__u32 rest;
};

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, XVS_XSK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} xsks SEC(".maps");

/* ifindex -> first XSKMAP slot of that interface; slot = base + rx queue */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
} if_slots SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_VIPS);
	__type(key, struct xvs_l4_key);
	__type(value, __u32);
} vips SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_VIP_ADDRS);
	__type(key, struct xvs_addr_key);
	__type(value, __u32);
} vip_addrs SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_NAT_REALS);
	__type(key, struct xvs_l4_key);
	__type(value, __u32);
} nat_reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_MAX_LOCAL_ADDRS);
	__type(key, struct xvs_addr_key);
	__type(value, __u32);
} local_addrs SEC(".maps");

/*
 * Hold mode (restarts, src/dataplane/restart.ts): while no xvs socket is on a queue, packets we own
 * would pass to the kernel, which owns the VIP and answers a held connection's packets with a
 * RST. Until `until_ns` (bpf_ktime_get_boot_ns) they are dropped instead, and counted, so that
 * TCP retransmits them to the xvs that starts next. One entry: {u64 until_ns; u64 drops}.
 */
struct xvs_hold {
	__u64 until_ns;
	__u64 drops;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_hold);
} hold SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_XDP_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} xdp_stats SEC(".maps");

static __always_inline int count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&xdp_stats, &idx);
	if (c)
		*c += 1;
	return action;
}

/* the `hold` entry while hold mode lasts, else NULL */
static __always_inline struct xvs_hold *holding(void)
{
	__u32 zero = 0;
	struct xvs_hold *h = bpf_map_lookup_elem(&hold, &zero);
	return h && h->until_ns && bpf_ktime_get_boot_ns() < h->until_ns ? h : 0;
}

static __always_inline int redirect(struct xdp_md *ctx)
{
	__u32 ifindex = ctx->ingress_ifindex;
	__u32 *base = bpf_map_lookup_elem(&if_slots, &ifindex);
	/* a queue past XVS_MAX_QUEUES has no slot of its own (its number would reach into the next
	 * interface's slots, whose socket the kernel refuses for this queue): xvs warned at start */
	if (!base || ctx->rx_queue_index >= XVS_MAX_QUEUES)
		return count(XVS_XDP_PASS_NO_SOCKET, XDP_PASS);
	__u32 slot = *base + ctx->rx_queue_index;
	/* With no socket in the slot, the flags argument is the action: pass to the kernel. */
	int rc = bpf_redirect_map(&xsks, slot, XDP_PASS);
	if (rc == XDP_REDIRECT)
		return count(XVS_XDP_REDIRECT, rc);
	/* no socket: in hold mode (an xvs restarting) drop, so the sender retransmits */
	struct xvs_hold *h = holding();
	if (h) {
		__sync_fetch_and_add(&h->drops, 1);
		return XDP_DROP;
	}
	return count(XVS_XDP_PASS_NO_SOCKET, rc);
}

static __always_inline int is_vip(__u8 family, const __u32 *addr, __u8 proto, __u16 port)
{
	struct xvs_l4_key k = {};
	k.family = family;
	k.proto = proto;
	k.port = port;
	k.addr[0] = addr[0];
	if (family == XVS_FAMILY_V6) {
		k.addr[1] = addr[1];
		k.addr[2] = addr[2];
		k.addr[3] = addr[3];
	}
	if (bpf_map_lookup_elem(&vips, &k))
		return 1;
	k.port = 0; /* port-0 (all ports) persistent services */
	return bpf_map_lookup_elem(&vips, &k) != 0;
}

static __always_inline int is_addr_in(void *map, __u8 family, const __u32 *addr)
{
	struct xvs_addr_key k = {};
	k.family = family;
	k.addr[0] = addr[0];
	if (family == XVS_FAMILY_V6) {
		k.addr[1] = addr[1];
		k.addr[2] = addr[2];
		k.addr[3] = addr[3];
	}
	return bpf_map_lookup_elem(map, &k) != 0;
}

/*
 * Is (addr, port) a NAT real server of protocol `proto`? An exact entry says so; the entry of
 * port 0 stands for every port when its value carries XVS_NAT_REAL_ANY_PORT (real servers of
 * port-0 services answer from any port). `any_entry` also accepts a plain port-0 entry (written
 * for every NAT real server): non-first fragments have no ports at all.
 */
static __always_inline int nat_real_lookup(__u8 family, const __u32 *addr, __u8 proto, __u16 port, int any_entry)
{
	struct xvs_l4_key k = {};
	k.family = family;
	k.proto = proto;
	k.port = port;
	k.addr[0] = addr[0];
	if (family == XVS_FAMILY_V6) {
		k.addr[1] = addr[1];
		k.addr[2] = addr[2];
		k.addr[3] = addr[3];
	}
	if (port != 0 && bpf_map_lookup_elem(&nat_reals, &k))
		return 1;
	k.port = 0;
	__u32 *v = bpf_map_lookup_elem(&nat_reals, &k);
	return v && (any_entry || (*v & XVS_NAT_REAL_ANY_PORT));
}

static __always_inline int is_nat_real(__u8 family, const __u32 *addr, __u8 proto, __u16 port)
{
	return nat_real_lookup(family, addr, proto, port, 0);
}

/* Ports of a TCP/UDP/SCTP header at l4 (all three start with sport, dport). */
struct ports {
	__u16 sport;
	__u16 dport;
};

/*
 * Decide for a packet whose addresses and L4 header start are known. `l4` may point anywhere;
 * it is bounds-checked here. Returns 1 when the packet is ours.
 */
static __always_inline int owned(__u8 family, const __u32 *saddr, const __u32 *daddr, __u8 proto,
				 void *l4, void *end)
{
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
		return 0;
	struct ports *p = l4;
	if ((void *)(p + 1) > end)
		return 0;
	if (is_vip(family, daddr, proto, p->dport))
		return 1;
	if (is_nat_real(family, saddr, proto, p->sport) && !is_addr_in(&local_addrs, family, daddr))
		return 1;
	return 0;
}

/* Is the IP packet at `x` (IPv4 if !v6) a client packet to a virtual service? */
static __always_inline int client_to_vip(int v6, void *x, void *end)
{
	if (v6) {
		struct ipv6hdr *i6 = x;
		if ((void *)(i6 + 1) > end || i6->version != 6)
			return 0;
		struct ports *p = (void *)(i6 + 1);
		if ((void *)(p + 1) > end)
			return 0;
		return is_vip(XVS_FAMILY_V6, i6->daddr.in6_u.u6_addr32, i6->nexthdr, p->dport);
	}
	struct iphdr *i4 = x;
	if ((void *)(i4 + 1) > end || i4->version != 4 || i4->ihl != 5)
		return 0;
	struct ports *p = (void *)(i4 + 1);
	if ((void *)(p + 1) > end)
		return 0;
	return is_vip(XVS_FAMILY_V4, &i4->daddr, i4->protocol, p->dport);
}

/* GRE base header and GUE header (with the UDP header before it) as xvs sends them. */
struct gre_base {
	__u16 flags;
	__u16 proto;
};
struct gue_udp {
	__u16 sport;
	__u16 dport;
	__u16 len;
	__u16 check;
	__u8 hlen_flags;  /* version (2 bits), C, hlen (5 bits, in words) */
	__u8 proto_ctype;
	__u16 flags;
};

/*
 * Is the payload at `x` of a packet of protocol `proto` one of our tunnel encapsulations (IPIP,
 * 6in4/6in6, GRE version 0 with no flag but C, GUE version 0 data) of a client packet to a VIP?
 * The caller has checked that the outer packet came from one of our addresses.
 */
static __always_inline int tunnel_to_vip(__u8 proto, void *x, void *end)
{
	if (proto == IPPROTO_IPIP)
		return client_to_vip(0, x, end);
	if (proto == IPPROTO_IPV6)
		return client_to_vip(1, x, end);
	if (proto == IPPROTO_GRE) {
		struct gre_base *g = x;
		if ((void *)(g + 1) > end || (g->flags & ~bpf_htons(0x8000)) != 0)
			return 0;
		void *in = (void *)(g + 1) + (g->flags ? 4 : 0);
		if (g->proto == bpf_htons(ETH_P_IP))
			return client_to_vip(0, in, end);
		if (g->proto == bpf_htons(ETH_P_IPV6))
			return client_to_vip(1, in, end);
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		struct gue_udp *u = x;
		if ((void *)(u + 1) > end || (u->hlen_flags & 0xe0) != 0)
			return 0;
		void *in = (void *)(u + 1) + ((u->hlen_flags & 0x1f) << 2);
		if (u->proto_ctype == IPPROTO_IPIP)
			return client_to_vip(0, in, end);
		if (u->proto_ctype == IPPROTO_IPV6)
			return client_to_vip(1, in, end);
	}
	return 0;
}

/*
 * An ICMP error is ours (ip_vs_in_icmp / ip_vs_out_icmp) when the packet it quotes is
 *  - from a VIP:port (a NAT reply, or a DR/TUN real server's direct reply; the error came from
 *    the client's side and goes to the real server),
 *  - to a NAT real server's address:port (a request we translated; the error came from the real
 *    server's side and goes to the client), or
 *  - one of our IPIP/GUE/GRE packets (sent from one of our addresses) carrying a client packet
 *    to a VIP (the path towards a TUN real server is too narrow, or broken).
 * Errors about client packets *to* a VIP are not: a DR real server's own errors to a client
 * routed through the director are forwarded by its kernel.
 */
static __always_inline int icmp_error_about(int v6, void *in, void *end)
{
	if (v6) {
		struct ipv6hdr *i6 = in;
		if ((void *)(i6 + 1) > end)
			return 0;
		__u8 nh = i6->nexthdr;
		if (nh == IPPROTO_TCP || nh == IPPROTO_UDP || nh == IPPROTO_SCTP) {
			struct ports *p = (void *)(i6 + 1);
			if ((void *)(p + 1) > end)
				return 0;
			if (is_vip(XVS_FAMILY_V6, i6->saddr.in6_u.u6_addr32, nh, p->sport) ||
			    is_nat_real(XVS_FAMILY_V6, i6->daddr.in6_u.u6_addr32, nh, p->dport))
				return 1;
		}
		if (!is_addr_in(&local_addrs, XVS_FAMILY_V6, i6->saddr.in6_u.u6_addr32))
			return 0;
		return tunnel_to_vip(nh, (void *)(i6 + 1), end);
	}
	struct iphdr *i4 = in;
	if ((void *)(i4 + 1) > end || i4->ihl != 5)
		return 0;
	if (i4->protocol == IPPROTO_TCP || i4->protocol == IPPROTO_UDP || i4->protocol == IPPROTO_SCTP) {
		struct ports *p = (void *)(i4 + 1);
		if ((void *)(p + 1) > end)
			return 0;
		if (is_vip(XVS_FAMILY_V4, &i4->saddr, i4->protocol, p->sport) ||
		    is_nat_real(XVS_FAMILY_V4, &i4->daddr, i4->protocol, p->dport))
			return 1;
	}
	if (!is_addr_in(&local_addrs, XVS_FAMILY_V4, &i4->saddr))
		return 0;
	return tunnel_to_vip(i4->protocol, (void *)(i4 + 1), end);
}

static __always_inline int icmp4_error_owned(struct iphdr *outer, void *l4, void *end)
{
	struct icmphdr *ic = l4;
	if ((void *)(ic + 1) > end)
		return 0;
	if (ic->type != ICMP_DEST_UNREACH && ic->type != ICMP_TIME_EXCEEDED &&
	    ic->type != ICMP_SOURCE_QUENCH)
		return 0;
	return icmp_error_about(0, (void *)(ic + 1), end);
}

static __always_inline int steer_v4(struct xdp_md *ctx, void *l3, void *end)
{
	struct iphdr *ip = l3;
	if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
		return count(XVS_XDP_PASS_MALFORMED, XDP_PASS);
	void *l4 = l3 + ip->ihl * 4;
	__u16 frag = bpf_ntohs(ip->frag_off) & 0x1fff;
	if (frag != 0) {
		/* no L4 header: ours if it goes to one of our virtual addresses, or comes from a NAT
		 * real server to an address not ours (the later fragments of a reply) */
		if (is_addr_in(&vip_addrs, XVS_FAMILY_V4, &ip->daddr))
			return redirect(ctx);
		if (nat_real_lookup(XVS_FAMILY_V4, &ip->saddr, ip->protocol, 0, 1) &&
		    !is_addr_in(&local_addrs, XVS_FAMILY_V4, &ip->daddr))
			return redirect(ctx);
		return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
	}
	if (ip->protocol == IPPROTO_ICMP) {
		if (icmp4_error_owned(ip, l4, end))
			return redirect(ctx);
		return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
	}
	if (owned(XVS_FAMILY_V4, &ip->saddr, &ip->daddr, ip->protocol, l4, end))
		return redirect(ctx);
	return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
}

static __always_inline int steer_v6(struct xdp_md *ctx, void *l3, void *end)
{
	struct ipv6hdr *ip6 = l3;
	if ((void *)(ip6 + 1) > end || ip6->version != 6)
		return count(XVS_XDP_PASS_MALFORMED, XDP_PASS);
	const __u32 *s = ip6->saddr.in6_u.u6_addr32;
	const __u32 *d = ip6->daddr.in6_u.u6_addr32;
	__u8 nh = ip6->nexthdr;
	void *l4 = ip6 + 1;
	if (nh == IPPROTO_ICMPV6) {
		struct icmp6hdr *ic = l4;
		if ((void *)(ic + 1) > end || ic->icmp6_type >= 128)
			return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS); /* informational: NDP, echo */
		if (icmp_error_about(1, (void *)(ic + 1), end))
			return redirect(ctx);
		return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
	}
	if (nh != IPPROTO_TCP && nh != IPPROTO_UDP && nh != IPPROTO_SCTP) {
		/* extension headers (fragments included) towards a VIP: TS decides and counts */
		if (is_addr_in(&vip_addrs, XVS_FAMILY_V6, d))
			return redirect(ctx);
		return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
	}
	if (owned(XVS_FAMILY_V6, s, d, nh, l4, end))
		return redirect(ctx);
	return count(XVS_XDP_PASS_NOT_OURS, XDP_PASS);
}

/* the flow cache (issue 17): established flows the TS fast path cached are forwarded here */
#include "xvs_flow.h"

/*
 * backup_only (net.ipv4.vs.backup_only, docs/sync.md; src/control/backup-only.ts writes it): while
 * a backup sync daemon runs with it set, the kernel's director stops being one: ip_vs_in_hook and
 * ip_vs_forward_icmp accept every packet untouched (sysctl_backup_only). Here every packet to a
 * virtual address goes to the kernel, before the flow cache (whose cached flows would be forwarded
 * otherwise); NAT replies stay xvs's (ip_vs_out_hook has no such check). One entry:
 * {u32 on; u32 pad; u64 passed}.
 */
struct xvs_steer_cfg {
	__u32 backup_only;
	__u32 pad;
	__u64 passed;
};
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_steer_cfg);
} steer_cfg SEC(".maps");

static __always_inline int backup_only_pass(void *data, void *end)
{
	__u32 zero = 0;
	struct xvs_steer_cfg *c = bpf_map_lookup_elem(&steer_cfg, &zero);
	if (!c || !c->backup_only)
		return 0;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return 0;
	if (eth->h_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = (void *)(eth + 1);
		if ((void *)(ip + 1) > end || !is_addr_in(&vip_addrs, XVS_FAMILY_V4, &ip->daddr))
			return 0;
	} else if (eth->h_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = (void *)(eth + 1);
		if ((void *)(ip6 + 1) > end || !is_addr_in(&vip_addrs, XVS_FAMILY_V6, ip6->daddr.in6_u.u6_addr32))
			return 0;
	} else {
		return 0;
	}
	__sync_fetch_and_add(&c->passed, 1);
	return 1;
}

SEC("xdp")
int xvs_steer(struct xdp_md *ctx)
{
	if (backup_only_pass((void *)(long)ctx->data, (void *)(long)ctx->data_end))
		return XDP_PASS;
	int cached = flow_stage(ctx);
	if (cached != XF_CONTINUE)
		return cached;
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return count(XVS_XDP_PASS_MALFORMED, XDP_PASS);
	__u16 proto = eth->h_proto;
	if (proto == bpf_htons(ETH_P_IP))
		return steer_v4(ctx, eth + 1, end);
	if (proto == bpf_htons(ETH_P_IPV6))
		return steer_v6(ctx, eth + 1, end);
	return count(XVS_XDP_PASS_NOT_IP, XDP_PASS);
}

/* The decap helper's program and the bench programs live in their own objects. */
char LICENSE[] SEC("license") = "Dual MIT/GPL";
