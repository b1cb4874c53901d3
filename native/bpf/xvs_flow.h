/* SPDX-License-Identifier: MIT */
/*
 * The flow cache of the steering program (issue 17): established connections that the
 * TypeScript fast path (the authority) wrote into `flows` are rewritten and transmitted here,
 * byte for byte as src/dataplane/fastpath.ts would (transmitIn / reply, src/xmit/nat.ts, dr.ts,
 * tun.ts, wire/ipv4.ts), without the copy into and out of AF_XDP. Anything this code is not sure
 * to do exactly as TS does goes on to the steering below it, i.e. to TS, unchanged.
 * Layouts: xvs_common.h (XVS_FLOW_*, XVS_FREAL_*, XVS_FNH_*, XVS_FPORT_*).
 */
#ifndef XVS_FLOW_H
#define XVS_FLOW_H

struct xvs_flow_key {
	__u32 saddr[4];
	__u32 daddr[4];
	__u16 sport;
	__u16 dport;
	__u8 proto;
	__u8 family;
	__u8 pad[2];
};

struct xvs_flow_value {
	__u32 dest;
	__s32 hop;
	__u32 conn;
	__u16 worker;
	__u8 dir;
	__u8 out_port;
	__u8 mac[6];
	__u16 tun_sport;
	__u32 vaddr[4];
	__u16 vport;
	__u16 rport;
	__u8 fwd;
	__u8 pad[3];
	__u64 packets;
	__u64 bytes;
	__u64 last_ns;
};

struct xvs_flow_real {
	__u32 addr[4];
	__u32 tun_src[4];
	__u8 flags;
	__u8 fwd;
	__u8 tun_type;
	__u8 tun_csum;
	__u16 tun_port;
	__u16 pad;
	__u32 mtu;
	__s32 nexthop;
};

struct xvs_flow_nexthop {
	__u8 mac[6];
	__u8 flags;
	__u8 port;
};

struct xvs_flow_port {
	__u32 ifindex;
	__u8 mac[6];
	__u8 flags; /* XVS_FPORT_F_* */
	__u8 pad;
};

#define XVS_OFF_CHECK(s, f, off) _Static_assert(__builtin_offsetof(struct s, f) == (off), #s "." #f)
XVS_OFF_CHECK(xvs_flow_key, daddr, XVS_FLOW_KEY_DADDR_OFF);
XVS_OFF_CHECK(xvs_flow_key, sport, XVS_FLOW_KEY_SPORT_OFF);
XVS_OFF_CHECK(xvs_flow_key, dport, XVS_FLOW_KEY_DPORT_OFF);
XVS_OFF_CHECK(xvs_flow_key, proto, XVS_FLOW_KEY_PROTO_OFF);
XVS_OFF_CHECK(xvs_flow_key, family, XVS_FLOW_KEY_FAMILY_OFF);
_Static_assert(sizeof(struct xvs_flow_key) == XVS_FLOW_KEY_SIZE, "flow key size");
XVS_OFF_CHECK(xvs_flow_value, hop, XVS_FLOW_HOP_OFF);
XVS_OFF_CHECK(xvs_flow_value, conn, XVS_FLOW_CONN_OFF);
XVS_OFF_CHECK(xvs_flow_value, worker, XVS_FLOW_WORKER_OFF);
XVS_OFF_CHECK(xvs_flow_value, dir, XVS_FLOW_DIR_OFF);
XVS_OFF_CHECK(xvs_flow_value, out_port, XVS_FLOW_OUT_PORT_OFF);
XVS_OFF_CHECK(xvs_flow_value, mac, XVS_FLOW_MAC_OFF);
XVS_OFF_CHECK(xvs_flow_value, tun_sport, XVS_FLOW_TUN_SPORT_OFF);
XVS_OFF_CHECK(xvs_flow_value, vaddr, XVS_FLOW_VADDR_OFF);
XVS_OFF_CHECK(xvs_flow_value, vport, XVS_FLOW_VPORT_OFF);
XVS_OFF_CHECK(xvs_flow_value, rport, XVS_FLOW_RPORT_OFF);
XVS_OFF_CHECK(xvs_flow_value, fwd, XVS_FLOW_FWD_OFF);
XVS_OFF_CHECK(xvs_flow_value, packets, XVS_FLOW_PACKETS_OFF);
XVS_OFF_CHECK(xvs_flow_value, bytes, XVS_FLOW_BYTES_OFF);
XVS_OFF_CHECK(xvs_flow_value, last_ns, XVS_FLOW_LAST_NS_OFF);
_Static_assert(sizeof(struct xvs_flow_value) == XVS_FLOW_VALUE_SIZE, "flow value size");
XVS_OFF_CHECK(xvs_flow_real, tun_src, XVS_FREAL_TUN_SRC_OFF);
XVS_OFF_CHECK(xvs_flow_real, flags, XVS_FREAL_FLAGS_OFF);
XVS_OFF_CHECK(xvs_flow_real, fwd, XVS_FREAL_FWD_OFF);
XVS_OFF_CHECK(xvs_flow_real, tun_type, XVS_FREAL_TUN_TYPE_OFF);
XVS_OFF_CHECK(xvs_flow_real, tun_csum, XVS_FREAL_TUN_CSUM_OFF);
XVS_OFF_CHECK(xvs_flow_real, tun_port, XVS_FREAL_TUN_PORT_OFF);
XVS_OFF_CHECK(xvs_flow_real, mtu, XVS_FREAL_MTU_OFF);
XVS_OFF_CHECK(xvs_flow_real, nexthop, XVS_FREAL_NEXTHOP_OFF);
_Static_assert(sizeof(struct xvs_flow_real) == XVS_FREAL_SIZE, "real size");
XVS_OFF_CHECK(xvs_flow_nexthop, flags, XVS_FNH_FLAGS_OFF);
XVS_OFF_CHECK(xvs_flow_nexthop, port, XVS_FNH_PORT_OFF);
_Static_assert(sizeof(struct xvs_flow_nexthop) == XVS_FNH_SIZE, "nexthop size");
XVS_OFF_CHECK(xvs_flow_port, mac, XVS_FPORT_MAC_OFF);
XVS_OFF_CHECK(xvs_flow_port, flags, XVS_FPORT_FLAGS_OFF);
_Static_assert(sizeof(struct xvs_flow_port) == XVS_FPORT_SIZE, "port size");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, XVS_FLOW_DEFAULT_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct xvs_flow_key);
	__type(value, struct xvs_flow_value);
} flows SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_FLOW_MAX_REALS);
	__type(key, __u32);
	__type(value, struct xvs_flow_real);
} flow_reals SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_FLOW_MAX_NEXTHOPS);
	__type(key, __u32);
	__type(value, struct xvs_flow_nexthop);
} flow_nexthops SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_MAX_IFACES);
	__type(key, __u32);
	__type(value, struct xvs_flow_port);
} flow_ports SEC(".maps");

