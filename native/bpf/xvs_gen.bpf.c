/* SPDX-License-Identifier: MIT */
/*
 * Traffic programs of `xvs bench` (not used by the daemon):
 *
 *  - xvs_gen: the generator. Run with BPF_PROG_RUN and BPF_F_TEST_XDP_LIVE_FRAMES
 *    (native/shim/xvs_gen.c), it sends the frame it is given out of the interface named in the
 *    context (XDP_TX), cycling the IPv4 source address and UDP source port through `flows`
 *    distinct flows (gen_cfg). The kernel's live-frames mode initialises a page only once and
 *    recycles it, and a contender that forwards in the kernel rewrites the very page (MACs,
 *    TTL, NAT): so every frame gets the template headers from gen_cfg written afresh, then its
 *    flow's address and port, and a recomputed IPv4 header checksum. With tx_every = N it
 *    sends one frame in N and drops the rest: an evenly paced lower rate (a kernel call has a
 *    fixed cost of milliseconds, so pacing by sleeping between calls would send bursts).
 *  - xvs_sink_tc (tc ingress) and xvs_sink (XDP): the counting sink on the far side of a
 *    contender: counts and drops the benchmark's packets (UDP to the configured port; IPIP,
 *    GRE, 6in4 and GUE for tunnel modes), and passes everything else (ARP, the TCP and latency
 *    workloads) to the kernel. The sink uses tc: on veth an XDP program would make the kernel
 *    copy every skb that lacks XDP headroom (skb_pp_cow_data), which AF_XDP copy-mode transmit
 *    skbs do and forwarded skbs do not, a cost that would fall on some contenders only. The XDP
 *    variant counts the generator's own rate (frames that arrive as XDP frames, no copy).
 *    With reply_first (tc only, bench workload udp64-replied) the first packet of each flow
 *    (source address and port, remembered in an LRU map) is not dropped but sent back out of
 *    the interface as the real server's reply (addresses, ports and MACs swapped): a one-way
 *    flood then has a reply per flow early, as a real UDP service would give, so a contender
 *    that acts on replies (a UDP NAT connection cached at its first reply in xvs, an ASSURED
 *    conntrack entry) sees it. Swapping leaves both checksums valid (sums of the same words).
 *  - xvs_pass: XDP_PASS, for a veth that must accept XDP-redirected frames without a program
 *    of its own.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/in.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include "xvs_common.h"

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_gen_cfg);
} gen_cfg SEC(".maps");

/* per CPU: [0] next flow, [1] frames decided, [2] frames sent */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 3);
	__type(key, __u32);
	__type(value, __u32);
} gen_seq SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct xvs_sink_cfg);
} sink_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_SINK_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} sink_stats SEC(".maps");

/* flows already sent a reply (reply_first): key saddr << 32 | sport, network order */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, XVS_SINK_REPLY_FLOWS);
	__type(key, __u64);
	__type(value, __u8);
} sink_replied SEC(".maps");

static __always_inline __u16 ip_csum(struct iphdr *ip)
{
	const __u16 *w = (const __u16 *)ip;
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += w[i];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

SEC("xdp")
int xvs_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	__u32 k = 0, k1 = 1, k2 = 2;
	struct xvs_gen_cfg *c = bpf_map_lookup_elem(&gen_cfg, &k);
	__u32 *seq = bpf_map_lookup_elem(&gen_seq, &k);
	__u32 *decided = bpf_map_lookup_elem(&gen_seq, &k1);
	__u32 *sent = bpf_map_lookup_elem(&gen_seq, &k2);
	if (!c || !seq || !decided || !sent || data + XVS_GEN_HDR_LEN > end)
		return XDP_ABORTED;
	/* pacing by decimation: of every tx_every frames the kernel makes, send one; the
	 * others are dropped here at once (cheap), so the frames that leave are evenly spaced */
	__u32 d = *decided;
	*decided = d + 1;
	if (c->tx_every > 1 && d % c->tx_every != 0)
		return XDP_DROP;
	*sent += 1;
	__builtin_memcpy(data, c->hdr, XVS_GEN_HDR_LEN);
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	struct udphdr *udp = (void *)(ip + 1);
	if (c->flows > 1 && c->ports > 0) {
		__u32 n = *seq;
		*seq = n + 1 >= c->flows ? 0 : n + 1;
		udp->source = bpf_htons((__u16)(c->port_base + n % c->ports));
		ip->saddr = bpf_htonl(c->addr_base + n / c->ports);
	}
	ip->check = 0;
	ip->check = ip_csum(ip);
	return XDP_TX;
}

