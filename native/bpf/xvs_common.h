/* SPDX-License-Identifier: MIT */
/*
 * Constants and map layouts shared by the XDP steering program, the C shim and TypeScript.
 *
 * This header is the single source: build.ts turns every `#define XVS_<NAME> <integer>` line
 * into `export const XVS_<NAME> = <integer>;` in src/ffi/abi.ts. Keep values plain integers
 * (decimal or hex) so that the generator can read them; structs are mirrored by the
 * *_OFF/_SIZE defines next to them, which TS uses to fill map keys byte by byte.
 */
#ifndef XVS_COMMON_H
#define XVS_COMMON_H

/* ---- sizes of the steering maps (entries) ---- */
#define XVS_MAX_IFACES 8           /* interfaces one daemon can own */
#define XVS_MAX_QUEUES 64          /* rx queues per interface that can get a socket */
#define XVS_XSK_SLOTS 512          /* XVS_MAX_IFACES * XVS_MAX_QUEUES: XSKMAP size */
#define XVS_MAX_VIPS 4096          /* virtual services (proto, addr, port) */
#define XVS_MAX_VIP_ADDRS 4096     /* distinct virtual addresses */
#define XVS_MAX_NAT_REALS 65536    /* NAT real servers (proto, addr, port) whose replies we take */
#define XVS_MAX_LOCAL_ADDRS 1024   /* the director's own addresses (their traffic is the kernel's) */

/* values of the nat_reals map: bit 0 set for every entry; the port-0 entry of a real server of a
 * port-0 (all ports) service also carries ANY_PORT: its replies come from any port */
#define XVS_NAT_REAL 1
#define XVS_NAT_REAL_ANY_PORT 2

/* ---- address families as stored in map keys (not AF_* values, to stay 1 byte) ---- */
#define XVS_FAMILY_V4 4
#define XVS_FAMILY_V6 6

/*
 * struct xvs_l4_key: {addr[16], port (network order), proto, family}; 20 bytes.
 * Used by the `vips` map (destination of client packets) and the `nat_reals` map (source of
 * real-server replies). For IPv4 only addr[0..3] is set, the rest is zero.
 */
#define XVS_L4_KEY_ADDR_OFF 0
#define XVS_L4_KEY_PORT_OFF 16
#define XVS_L4_KEY_PROTO_OFF 18
#define XVS_L4_KEY_FAMILY_OFF 19
#define XVS_L4_KEY_SIZE 20

/* struct xvs_addr_key: {addr[16], family, pad[3]}; 20 bytes. `vip_addrs`, `local_addrs`. */
#define XVS_ADDR_KEY_ADDR_OFF 0
#define XVS_ADDR_KEY_FAMILY_OFF 16
#define XVS_ADDR_KEY_SIZE 20

/* ---- per-CPU counters kept by the XDP program (index into the `xdp_stats` array) ---- */
#define XVS_XDP_PASS_NOT_IP 0        /* ARP, LLDP, VLAN-tagged, ...: the kernel's */
#define XVS_XDP_PASS_MALFORMED 1     /* truncated or bad IP header: the kernel drops and counts it */
#define XVS_XDP_PASS_NOT_OURS 2      /* IP traffic for no virtual service and no NAT real server */
#define XVS_XDP_PASS_LOCAL 3         /* real-server traffic to the director's own address (health checks) */
#define XVS_XDP_REDIRECT 4           /* handed to the AF_XDP socket of this rx queue */
#define XVS_XDP_PASS_NO_SOCKET 5     /* ours, but no socket on this queue yet (start-up): kernel */
#define XVS_XDP_FLOW_TX 6            /* flow cache hit, sent back out the interface it came in on (XDP_TX) */
#define XVS_XDP_FLOW_REDIRECT 7      /* flow cache hit, sent out another interface (devmap) */
#define XVS_XDP_STAT_COUNT 8