/* port index -> ifindex, for XDP_REDIRECT to another of our interfaces */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, XVS_MAX_IFACES);
	__type(key, __u32);
	__type(value, __u32);
} flow_tx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, XVS_FLOW_CFG_WORDS);
	__type(key, __u32);
	__type(value, __u32);
} flow_cfg SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, XVS_FLOW_STAT_COUNT);
	__type(key, __u32);
	__type(value, __u64);
} flow_stats SEC(".maps");


/* Values as the TS side names them (service/tables.ts, wire/fields.ts, xmit/tun.ts). */
#define XF_FWD_MASQ 0
#define XF_FWD_TUNNEL 2
#define XF_FWD_ROUTE 3
#define XF_TUN_IPIP 0
#define XF_TUN_GUE 1
#define XF_TUN_GRE 2
#define XF_TCP_FIN 0x01
#define XF_TCP_SYN 0x02
#define XF_TCP_RST 0x04
#define XF_TCP_ACK 0x10
#define XF_IP_DF 0x4000
#define XF_IP_MF 0x2000
#define XF_IP_OFFSET 0x1fff
#define XF_IPV4_MIN_MTU 68
#define XF_IPV6_MIN_MTU 1280
#define XF_GRE_PROTO_IPV4 0x0800
#define XF_GRE_PROTO_IPV6 0x86dd

/* what the flow stage decided: continue with the steering below (XF_CONTINUE) or an XDP action */
#define XF_CONTINUE -1

static __always_inline int flow_count(__u32 idx, int action)
{
	__u64 *c = bpf_map_lookup_elem(&flow_stats, &idx);
	if (c)
		*c += 1;
	return action;
}

/* RFC 1624 eqn. 3, operation for operation as wire/checksum.ts csumReplace16 / csumReplace32
 * (host-order field values), so the result is the same 16 bits TS writes. */
static __always_inline __u32 xf_csum_replace16(__u32 csum, __u32 oldv, __u32 newv)
{
	__u32 s = (~csum & 0xffff) + (~oldv & 0xffff) + (newv & 0xffff);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

static __always_inline __u32 xf_csum_replace32(__u32 csum, __u32 oldv, __u32 newv)
{
	__u32 s = (~csum & 0xffff) + (~oldv & 0xffff) + (~(oldv >> 16) & 0xffff) + (newv & 0xffff) +
		  (newv >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

/* the pseudo-header sum folded to 16 bits, as partial-csum.ts computes P (pseudoSumWords) */
static __always_inline __u32 xf_pseudo_fold(const __u32 *s, const __u32 *d, int words, __u32 proto, __u32 len)
{
	__u32 sum = (len >> 16) + (len & 0xffff) + proto;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i < words) {
			__u32 a = bpf_ntohl(s[i]), b = bpf_ntohl(d[i]);
			sum += (a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff);
		}
	}
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return sum;
}

/* Internet checksum of a 20-byte IPv4 header (wire/checksum.ts checksum over IPV4_MIN_HLEN) */
static __always_inline __u16 xf_ip4_csum(const __u16 *w)
{
	__u32 sum = 0;
#pragma unroll
	for (int i = 0; i < 10; i++)
		sum += bpf_ntohs(w[i]);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)(~sum & 0xffff);
}

static __always_inline void xf_set_macs(struct ethhdr *eth, const __u8 *dst, const __u8 *src)
{
	__builtin_memcpy(eth->h_dest, dst, 6);
	__builtin_memcpy(eth->h_source, src, 6);
}