static __always_inline void sink_count(__u32 idx, __u64 v)
{
	__u64 *c = bpf_map_lookup_elem(&sink_stats, &idx);
	if (c)
		*c += v;
}

SEC("xdp")
int xvs_sink(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	if (ip->protocol == IPPROTO_IPIP || ip->protocol == IPPROTO_GRE || ip->protocol == IPPROTO_IPV6)
		goto take;
	if (ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		goto pass;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		goto pass;
	__u32 k = 0;
	struct xvs_sink_cfg *c = bpf_map_lookup_elem(&sink_cfg, &k);
	if (!c || (udp->dest != bpf_htons((__u16)c->port) &&
		   (c->tun_port == 0 || udp->dest != bpf_htons((__u16)c->tun_port))))
		goto pass;
take:
	sink_count(XVS_SINK_PKTS, 1);
	sink_count(XVS_SINK_BYTES, (__u64)(end - data));
	return XDP_DROP;
pass:
	sink_count(XVS_SINK_PASSED, 1);
	return XDP_PASS;
}

/* The same decision for an skb at tc ingress (headers read with bpf_skb_load_bytes). */
SEC("tc")
int xvs_sink_tc(struct __sk_buff *skb)
{
	struct {
		struct ethhdr eth;
		struct iphdr ip;
		struct udphdr udp;
	} __attribute__((packed)) h;
	if (bpf_skb_load_bytes(skb, 0, &h, sizeof(h)) < 0 || h.eth.h_proto != bpf_htons(ETH_P_IP))
		goto pass;
	if (h.ip.protocol == IPPROTO_IPIP || h.ip.protocol == IPPROTO_GRE || h.ip.protocol == IPPROTO_IPV6)
		goto take;
	if (h.ip.protocol != IPPROTO_UDP || h.ip.ihl != 5)
		goto pass;
	__u32 k = 0;
	struct xvs_sink_cfg *c = bpf_map_lookup_elem(&sink_cfg, &k);
	if (!c || (h.udp.dest != bpf_htons((__u16)c->port) &&
		   (c->tun_port == 0 || h.udp.dest != bpf_htons((__u16)c->tun_port))))
		goto pass;
	if (c->reply_first && h.udp.dest == bpf_htons((__u16)c->port)) {
		__u64 key = ((__u64)h.ip.saddr << 32) | h.udp.source;
		__u8 one = 1;
		/* the first packet of this flow: it goes back as the reply */
		if (bpf_map_update_elem(&sink_replied, &key, &one, BPF_NOEXIST) == 0) {
			unsigned char mac[ETH_ALEN];
			__builtin_memcpy(mac, h.eth.h_dest, ETH_ALEN);
			__builtin_memcpy(h.eth.h_dest, h.eth.h_source, ETH_ALEN);
			__builtin_memcpy(h.eth.h_source, mac, ETH_ALEN);
			__be32 a = h.ip.saddr;
			h.ip.saddr = h.ip.daddr;
			h.ip.daddr = a;
			__be16 p = h.udp.source;
			h.udp.source = h.udp.dest;
			h.udp.dest = p;
			if (bpf_skb_store_bytes(skb, 0, &h, sizeof(h), 0) < 0)
				goto take;
			sink_count(XVS_SINK_REPLIED, 1);
			return bpf_redirect(skb->ifindex, 0);
		}
	}
take:
	sink_count(XVS_SINK_PKTS, 1);
	sink_count(XVS_SINK_BYTES, skb->len);
	return 2; /* TC_ACT_SHOT */
pass:
	sink_count(XVS_SINK_PASSED, 1);
	return 0; /* TC_ACT_OK */
}

SEC("xdp")
int xvs_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