/* ---- flow cache (native/bpf/xvs_flow.h; TS: src/dataplane/flow-entry.ts, flow-maps.ts) ----
 * The TS fast path (the authority) writes one entry per established connection direction into
 * the `flows` hash map; the steering program looks every TCP/UDP/SCTP packet up there first and,
 * on a hit whose checks all pass, rewrites and transmits the frame itself. A flow names its real
 * server (dest id, index of `flow_reals`) and, for NAT replies, its next hop (index of
 * `flow_nexthops`) by id: those arrays are mirrored from the compiled tables, so a removed real
 * server or a MAC change takes effect without touching any flow. All addresses and ports in these
 * structs are in network order (as on the wire); other integers host order. */
#define XVS_FLOW_DEFAULT_ENTRIES 262144 /* `flows` max_entries unless the daemon sets another */
#define XVS_FLOW_MAX_REALS 16384     /* = MAX_DESTS of src/service/tables.ts */
#define XVS_FLOW_MAX_NEXTHOPS 65536  /* = MAX_NEXTHOPS of src/nexthop/table.ts */
/* struct xvs_flow_key: the packet's own tuple as it arrives (client -> VIP, or real server ->
 * client for NAT replies); IPv4 uses addr word 0, the other words zero. */
#define XVS_FLOW_KEY_SADDR_OFF 0
#define XVS_FLOW_KEY_DADDR_OFF 16
#define XVS_FLOW_KEY_SPORT_OFF 32
#define XVS_FLOW_KEY_DPORT_OFF 34
#define XVS_FLOW_KEY_PROTO_OFF 36
#define XVS_FLOW_KEY_FAMILY_OFF 37   /* XVS_FAMILY_V4 / V6; bytes 38..39 zero */
#define XVS_FLOW_KEY_SIZE 40
/* struct xvs_flow_value */
#define XVS_FLOW_DEST_OFF 0          /* u32 real server id (flow_reals index) */
#define XVS_FLOW_HOP_OFF 4           /* i32 DIR_OUT: next hop id (flow_nexthops), or -1: OUT_PORT + MAC */
#define XVS_FLOW_CONN_OFF 8          /* u32 connection id in its worker's table (for the TS side) */
#define XVS_FLOW_WORKER_OFF 12       /* u16 worker (rx queue) whose table holds the connection */
#define XVS_FLOW_DIR_OFF 14          /* u8 XVS_FLOW_DIR_* */
#define XVS_FLOW_OUT_PORT_OFF 15     /* u8 DIR_OUT with HOP -1: port (flow_ports index) to send on */
#define XVS_FLOW_MAC_OFF 16          /* 6 bytes DIR_OUT with HOP -1: the client's MAC */
#define XVS_FLOW_TUN_SPORT_OFF 22    /* u16 GUE source port of this flow (udp_flow_src_port) */
#define XVS_FLOW_VADDR_OFF 24        /* 16 bytes DIR_OUT: the virtual address replies get as source */
#define XVS_FLOW_VPORT_OFF 40        /* u16 DIR_OUT: the virtual port replies get as source */
#define XVS_FLOW_RPORT_OFF 42        /* u16 DIR_IN NAT: the real server's port (CONN_DPORT) */
#define XVS_FLOW_FWD_OFF 44          /* u8 the connection's forwarding method (FWD_*: its own, not the dest's current) */
#define XVS_FLOW_PACKETS_OFF 48      /* u64 packets forwarded by XDP (atomic adds) */
#define XVS_FLOW_BYTES_OFF 56        /* u64 their IP bytes (ip_vs_in/out_stats count) */
#define XVS_FLOW_LAST_NS_OFF 64      /* u64 CLOCK_BOOTTIME ns of the last one (0: none yet; TS: flowClockNs) */
#define XVS_FLOW_VALUE_SIZE 72
#define XVS_FLOW_DIR_IN 0            /* client -> real server */
#define XVS_FLOW_DIR_OUT 1           /* NAT real server -> client */
/* struct xvs_flow_real (flow_reals array, index = dest id) */
#define XVS_FREAL_ADDR_OFF 0         /* 16 bytes real server address */
#define XVS_FREAL_TUN_SRC_OFF 16     /* 16 bytes tunnel outer source */
#define XVS_FREAL_FLAGS_OFF 32       /* u8 XVS_FREAL_F_* */
#define XVS_FREAL_FWD_OFF 33         /* u8 FWD_* (0 masq, 2 tunnel, 3 route) */
#define XVS_FREAL_TUN_TYPE_OFF 34    /* u8 TUN_* (0 ipip, 1 gue, 2 gre) */
#define XVS_FREAL_TUN_CSUM_OFF 35    /* u8 TUN_CSUM_* (0 none, 1 csum, 2 remcsum) */
#define XVS_FREAL_TUN_PORT_OFF 36    /* u16 GUE destination port */
#define XVS_FREAL_MTU_OFF 40         /* u32 path MTU (0: none) */
#define XVS_FREAL_NEXTHOP_OFF 44     /* i32 next hop id towards the real server, -1 none */
#define XVS_FREAL_SIZE 48
#define XVS_FREAL_F_AVAILABLE 1      /* in use and not in the trash: flows of others go to TS */
#define XVS_FREAL_F_V6 2             /* the real server's address (tunnel outer header) is IPv6 */
/* struct xvs_flow_nexthop (flow_nexthops array, index = next hop id) */
#define XVS_FNH_MAC_OFF 0            /* 6 bytes */
#define XVS_FNH_FLAGS_OFF 6          /* u8 XVS_FNH_F_* */
#define XVS_FNH_PORT_OFF 7           /* u8 port (flow_ports index) */
#define XVS_FNH_SIZE 8
#define XVS_FNH_F_VALID 1            /* resolved: NHF_VALID */
/* struct xvs_flow_port (flow_ports array, index = port), and the `flow_tx` devmap (same index) */
#define XVS_FPORT_IFINDEX_OFF 0      /* u32 */
#define XVS_FPORT_MAC_OFF 4          /* 6 bytes */
#define XVS_FPORT_FLAGS_OFF 10       /* u8 XVS_FPORT_F_* */
#define XVS_FPORT_SIZE 12
#define XVS_FPORT_F_NO_XDP 1         /* its frames sent by XDP were dropped (a veth whose peer has no NAPI): flows out of it are TS's */
#define XVS_FPORT_F_TX_REDIRECT 2    /* a veth: frames back out of it go by a redirect to itself, not XDP_TX (veth_xdp_flush wakes the peer only if it has an XDP program) */
/* flow_cfg array, u32 words */
#define XVS_FLOW_CFG_ENABLED 0       /* 0: the program does not look flows up at all */
#define XVS_FLOW_CFG_ON 1            /* its value: flows are looked up (0: not a single lookup) */
/* its value when a stopped xvs left the program (restart.ts): flows are looked up while `hold` lasts, then every packet passes */
#define XVS_FLOW_CFG_HANDED_OVER 2
#define XVS_FLOW_CFG_WORDS 1
/* per-CPU counters of the flow stage (index into `flow_stats`); every frame that reaches the
 * stage moves one. A forwarded frame also moves XVS_XDP_FLOW_TX / XVS_XDP_FLOW_REDIRECT in
 * xdp_stats (its one final verdict); all others continue to the steering below it. */