/*
 * Send the rewritten frame out port `port` (its entry of flow_ports was checked): back out the
 * interface it came in on (XDP_TX) or through the devmap to another of ours. A veth port
 * (XVS_FPORT_F_TX_REDIRECT) takes the devmap even back out of itself: after an XDP_TX, veth
 * wakes the peer's NAPI only when the peer has an XDP program (veth_xdp_flush), so with GRO alone
 * the frames would sit in the peer's ring; a redirect flushes (veth_ndo_xdp_xmit, XDP_XMIT_FLUSH).
 */
static __always_inline int xf_transmit(struct xdp_md *ctx, const struct xvs_flow_port *p, __u32 port)
{
	if (p->ifindex == ctx->ingress_ifindex && !(p->flags & XVS_FPORT_F_TX_REDIRECT)) {
		flow_count(XVS_FLOW_FWD, 0);
		return count(XVS_XDP_FLOW_TX, XDP_TX);
	}
	int rc = bpf_redirect_map(&flow_tx, port, 0);
	if (rc != XDP_REDIRECT)
		return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
	flow_count(XVS_FLOW_FWD, 0);
	return count(XVS_XDP_FLOW_REDIRECT, XDP_REDIRECT);
}

static __always_inline void xf_account(struct xvs_flow_value *v, __u32 l3len)
{
	__sync_fetch_and_add(&v->packets, 1);
	__sync_fetch_and_add(&v->bytes, l3len);
	v->last_ns = bpf_ktime_get_boot_ns(); /* CLOCK_BOOTTIME: SteerProgram/flowClockNs() reads the same */
}

/* A partial L4 checksum found by xf_l4_check, completed by xf_complete just before the rewrite. */
struct xf_partial {
	__u32 len; /* bytes summed (TCP: the segment; UDP: the UDP length); 0: nothing to complete */
	__u32 co;  /* offset of the checksum field from the L4 header */
	__u32 p;   /* the folded pseudo-header sum the field holds */
};

/* the largest region summed (a single-buffer XDP frame is smaller than a page) */
#define XF_SUM_MAX_WORDS 1024

/* The field holds P: maybe partial. Completed before the rewrite if the sum fits the bounded
 * loop (XF_SUM_MAX_WORDS words, more than any 1500-byte MTU), else left to TS. */
static __always_inline int xf_partial_found(struct xf_partial *pc, __u32 len, __u32 co, __u32 p)
{
	if (len > XF_SUM_MAX_WORDS * 4)
		return XVS_FLOW_BYPASS_PARTIAL_CSUM;
	pc->len = len;
	pc->co = co;
	pc->p = p;
	return 0;
}

/*
 * The L4 checks TS's classify() and completePartialChecksum() make, for a packet whose L4
 * header starts at `l4` with `l4len` bytes (inside the frame: checked by the caller's length
 * checks, re-checked here for the verifier). Returns 0 when the packet may be forwarded, or the
 * XVS_FLOW_BYPASS_* reason.
 */
static __always_inline int xf_l4_check(void *l4, void *end, __u8 proto, __u32 l4len, int v6,
				       const __u32 *s, const __u32 *d, struct xf_partial *pc)
{
	int words = v6 ? 4 : 1;
	if (proto == IPPROTO_TCP) {
		__u8 *t = l4;
		if (l4len < 20 || (void *)(t + 20) > end)
			return XVS_FLOW_BYPASS_MALFORMED;
		__u32 doff = (t[12] >> 4) << 2;
		if (doff < 20 || doff > l4len)
			return XVS_FLOW_BYPASS_MALFORMED;
		__u8 fl = t[13];
		/* conn/state.ts tcpEvent: RST, SYN, FIN change state; no ACK moves to CLOSE */
		if ((fl & (XF_TCP_SYN | XF_TCP_FIN | XF_TCP_RST)) || !(fl & XF_TCP_ACK))
			return XVS_FLOW_BYPASS_TCP_FLAGS;
		__u32 field = bpf_ntohs(*(__u16 *)(t + 16));
		__u32 p = xf_pseudo_fold(s, d, words, proto, l4len);
		if (field == p)
			return xf_partial_found(pc, l4len, 16, p);
		return 0;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr_x {
			__u16 source, dest, len, check;
		} *u = l4;
		if (l4len < 8 || (void *)(u + 1) > end)
			return XVS_FLOW_BYPASS_MALFORMED;
		__u32 ulen = bpf_ntohs(u->len);
		if (ulen < 8 || ulen > l4len)
			return XVS_FLOW_BYPASS_MALFORMED;
		__u32 field = bpf_ntohs(u->check);
		if (field == 0 && !v6)
			return 0; /* no checksum (RFC 768): never partial */
		__u32 p = xf_pseudo_fold(s, d, words, proto, ulen);
		if (field == p)
			return xf_partial_found(pc, ulen, 6, p);
		return 0;
	}
	/* SCTP: a CRC32c of 0 is what an offloading sender leaves (partial-csum.ts completeSctp);
	 * CRC32c over the packet is not computed here: TS completes it */
	__u8 *c = l4;
	if (l4len < 12 || (void *)(c + 12) > end)
		return XVS_FLOW_BYPASS_MALFORMED;
	if (*(__u32 *)(c + 8) == 0)
		return XVS_FLOW_BYPASS_PARTIAL_CSUM;
	return 0;
}

/* offset of the L4 checksum field (xmit/nat.ts l4CsumOffset), -1 for SCTP */
static __always_inline int xf_l4_csum_off(__u8 proto)
{
	return proto == IPPROTO_TCP ? 16 : proto == IPPROTO_UDP ? 6 : -1;
}

