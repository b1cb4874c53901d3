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
	__u32 pad;
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
	__u8 pad[2];
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

#endif /* XVS_FLOW_H */