#define XVS_FLOW_FWD 0               /* hit, rewritten and transmitted */
#define XVS_FLOW_MISS 1              /* no entry */
#define XVS_FLOW_NOT_ELIGIBLE 2      /* no ports to look up: later fragment, truncated, other protocol */
#define XVS_FLOW_BYPASS_MALFORMED 3  /* hit, but lengths/IHL/checksum/version wrong: TS counts it */
#define XVS_FLOW_BYPASS_FRAGMENT 4   /* hit, first fragment */
#define XVS_FLOW_BYPASS_IP_OPTIONS 5 /* hit, IPv4 options (IHL > 5) */
#define XVS_FLOW_BYPASS_TCP_FLAGS 6  /* hit, SYN/FIN/RST or no ACK: a state change, TS's */
#define XVS_FLOW_BYPASS_TTL 7        /* hit, TTL / hop limit <= 1 */
#define XVS_FLOW_BYPASS_MTU 8        /* hit, over the path MTU */
#define XVS_FLOW_BYPASS_PARTIAL_CSUM 9 /* hit, partial checksum XDP does not complete (SCTP CRC 0, segment > 4096 bytes) */
#define XVS_FLOW_BYPASS_DEST 10      /* hit, real server unavailable/removed or method not cacheable */
#define XVS_FLOW_BYPASS_NEXTHOP 11   /* hit, next hop or port unresolved */
#define XVS_FLOW_BYPASS_TUNNEL 12    /* hit, tunnel packet XDP cannot build the same (checksum, IPv4 id, no source, headroom) */
#define XVS_FLOW_BYPASS_SCTP_PORT 13 /* hit, SCTP NAT changing a port (CRC32c recompute) */
#define XVS_FLOW_BYPASS_TX 14        /* hit and rewritten, but the devmap redirect failed: dropped */
#define XVS_FLOW_BYPASS_PORT 15      /* hit, the way out is a port marked XVS_FPORT_F_NO_XDP */
#define XVS_FLOW_STAT_COUNT 16