/*
 * NAT of an IPv4 packet (xmit/nat.ts rewrite4): the address at `addr` (source or destination)
 * becomes `na` and the port at `portp` becomes `np` (host order), the IP header checksum and the
 * L4 checksum are fixed incrementally in TS's order. SCTP with a port change never gets here.
 */
static __always_inline void xf_nat4(struct iphdr *ip, __u32 *addr, __u16 *portp, __u8 proto, void *l4,
				    void *end, __u32 na, __u32 np)
{
	__u32 oldp = bpf_ntohs(*portp);
	__u32 olda = bpf_ntohl(*addr);
	*addr = bpf_htonl(na);
	ip->check = bpf_htons(xf_csum_replace32(bpf_ntohs(ip->check), olda, na));
	*portp = bpf_htons(np);
	int co = xf_l4_csum_off(proto);
	if (co < 0)
		return;
	__u16 *cp = l4 + co;
	if ((void *)(cp + 1) > end)
		return;
	__u32 c = bpf_ntohs(*cp);
	if (proto == IPPROTO_UDP && c == 0)
		return;
	c = xf_csum_replace32(c, olda, na);
	c = xf_csum_replace16(c, oldp, np);
	if (proto == IPPROTO_UDP && c == 0)
		c = 0xffff;
	*cp = bpf_htons(c);
}

/* NAT of an IPv6 packet (xmit/nat.ts rewrite6); `na` in network order */
static __always_inline void xf_nat6(__u32 *addr, __u16 *portp, __u8 proto, void *l4, void *end, const __u32 *na,
				    __u32 np)
{
	int co = xf_l4_csum_off(proto);
	__u16 *cp = l4 + (co < 0 ? 0 : co);
	int has = co >= 0 && (void *)(cp + 1) <= end;
	__u32 c = has ? bpf_ntohs(*cp) : 0;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		__u32 ow = bpf_ntohl(addr[i]), nw = bpf_ntohl(na[i]);
		addr[i] = na[i];
		c = xf_csum_replace32(c, ow, nw);
	}
	__u32 oldp = bpf_ntohs(*portp);
	*portp = bpf_htons(np);
	if (has) {
		c = xf_csum_replace16(c, oldp, np);
		if (proto == IPPROTO_UDP && c == 0)
			c = 0xffff;
		*cp = bpf_htons(c);
	}
}

/* TTL minus one with the header checksum (wire/ipv4.ts decTtlFix: the TTL shares a word with the protocol) */
static __always_inline void xf_dec_ttl4(struct iphdr *ip)
{
	__u16 *w = (__u16 *)&ip->ttl;
	__u32 word = bpf_ntohs(*w);
	__u32 nw = (word - 0x100) & 0xffff;
	*w = bpf_htons(nw);
	ip->check = bpf_htons(xf_csum_replace16(bpf_ntohs(ip->check), word, nw));
}

/* The bytes a tunnel puts in front of the inner packet (xmit/tun.ts tunnelOverhead). */
static __always_inline __u32 xf_tun_overhead(__u8 type, int outer_v6, __u8 csum)
{
	__u32 n = outer_v6 ? 40 : 20;
	if (type == XF_TUN_GUE)
		n += 8 + 4;
	else if (type == XF_TUN_GRE)
		n += csum ? 8 : 4;
	return n;
}

/*
 * The ones'-complement sum of `len` bytes at `p`, as wire/checksum.ts sumBytes over big-endian
 * 16-bit words (folded to 16 bits; the byte order of a ones'-complement sum can be swapped
 * after the fact, RFC 1071). Returns -1 if the region leaves the frame (never after the
 * caller's length checks).
 */
/* keep clang from folding a packet bound check into arithmetic on data_end (the verifier refuses it) */
#define xf_opaque(v) asm volatile("" : "+r"(v))

static __always_inline __s64 xf_sum_be(void *p, void *end, __u32 len)
{
	__u64 s = 0;
	if (len > XF_SUM_MAX_WORDS * 4)
		return -1;
	__u32 words = len >> 2;
	for (__u32 i = 0; i < XF_SUM_MAX_WORDS; i++) {
		if (i >= words)
			break;
		__u32 *w = p + (i << 2);
		void *we = (void *)(w + 1);
		xf_opaque(we);
		if (we > end)
			return -1;
		s += *w;
	}
	if (words > XF_SUM_MAX_WORDS)
		return -1;
	s = (s & 0xffffffff) + (s >> 32);
	s = (s & 0xffffffff) + (s >> 32);
	__u32 le = (__u32)s;
	le = (le & 0xffff) + (le >> 16);
	le = (le & 0xffff) + (le >> 16);
	__u32 be = ((le & 0xff) << 8) | (le >> 8);
	/* bounded where the verifier sees it: a packet offset whose range may pass 0xffff gets no
	 * range from the check below (find_good_pkt_pointers), and clang drops a check it proved */
	__u32 off = words << 2;
	xf_opaque(off);
	if (off > XF_SUM_MAX_WORDS * 4)
		return -1;
	__u8 *t = p + off;
	xf_opaque(t);
	__u32 rem = len & 3;
	if (rem >= 1) {
		if ((void *)(t + 3) <= end) {
			be += ((__u32)t[0] << 8) + (rem >= 2 ? t[1] : 0) + (rem == 3 ? (__u32)t[2] << 8 : 0);
		} else if ((void *)(t + 2) <= end && rem <= 2) {
			be += ((__u32)t[0] << 8) + (rem == 2 ? t[1] : 0);
		} else if ((void *)(t + 1) <= end && rem == 1) {
			be += (__u32)t[0] << 8;
		} else {
			return -1;
		}
	}
	return be;
}

