/* SPDX-License-Identifier: MIT */
/*
 * xvs_ceiling: the in-kernel ceiling of `xvs bench` (not used by the daemon). The least an XDP
 * balancer can do for a UDP NAT packet: parse Ethernet/IPv4/UDP, pick one of the real servers by
 * the source port (stateless: no flow table, no counters), rewrite the destination address and
 * port with incremental checksums (RFC 1624), decrement the TTL, write the MACs and redirect the
 * frame out of the server-side interface through a devmap. Everything else is XDP_PASSed, so
 * ARP, TCP and the echo workloads still reach the kernel. What the flow cache of
 * xvs_steer.bpf.c does on a hit, minus its lookups: an upper bound for it on this machine.
 *
 * Configuration (ceil_cfg[0], written by src/ffi/gen.ts CeilingObject; the offsets are named
 * there): VIP and port (network order), the number of real servers and their addresses
 * (network order), the source and destination MACs of the output frame. ceil_tx[0] is the
 * output interface.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#define CEIL_MAX_RS 8

struct ceil_cfg {
	__u32 vip;           /* off 0 */
	__u32 port;          /* off 4: network order in the low 16 bits */
	__u32 n_rs;          /* off 8 */
	__u32 rs[CEIL_MAX_RS]; /* off 12 */
	__u8 src_mac[6];     /* off 44 */
	__u8 dst_mac[6];     /* off 50 */
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ceil_cfg);
} ceil_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u32);
} ceil_tx SEC(".maps");

/* fold a 32-bit one's-complement sum into 16 bits */
static __always_inline __u16 fold(__u32 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u16)s;
}

/* RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m') for a 32-bit field changed from `from` to `to` */
static __always_inline __u16 csum_replace4(__u16 check, __u32 from, __u32 to)
{
	__u32 s = (__u16)~check;
	s += (~from & 0xffff) + (~from >> 16);
	s += (to & 0xffff) + (to >> 16);
	return (__u16)~fold(s);
}

static __always_inline __u16 csum_replace2(__u16 check, __u16 from, __u16 to)
{
	__u32 s = (__u16)~check;
	s += (__u16)~from;
	s += to;
	return (__u16)~fold(s);
}

SEC("xdp")
int xvs_ceiling(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	__u32 k = 0;
	if ((void *)(udp + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP) || ip->ihl != 5 ||
	    ip->protocol != IPPROTO_UDP || ip->ttl <= 1 || (ip->frag_off & bpf_htons(0x3fff)))
		return XDP_PASS;
	struct ceil_cfg *c = bpf_map_lookup_elem(&ceil_cfg, &k);
	if (!c || ip->daddr != c->vip || udp->dest != (__u16)c->port || c->n_rs == 0)
		return XDP_PASS;
	__u32 i = bpf_ntohs(udp->source) % c->n_rs;
	if (i >= CEIL_MAX_RS)
		return XDP_PASS;
	__u32 rs = c->rs[i];
	__u32 old = ip->daddr;
	/* TTL: the 16-bit word (ttl, protocol) loses 0x0100 */
	__u16 tw_old = *(__u16 *)&ip->ttl;
	ip->ttl--;
	__u16 tw_new = *(__u16 *)&ip->ttl;
	ip->daddr = rs;
	ip->check = csum_replace2(csum_replace4(ip->check, old, rs), tw_old, tw_new);
	if (udp->check) {
		__u16 u = csum_replace4(udp->check, old, rs);
		udp->check = u ? u : 0xffff;
	}
	__builtin_memcpy(eth->h_source, c->src_mac, 6);
	__builtin_memcpy(eth->h_dest, c->dst_mac, 6);
	return bpf_redirect_map(&ceil_tx, 0, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