/* ---- the real-server decap helper (native/bpf/xvs_decap.bpf.c, src/decap) ---- */
#define XVS_DECAP_MAX_GUE_PORTS 16   /* GUE ports one interface listens on */
/* per-CPU counters (index into `decap_stats`) */
#define XVS_DECAP_IPIP 0             /* IPIP / 6in4 / 6in6 packets opened */
#define XVS_DECAP_GUE 1              /* GUE packets opened */
#define XVS_DECAP_GRE 2              /* GRE packets opened */
#define XVS_DECAP_PASS 3             /* not a tunnel packet (or UDP to another port): the kernel's */
#define XVS_DECAP_BAD_GUE 4          /* to a GUE port but not a version 0 data message of IPv4/IPv6: passed */
#define XVS_DECAP_BAD_GRE 5          /* GRE with a flag other than C, another version or protocol: passed */
#define XVS_DECAP_FRAGMENT 6         /* fragmented outer packet: cannot be opened here, passed */
#define XVS_DECAP_MALFORMED 7        /* the inner packet is not the IP version announced: dropped */
#define XVS_DECAP_NOT_LOCAL 8        /* outer destination is not this host (transit): passed */
#define XVS_DECAP_ECN_DROP 9         /* CE outside, not-ECT inside (RFC 6040): dropped */
#define XVS_DECAP_STAT_COUNT 10

/* ---- burst descriptors exchanged between TS and the shim (u32 words per packet) ---- */
#define XVS_DESC_WORDS 4
#define XVS_DESC_ADDR 0       /* UMEM offset of the first byte of the frame */
#define XVS_DESC_LEN 1        /* frame length in bytes */
#define XVS_DESC_IN_PORT 2    /* index of the interface the frame arrived on */
#define XVS_DESC_OUT_PORT 3   /* set by TS: interface index to send on, or XVS_OUT_DROP */
#define XVS_OUT_DROP 255      /* recycle the frame into the free pool */
#define XVS_MAX_BURST 256     /* largest burst the shim accepts */

/* ---- shim counters (index into the u64 array returned by xvs_port__stats) ---- */
#define XVS_SHIM_RX 0             /* frames taken from rx rings */
#define XVS_SHIM_TX 1             /* frames put on tx rings */
#define XVS_SHIM_TX_RING_FULL 2   /* frames dropped because a tx ring was full */
#define XVS_SHIM_DROPPED 3        /* frames recycled on request (TS verdict drop) */
#define XVS_SHIM_KICKS 4          /* sendto() wakeups of the tx path */
#define XVS_SHIM_KICK_ERRORS 5    /* sendto() failures other than EAGAIN/EBUSY/ENOBUFS */
#define XVS_SHIM_FILL_EMPTY 6     /* times the free pool could not refill a fill ring fully */
#define XVS_SHIM_POLLS 7          /* poll() calls made while idle */
#define XVS_SHIM_STAT_COUNT 8

/* ---- UMEM geometry defaults ---- */
#define XVS_FRAME_SIZE 4096       /* bytes per UMEM frame (page-sized: copy mode on veth needs it) */
#define XVS_RING_SIZE 2048        /* entries in each rx/tx/fill/completion ring */
#define XVS_FRAME_HEADROOM 256    /* bytes kept free before each frame, room for tunnel headers */