/* fold a ones'-complement sum to 16 bits (wire/checksum.ts fold) */
static __always_inline __u32 xf_fold(__u64 s)
{
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	s = (s & 0xffff) + (s >> 16);
	return (__u32)(s & 0xffff);
}

/*
 * Complete a partial L4 checksum as partial-csum.ts completeL4 does: sum the segment (field
 * included); if the full checksum (P standing for the pseudo-header) verifies the frame is left
 * as it is, else the field gets the complement of the segment's sum, 0 written as 0xFFFF
 * (skb_checksum_help). Called only for a cached flow's frame that passed every check, right
 * before the rewrite (TS completes in pass 1, then rewrites incrementally: the same bytes).
 * `l4off` is the L4 header's offset in the frame. Returns -1 if the region leaves the frame
 * (never after the caller's length checks).
 *
 * A global (not inlined) function: the verifier checks its bounded loop once, not once per
 * call site and path of flow_stage (inlined at its three call sites it more than doubled the
 * instructions the verifier processes).
 */
__attribute__((noinline)) int xf_complete_partial(struct xdp_md *ctx, __u64 l4off, __u64 len, __u32 co, __u32 p)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (l4off > 64 || len > XF_SUM_MAX_WORDS * 4)
		return -1;
	void *l4 = data + l4off;
	__s64 seg = xf_sum_be(l4, end, len);
	if (seg < 0)
		return -1;
	if (xf_fold((__u64)seg + p) == 0xffff)
		return 0;
	__u32 c = ~xf_fold((__u64)seg) & 0xffff;
	__u16 *cp = l4 + (co == 16 ? 16 : 6);
	if ((void *)(cp + 1) > end)
		return -1;
	*cp = bpf_htons(c ? c : 0xffff);
	return 0;
}

static __always_inline int xf_complete(struct xdp_md *ctx, __u32 l4off, const struct xf_partial *pc)
{
	if (!pc->len)
		return 0; /* the field was not P: nothing to do (the whole cost for complete frames) */
	return xf_complete_partial(ctx, l4off, pc->len, pc->co, pc->p);
}

/*
 * Encapsulate the frame as FastPath.tunnelOut + xmit/tun.ts encapsulate do (the caller checked
 * everything that could make TS decide otherwise), then address it to the next hop. The head
 * (and tail) adjustments come first: if one fails, the frame is put back as it came and goes on
 * to TS untouched. Then the inner TTL is decremented, the flow counted and the headers written.
 */
static __always_inline int xf_tunnel(struct xdp_md *ctx, struct xvs_flow_value *v, const struct xvs_flow_real *r,
				     const struct xvs_flow_nexthop *nh, const struct xvs_flow_port *p, __u32 port,
				     int inner_v6, __u32 l3len, __u8 tos, __u8 ttl, __u16 df)
{
	int outer_v6 = (r->flags & XVS_FREAL_F_V6) != 0;
	__u32 over = xf_tun_overhead(r->tun_type, outer_v6, r->tun_csum);
	if (bpf_xdp_adjust_head(ctx, -(int)over))
		return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE); /* no headroom: nothing changed */
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	/* trim Ethernet padding: TS sends ETH_HLEN + over + l3len bytes */
	__s32 trim = (__s32)(14 + over + l3len) - (__s32)(end - data);
	if (trim < 0 && bpf_xdp_adjust_tail(ctx, trim)) {
		bpf_xdp_adjust_head(ctx, (int)over); /* as it came */
		return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE);
	}
	data = (void *)(long)ctx->data;
	end = (void *)(long)ctx->data_end;
	if (over > 64)
		return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP); /* never: bounds for the verifier */
	void *inner = data + 14 + over;
	/* the inner packet's TTL / hop limit minus one (transmitIn does it before tunnelOut) */
	if (inner_v6) {
		struct ipv6hdr *i6 = inner;
		if ((void *)(i6 + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		i6->hop_limit -= 1;
	} else {
		struct iphdr *i4 = inner;
		if ((void *)(i4 + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		xf_dec_ttl4(i4);
	}
	xf_account(v, l3len);
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
	__u8 dsfield = (tos & 3) == 3 ? ((tos & 0xfc) | 2) : tos;
	__u8 inner_proto = inner_v6 ? IPPROTO_IPV6 : IPPROTO_IPIP;
	__u8 proto = inner_proto;
	void *x;
	if (outer_v6) {
		struct ipv6hdr *o6 = (void *)(eth + 1);
		if ((void *)(o6 + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		*(__u32 *)o6 = bpf_htonl(0x60000000 | ((__u32)dsfield << 20));
		o6->payload_len = bpf_htons(over - 40 + l3len);
		o6->hop_limit = ttl;
		__builtin_memcpy(&o6->saddr, r->tun_src, 16);
		__builtin_memcpy(&o6->daddr, r->addr, 16);
		x = o6 + 1;
	} else {
		x = (void *)(eth + 1) + 20;
	}
	if (r->tun_type == XF_TUN_GUE) {
		proto = IPPROTO_UDP;
		struct gue_udp *g = x;
		if ((void *)(g + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		g->sport = v->tun_sport;
		g->dport = r->tun_port;
		g->len = bpf_htons(8 + 4 + l3len);
		g->check = 0;
		g->hlen_flags = 0;
		g->proto_ctype = inner_proto;
		g->flags = 0;
	} else if (r->tun_type == XF_TUN_GRE) {
		proto = IPPROTO_GRE;
		struct gre_base *g = x;
		if ((void *)(g + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		g->flags = r->tun_csum ? bpf_htons(0x8000) : 0; /* C bit: checksum and reserved follow */
		g->proto = bpf_htons(inner_v6 ? XF_GRE_PROTO_IPV6 : XF_GRE_PROTO_IPV4);
		if (r->tun_csum) {
			__u32 *cr = (void *)(g + 1);
			if ((void *)(cr + 1) > end)
				return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
			*cr = 0;
		}
	}
	if (outer_v6) {
		struct ipv6hdr *o6 = (void *)(eth + 1);
		if ((void *)(o6 + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		o6->nexthdr = proto;
		eth->h_proto = bpf_htons(ETH_P_IPV6);
	} else {
		struct iphdr *o4 = (void *)(eth + 1);
		if ((void *)(o4 + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		/* wire/ipv4.ts writeHeader; id 0: the caller let only DF (or IPv6-inner) packets here */
		*(__u8 *)o4 = 0x45;
		o4->tos = dsfield;
		o4->tot_len = bpf_htons(over + l3len);
		o4->id = 0;
		o4->frag_off = bpf_htons(df);
		o4->ttl = ttl;
		o4->protocol = proto;
		o4->check = 0;
		o4->saddr = r->tun_src[0];
		o4->daddr = r->addr[0];
		o4->check = bpf_htons(xf_ip4_csum((const __u16 *)o4));
		eth->h_proto = bpf_htons(ETH_P_IP);
	}
	if (r->tun_csum && r->tun_type != XF_TUN_IPIP) {
		/* GUE: udp_set_csum over the pseudo-header, UDP, GUE and the inner packet; GRE: the
		 * checksum over GRE header and inner packet (xmit/tun.ts encapsulate) */
		int gue = r->tun_type == XF_TUN_GUE;
		__u32 len = (gue ? 8 + 4 : 8) + l3len;
		__s64 sum = xf_sum_be(x, end, len);
		if (sum < 0)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		__u64 total = (__u64)sum;
		if (gue) {
			total += IPPROTO_UDP + (len >> 16) + (len & 0xffff);
			int words = outer_v6 ? 4 : 1;
#pragma unroll
			for (int i = 0; i < 4; i++) {
				if (i < words) {
					__u32 a = bpf_ntohl(r->tun_src[i]), b = bpf_ntohl(r->addr[i]);
					total += (a >> 16) + (a & 0xffff) + (b >> 16) + (b & 0xffff);
				}
			}
		}
		__u32 c = ~xf_fold(total) & 0xffff;
		__u16 *cp = gue ? &((struct gue_udp *)x)->check : (__u16 *)(x + 4);
		if ((void *)(cp + 1) > end)
			return flow_count(XVS_FLOW_BYPASS_TX, XDP_DROP);
		if (gue && c == 0)
			c = 0xffff; /* CSUM_MANGLED_0 */
		*cp = bpf_htons(c);
	}
	xf_set_macs(eth, nh->mac, p->mac);
	return xf_transmit(ctx, p, port);
}

/* The flow key of a packet: addresses, ports, protocol, family. */
static __always_inline void xf_key(struct xvs_flow_key *k, int v6, const __u32 *s, const __u32 *d, __u8 proto,
				   const struct ports *pp)
{
	__builtin_memset(k, 0, sizeof(*k));
	k->saddr[0] = s[0];
	k->daddr[0] = d[0];
	if (v6) {
		k->saddr[1] = s[1];
		k->saddr[2] = s[2];
		k->saddr[3] = s[3];
		k->daddr[1] = d[1];
		k->daddr[2] = d[2];
		k->daddr[3] = d[3];
	}
	k->sport = pp->sport;
	k->dport = pp->dport;
	k->proto = proto;
	k->family = v6 ? XVS_FAMILY_V6 : XVS_FAMILY_V4;
}

/* the port entry of `port`, or NULL when it has no interface */
static __always_inline const struct xvs_flow_port *xf_port(__u32 port)
{
	const struct xvs_flow_port *p = bpf_map_lookup_elem(&flow_ports, &port);
	return p && p->ifindex ? p : 0;
}

/*
 * Look the packet up and forward it when everything TS would do with it is known here.
 * Returns XF_CONTINUE (the steering below decides, i.e. TS gets it unchanged) or an XDP action.
 */
static __always_inline int flow_stage(struct xdp_md *ctx)
{
	__u32 zero = XVS_FLOW_CFG_ENABLED;
	__u32 *on = bpf_map_lookup_elem(&flow_cfg, &zero);
	if (!on || !*on)
		return XF_CONTINUE;
	/* a stopped xvs's program once its hold ended: nobody updates the cached flows any more, so
	 * none is forwarded and nothing is steered; the kernel gets every packet (restart.ts) */
	if (*on == XVS_FLOW_CFG_HANDED_OVER && !holding())
		return count(XVS_XDP_PASS_NO_SOCKET, XDP_PASS);
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end)
		return XF_CONTINUE;
	int v6;
	if (eth->h_proto == bpf_htons(ETH_P_IP))
		v6 = 0;
	else if (eth->h_proto == bpf_htons(ETH_P_IPV6))
		v6 = 1;
	else
		return XF_CONTINUE;

	struct xvs_flow_key k;
	struct iphdr *ip = (void *)(eth + 1);
	struct ipv6hdr *ip6 = (void *)(eth + 1);
	void *l4;
	__u8 proto;
	__u32 l3len, hops;
	int reason = 0;
	if (!v6) {
		if ((void *)(ip + 1) > end || ip->version != 4 || ip->ihl < 5)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		__u16 frag = bpf_ntohs(ip->frag_off);
		if (frag & XF_IP_OFFSET)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		proto = ip->protocol;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		l4 = (void *)ip + ip->ihl * 4;
		struct ports *pp = l4;
		if ((void *)(pp + 1) > end)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		xf_key(&k, 0, &ip->saddr, &ip->daddr, proto, pp);
		l3len = bpf_ntohs(ip->tot_len);
		hops = ip->ttl;
		/* the checks classify() makes (in its order of importance to us, all before any write) */
		if (ip->ihl != 5)
			reason = XVS_FLOW_BYPASS_IP_OPTIONS;
		else if (frag & XF_IP_MF)
			reason = XVS_FLOW_BYPASS_FRAGMENT;
		else if (l3len < 20 || l3len > (__u32)(end - (void *)ip))
			reason = XVS_FLOW_BYPASS_MALFORMED;
		else if (xf_ip4_csum((const __u16 *)ip) != 0)
			reason = XVS_FLOW_BYPASS_MALFORMED; /* ip_rcv drops a bad header checksum */
	} else {
		if ((void *)(ip6 + 1) > end || ip6->version != 6)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		proto = ip6->nexthdr;
		if (proto != IPPROTO_TCP && proto != IPPROTO_UDP && proto != IPPROTO_SCTP)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		l4 = ip6 + 1;
		struct ports *pp = l4;
		if ((void *)(pp + 1) > end)
			return flow_count(XVS_FLOW_NOT_ELIGIBLE, XF_CONTINUE);
		xf_key(&k, 1, ip6->saddr.in6_u.u6_addr32, ip6->daddr.in6_u.u6_addr32, proto, pp);
		l3len = 40 + bpf_ntohs(ip6->payload_len);
		hops = ip6->hop_limit;
		if (l3len > (__u32)(end - (void *)ip6))
			reason = XVS_FLOW_BYPASS_MALFORMED;
	}
	struct xvs_flow_value *v = bpf_map_lookup_elem(&flows, &k);
	if (!v)
		return flow_count(XVS_FLOW_MISS, XF_CONTINUE);
	if (reason)
		return flow_count(reason, XF_CONTINUE);
	__u32 l3off = v6 ? 40 : 20;
	struct xf_partial pc = {};
	reason = xf_l4_check(l4, end, proto, l3len - l3off, v6, k.saddr, k.daddr, &pc);
	if (reason)
		return flow_count(reason, XF_CONTINUE);
	if (hops <= 1)
		return flow_count(XVS_FLOW_BYPASS_TTL, XF_CONTINUE);
	__u32 dest = v->dest;
	const struct xvs_flow_real *r = bpf_map_lookup_elem(&flow_reals, &dest);
	if (!r || !(r->flags & XVS_FREAL_F_AVAILABLE))
		return flow_count(XVS_FLOW_BYPASS_DEST, XF_CONTINUE);
	struct ports *pp = l4;
	if ((void *)(pp + 1) > end)
		return flow_count(XVS_FLOW_BYPASS_MALFORMED, XF_CONTINUE);

	if (v->dir == XVS_FLOW_DIR_OUT) {
		/* FastPath.reply: TTL checked, client hop, SNAT, then the TTL decrement */
		if (v->fwd != XF_FWD_MASQ)
			return flow_count(XVS_FLOW_BYPASS_DEST, XF_CONTINUE);
		if (proto == IPPROTO_SCTP && pp->sport != v->vport)
			return flow_count(XVS_FLOW_BYPASS_SCTP_PORT, XF_CONTINUE);
		__u32 port;
		const __u8 *dmac;
		if (v->hop >= 0) {
			__u32 h = v->hop;
			const struct xvs_flow_nexthop *nh = bpf_map_lookup_elem(&flow_nexthops, &h);
			if (!nh || !(nh->flags & XVS_FNH_F_VALID))
				return flow_count(XVS_FLOW_BYPASS_NEXTHOP, XF_CONTINUE);
			port = nh->port;
			dmac = nh->mac;
		} else {
			port = v->out_port;
			dmac = v->mac;
		}
		const struct xvs_flow_port *p = xf_port(port);
		if (!p)
			return flow_count(XVS_FLOW_BYPASS_NEXTHOP, XF_CONTINUE);
		if (p->flags & XVS_FPORT_F_NO_XDP)
			return flow_count(XVS_FLOW_BYPASS_PORT, XF_CONTINUE);
		if (xf_complete(ctx, 14 + l3off, &pc))
			return flow_count(XVS_FLOW_BYPASS_MALFORMED, XF_CONTINUE);
		xf_account(v, l3len);
		xf_set_macs(eth, dmac, p->mac);
		if (v6) {
			xf_nat6(ip6->saddr.in6_u.u6_addr32, &pp->sport, proto, l4, end, v->vaddr, bpf_ntohs(v->vport));
			ip6->hop_limit -= 1;
		} else {
			xf_nat4(ip, &ip->saddr, &pp->sport, proto, l4, end, bpf_ntohl(v->vaddr[0]), bpf_ntohs(v->vport));
			xf_dec_ttl4(ip);
		}
		return xf_transmit(ctx, p, port);
	}

	/* FastPath.forward + transmitIn: route, TTL, tunnel/MTU, MACs, then NAT */
	__u8 fwd = v->fwd;
	if (fwd != XF_FWD_MASQ && fwd != XF_FWD_ROUTE && fwd != XF_FWD_TUNNEL)
		return flow_count(XVS_FLOW_BYPASS_DEST, XF_CONTINUE);
	if (r->nexthop < 0)
		return flow_count(XVS_FLOW_BYPASS_NEXTHOP, XF_CONTINUE);
	__u32 h = r->nexthop;
	const struct xvs_flow_nexthop *nh = bpf_map_lookup_elem(&flow_nexthops, &h);
	if (!nh || !(nh->flags & XVS_FNH_F_VALID))
		return flow_count(XVS_FLOW_BYPASS_NEXTHOP, XF_CONTINUE);
	__u32 port = nh->port;
	const struct xvs_flow_port *p = xf_port(port);
	if (!p)
		return flow_count(XVS_FLOW_BYPASS_NEXTHOP, XF_CONTINUE);
	/* XDP_TX and a redirect into a veth whose peer has no NAPI are dropped (veth_xdp_xmit): TS sends */
	if (p->flags & XVS_FPORT_F_NO_XDP)
		return flow_count(XVS_FLOW_BYPASS_PORT, XF_CONTINUE);
	if (fwd == XF_FWD_TUNNEL) {
		int outer_v6 = (r->flags & XVS_FREAL_F_V6) != 0;
		if (r->tun_type > XF_TUN_GRE)
			return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE);
		/* a checksum is summed over at most XF_SUM_MAX_WORDS words: larger frames are TS's */
		if (r->tun_csum && r->tun_type != XF_TUN_IPIP && l3len + 12 > XF_SUM_MAX_WORDS * 4)
			return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE);
		__u32 over = xf_tun_overhead(r->tun_type, outer_v6, r->tun_csum);
		if (r->mtu > 0) {
			__s64 tmtu = (__s64)r->mtu - over;
			if (tmtu < (outer_v6 ? XF_IPV6_MIN_MTU : XF_IPV4_MIN_MTU) || l3len > tmtu)
				return flow_count(XVS_FLOW_BYPASS_MTU, XF_CONTINUE);
		}
		if (!(r->tun_src[0] | r->tun_src[1] | r->tun_src[2] | r->tun_src[3]))
			return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE);
		__u8 tos, ttl;
		__u16 df = 0;
		if (v6) {
			tos = (bpf_ntohs(*(__u16 *)ip6) >> 4) & 0xff;
			ttl = hops - 1;
		} else {
			df = bpf_ntohs(ip->frag_off) & XF_IP_DF;
			/* an IPv4-in-IPv4 packet without DF takes an IP id from TS's per-real-server counter */
			if (!outer_v6 && !df)
				return flow_count(XVS_FLOW_BYPASS_TUNNEL, XF_CONTINUE);
			tos = ip->tos;
			ttl = hops - 1;
		}
		/* completed before the head moves: the outer GUE/GRE checksum covers the inner packet.
		 * (If the head cannot move, TS gets the completed frame, which it leaves as it is.) */
		if (xf_complete(ctx, 14 + l3off, &pc))
			return flow_count(XVS_FLOW_BYPASS_MALFORMED, XF_CONTINUE);
		return xf_tunnel(ctx, v, r, nh, p, port, v6, l3len, tos, ttl, df);
	}
	if (r->mtu > 0 && l3len > r->mtu)
		return flow_count(XVS_FLOW_BYPASS_MTU, XF_CONTINUE);
	if (fwd == XF_FWD_MASQ && proto == IPPROTO_SCTP && pp->dport != v->rport)
		return flow_count(XVS_FLOW_BYPASS_SCTP_PORT, XF_CONTINUE);
	if (xf_complete(ctx, 14 + l3off, &pc))
		return flow_count(XVS_FLOW_BYPASS_MALFORMED, XF_CONTINUE);
	xf_account(v, l3len);
	xf_set_macs(eth, nh->mac, p->mac);
	if (v6) {
		ip6->hop_limit -= 1;
		if (fwd == XF_FWD_MASQ)
			xf_nat6(ip6->daddr.in6_u.u6_addr32, &pp->dport, proto, l4, end, r->addr, bpf_ntohs(v->rport));
	} else {
		xf_dec_ttl4(ip);
		if (fwd == XF_FWD_MASQ)
			xf_nat4(ip, &ip->daddr, &pp->dport, proto, l4, end, bpf_ntohl(r->addr[0]), bpf_ntohs(v->rport));
	}
	return xf_transmit(ctx, p, port);
}

#endif /* XVS_FLOW_H */