/* ---- shim output records (byte offsets; all integers host order unless noted) ---- */
/* xvs_link__info: */
#define XVS_LINK_IFINDEX_OFF 0     /* u32 */
#define XVS_LINK_MTU_OFF 4         /* u32 */
#define XVS_LINK_FLAGS_OFF 8       /* u32, IFF_* */
#define XVS_LINK_MAC_OFF 12        /* 6 bytes */
#define XVS_LINK_SIZE 20
/* xvs_nl__route_get and each xvs_nl__dump_routes entry: */
#define XVS_ROUTE_DST_OFF 0        /* 16 bytes, network order */
#define XVS_ROUTE_DST_LEN_OFF 16   /* u8 prefix length */
#define XVS_ROUTE_FAMILY_OFF 17    /* u8 XVS_FAMILY_* */
#define XVS_ROUTE_TYPE_OFF 18      /* u8 RTN_* (1 unicast, 2 local, 6 blackhole, 7 unreachable ...) */
#define XVS_ROUTE_HAS_GW_OFF 19    /* u8 */
#define XVS_ROUTE_OIF_OFF 20       /* u32 */
#define XVS_ROUTE_GW_OFF 24        /* 16 bytes, network order */
#define XVS_ROUTE_PRIORITY_OFF 40  /* u32 metric */
#define XVS_ROUTE_MTU_OFF 44       /* u32, 0 when the route sets none */
#define XVS_ROUTE_PREFSRC_OFF 48   /* 16 bytes, network order */
#define XVS_ROUTE_SIZE 64
/* each xvs_nl__dump_neighs entry: */
#define XVS_NEIGH_ADDR_OFF 0       /* 16 bytes */
#define XVS_NEIGH_FAMILY_OFF 16    /* u8 */
#define XVS_NEIGH_HAS_MAC_OFF 17   /* u8 */
#define XVS_NEIGH_STATE_OFF 18     /* u16 NUD_* */
#define XVS_NEIGH_IFINDEX_OFF 20   /* u32 */
#define XVS_NEIGH_MAC_OFF 24       /* 6 bytes */
#define XVS_NEIGH_SIZE 32
/* each xvs_nl__dump_addrs entry: */
#define XVS_IFADDR_ADDR_OFF 0      /* 16 bytes */
#define XVS_IFADDR_FAMILY_OFF 16   /* u8 */
#define XVS_IFADDR_PREFIX_OFF 17   /* u8 */
#define XVS_IFADDR_IFINDEX_OFF 20  /* u32 */
#define XVS_IFADDR_SIZE 24

/* NUD_* states worth forwarding to (linux/neighbour.h) */
#define XVS_NUD_INCOMPLETE 0x01
#define XVS_NUD_REACHABLE 0x02
#define XVS_NUD_STALE 0x04
#define XVS_NUD_DELAY 0x08
#define XVS_NUD_PROBE 0x10
#define XVS_NUD_FAILED 0x20
#define XVS_NUD_NOARP 0x40
#define XVS_NUD_PERMANENT 0x80

/* XDP attach flags (linux/if_link.h) and AF_XDP bind flags (linux/if_xdp.h) */
#define XVS_XDP_FLAGS_UPDATE_IF_NOEXIST 1
#define XVS_XDP_FLAGS_SKB_MODE 2
#define XVS_XDP_FLAGS_DRV_MODE 4
#define XVS_XDP_BIND_COPY 2
#define XVS_XDP_BIND_ZEROCOPY 4
#define XVS_XDP_BIND_NEED_WAKEUP 8

#ifndef __XVS_NO_STRUCTS
#include <linux/types.h>

struct xvs_l4_key {
	__u32 addr[4];
	__u16 port;
	__u8 proto;
	__u8 family;
};

struct xvs_addr_key {
	__u32 addr[4];
	__u8 family;
	__u8 pad[3];
};
#endif

/* ---- xvs bench (native/bpf/xvs_gen.bpf.c, native/shim/xvs_gen.c, src/tools/bench) ---- */
/* gen_cfg value: how the live-frames generator varies the frame it is given (u32, host order) */
#define XVS_GEN_CFG_FLOWS_OFF 0       /* distinct flows to cycle through (0 or 1: frame unchanged) */
#define XVS_GEN_CFG_PORTS_OFF 4       /* source ports per source address */
#define XVS_GEN_CFG_PORT_BASE_OFF 8   /* first source port */
#define XVS_GEN_CFG_ADDR_BASE_OFF 12  /* first IPv4 source address */
#define XVS_GEN_CFG_TX_EVERY_OFF 16   /* send one frame in N, drop the others (even pacing; 0 or 1: all) */
#define XVS_GEN_CFG_HDR_OFF 20        /* Ethernet + IPv4 + UDP headers written into every frame */
#define XVS_GEN_HDR_LEN 42
#define XVS_GEN_CFG_SIZE 64
/* sink_cfg value: which packets the counting sink takes (u32, host order) */
#define XVS_SINK_CFG_PORT_OFF 0       /* UDP destination port counted and dropped */
#define XVS_SINK_CFG_TUN_PORT_OFF 4   /* outer UDP port of GUE tunnels, also counted (0: none) */
#define XVS_SINK_CFG_REPLY_FIRST_OFF 8 /* 1: the tc sink sends the first packet of each flow back (bench udp64-replied) */
#define XVS_SINK_CFG_SIZE 12
/* sink_stats (per-CPU u64) */
#define XVS_SINK_PKTS 0               /* packets counted and dropped (UDP to the ports, IPIP, GRE, 6in4) */
#define XVS_SINK_BYTES 1              /* their frame bytes */
#define XVS_SINK_PASSED 2             /* everything else, passed to the kernel */
#define XVS_SINK_REPLIED 3            /* first packets of a flow sent back as its reply (reply_first) */
#define XVS_SINK_STAT_COUNT 4
#define XVS_SINK_REPLY_FLOWS 65536    /* flows the tc sink remembers as replied (LRU) */
#define XVS_GEN_MAX_BATCH 256         /* frames per BPF_PROG_RUN batch (kernel limit) */
/* poll-loop profile kept by the shim while enabled (xvs_port__profile; u64 each) */
#define XVS_PROF_BURSTS 0             /* xvs_port__burst calls */
#define XVS_PROF_TX_NS 1              /* putting the previous burst on tx rings / the free pool */
#define XVS_PROF_KICK_NS 2            /* sendto() wakeups of the tx path (copy mode: the kernel's tx work) */
#define XVS_PROF_RECLAIM_NS 3         /* completions back to the pool and fill rings topped up */
#define XVS_PROF_RX_NS 4              /* taking the next burst from rx rings */
#define XVS_PROF_IDLE_NS 5            /* sleeping in poll() while idle */
#define XVS_PROF_RX_FRAMES 6          /* frames received */
/* the kernel's XDP_STATISTICS of the port's sockets (summed), filled when profiling stops */
#define XVS_PROF_XSK_RX_DROPPED 8     /* dropped for other reasons */
#define XVS_PROF_XSK_RX_RING_FULL 9   /* dropped: rx ring full (the poll loop fell behind) */
#define XVS_PROF_XSK_FILL_EMPTY 10    /* no frame on the fill ring when one arrived */
#define XVS_PROF_XSK_TX_RING_EMPTY 11 /* the kernel found the tx ring empty */
#define XVS_PROF_XSK_INVALID 12       /* invalid rx + tx descriptors */
#define XVS_PROF_COUNT 16

#ifndef __XVS_NO_STRUCTS
struct xvs_gen_cfg {
	__u32 flows;
	__u32 ports;
	__u32 port_base;
	__u32 addr_base;
	__u32 tx_every;
	__u8 hdr[XVS_GEN_CFG_SIZE - XVS_GEN_CFG_HDR_OFF];
};

struct xvs_sink_cfg {
	__u32 port;
	__u32 tun_port;
	__u32 reply_first;
};
#endif

#endif /* XVS_COMMON_H */
