/* SPDX-License-Identifier: MIT */
/*
 * xskfwd: the C reference AF_XDP forwarder of `xvs bench` (not part of the product).
 *
 * It is the ceiling of xvs's I/O path: the same steering program (xvs_steer.bpf.o, given with
 * --steer), the same socket layout (one UMEM shared by a socket on each interface, frames moved
 * between rings without a copy), the same ring sizes, burst size, kicks and idle poll as
 * native/shim/xvs_xsk.c, and per packet the same work as the xvs fast path does for a UDP NAT
 * packet, written in C: parse and check Ethernet/IPv4/UDP (IPv4 header checksum verified),
 * hash the 5-tuple, look the flow up in an open-addressing table (a new flow gets the next
 * backend, round robin), rewrite destination address and port, MACs and TTL with incremental
 * checksums (RFC 1624), and send it out of the other interface.
 *
 *   xskfwd --in IF --out IF --steer FILE --vip A --port P --backends A[,B...] --dst-mac M
 *          [--cpu N] [--ring 2048] [--burst 256] [--idle-ms 1]
 *
 * Prints "ready" once the sockets are up; on SIGTERM/SIGINT prints one JSON line of counters,
 * detaches the program and exits. Built by `xvs bench` with gcc (-O2), linked with libxdp/libbpf.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <linux/if_xdp.h>
#ifndef SOL_XDP
#define SOL_XDP 283
#endif
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <xdp/xsk.h>
#include "xvs_common.h"

#define MAX_BACKENDS 16
#define FLOW_SLOTS (1u << 18)

struct sock {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	int fd;
	uint32_t tx_reserved, tx_in_flight;
};

struct desc {
	uint64_t addr;
	uint32_t len;
	uint32_t in, out;
};

static struct {
	void *area;
	uint64_t area_size;
	struct xsk_umem *umem;
	uint32_t ring, nframes, burst;
	uint64_t *free_frames;
	uint32_t nfree;
	struct sock s[2];
	uint32_t vip;
	uint16_t port;
	uint32_t backends[MAX_BACKENDS];
	uint32_t nbackends, rr;
	uint8_t src_mac[6], dst_mac[6];
	uint64_t rx, tx, dropped, kicks, tx_full, polls, new_flows;
} g;

/* flow table: key (saddr, daddr, ports), value backend index + 1; cleared when half full */
static struct {
	uint32_t saddr, daddr, ports, val;
} *flows;
static uint32_t nflows;

static volatile sig_atomic_t stop;
static void on_sig(int sig)
{
	(void)sig;
	stop = 1;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "xskfwd: %s: %s\n", what, strerror(err < 0 ? -err : err));
	exit(1);
}

static uint32_t hash3(uint32_t a, uint32_t b, uint32_t c)
{
	uint32_t h = a * 0x9e3779b1u;
	h ^= b + 0x7f4a7c15u + (h << 6) + (h >> 2);
	h ^= c + 0x85ebca6bu + (h << 6) + (h >> 2);
	h ^= h >> 16;
	h *= 0x85ebca6bu;
	h ^= h >> 13;
	return h;
}

static uint32_t flow_backend(uint32_t saddr, uint32_t daddr, uint32_t ports)
{
	uint32_t i = hash3(saddr, daddr, ports) & (FLOW_SLOTS - 1);
	for (;;) {
		if (flows[i].val == 0)
			break;
		if (flows[i].saddr == saddr && flows[i].daddr == daddr && flows[i].ports == ports)
			return flows[i].val - 1;
		i = (i + 1) & (FLOW_SLOTS - 1);
	}
	if (nflows >= FLOW_SLOTS / 2) {
		memset(flows, 0, sizeof(*flows) * FLOW_SLOTS);
		nflows = 0;
		i = hash3(saddr, daddr, ports) & (FLOW_SLOTS - 1);
	}
	uint32_t b = g.rr++ % g.nbackends;
	flows[i].saddr = saddr;
	flows[i].daddr = daddr;
	flows[i].ports = ports;
	flows[i].val = b + 1;
	nflows++;
	g.new_flows++;
	return b;
}

static inline uint16_t csum_replace4(uint16_t check, uint32_t from, uint32_t to)
{
	/* RFC 1624: HC' = ~(~HC + ~m + m'), over 16-bit halves, values in network order */
	uint32_t sum = (uint16_t)~check;
	sum += (uint16_t)~(from >> 16) + (uint16_t)~(from & 0xffff);
	sum += (to >> 16) + (to & 0xffff);
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static inline uint16_t csum_replace2(uint16_t check, uint16_t from, uint16_t to)
{
	uint32_t sum = (uint16_t)~check;
	sum += (uint16_t)~from;
	sum += to;
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

/* One frame: returns the output socket (1) or -1 to drop. Same checks as the xvs fast path. */
static int process(uint8_t *f, uint32_t len)
{
	if (len < 14 + 20 + 8)
		return -1;
	if (f[12] != 0x08 || f[13] != 0x00)
		return -1;
	uint8_t *ip = f + 14;
	uint32_t ihl = (ip[0] & 0x0f) * 4;
	if ((ip[0] >> 4) != 4 || ihl < 20)
		return -1;
	uint32_t tot = (ip[2] << 8) | ip[3];
	if (tot < ihl || tot > len - 14)
		return -1;
	uint32_t sum = 0;
	for (uint32_t i = 0; i < ihl; i += 2)
		sum += (ip[i] << 8) | ip[i + 1];
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	if (sum != 0xffff)
		return -1;
	if (((ip[6] << 8) | ip[7]) & 0x3fff) /* fragment */
		return -1;
	if (ip[9] != IPPROTO_UDP || ip[8] <= 1)
		return -1;
	uint8_t *udp = ip + ihl;
	if (tot < ihl + 8)
		return -1;
	uint32_t saddr, daddr, ports;
	memcpy(&saddr, ip + 12, 4);
	memcpy(&daddr, ip + 16, 4);
	memcpy(&ports, udp, 4);
	uint16_t dport;
	memcpy(&dport, udp + 2, 2);
	if (daddr != g.vip || dport != g.port)
		return -1;
	uint32_t nb = g.backends[flow_backend(saddr, daddr, ports)];
	/* destination address: IP and UDP checksums */
	uint16_t ipc, udpc;
	memcpy(&ipc, ip + 10, 2);
	memcpy(&udpc, udp + 6, 2);
	ipc = csum_replace4(ipc, daddr, nb);
	if (udpc) {
		udpc = csum_replace4(udpc, daddr, nb);
		if (!udpc)
			udpc = 0xffff;
	}
	memcpy(ip + 16, &nb, 4);
	/* TTL */
	uint16_t oldw = (ip[8] << 8) | ip[9];
	ip[8]--;
	uint16_t neww = (ip[8] << 8) | ip[9];
	ipc = csum_replace2(ipc, htons(oldw), htons(neww));
	memcpy(ip + 10, &ipc, 2);
	memcpy(udp + 6, &udpc, 2);
	memcpy(f, g.dst_mac, 6);
	memcpy(f + 6, g.src_mac, 6);
	return 1;
}

static void refill(struct sock *s)
{
	uint32_t want = xsk_prod_nb_free(&s->fill, g.ring);
	if (want > g.nfree)
		want = g.nfree;
	if (!want)
		return;
	uint32_t idx, got = xsk_ring_prod__reserve(&s->fill, want, &idx);
	for (uint32_t i = 0; i < got; i++)
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = g.free_frames[--g.nfree];
	xsk_ring_prod__submit(&s->fill, got);
}

static void reclaim(struct sock *s)
{
	uint32_t idx, n = xsk_ring_cons__peek(&s->comp, g.ring, &idx);
	for (uint32_t i = 0; i < n; i++)
		g.free_frames[g.nfree++] = *xsk_ring_cons__comp_addr(&s->comp, idx + i) & ~(uint64_t)(XVS_FRAME_SIZE - 1);
	xsk_ring_cons__release(&s->comp, n);
	s->tx_in_flight -= n;
}

static void kick(struct sock *s)
{
	for (int tries = 0; tries < 64; tries++) {
		g.kicks++;
		if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			return;
		if (errno != EAGAIN && errno != EBUSY)
			return;
	}
}

static void mac_of(const char *ifname, uint8_t *mac)
{
	struct ifreq ifr;
	int fd = socket(AF_INET, SOCK_DGRAM, 0);
	memset(&ifr, 0, sizeof(ifr));
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	if (fd < 0 || ioctl(fd, SIOCGIFHWADDR, &ifr))
		die("SIOCGIFHWADDR", errno);
	memcpy(mac, ifr.ifr_hwaddr.sa_data, 6);
	close(fd);
}

static int parse_mac(const char *s, uint8_t *m)
{
	return sscanf(s, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) == 6 ? 0 : -1;
}

int main(int argc, char **argv)
{
	const char *in = NULL, *out = NULL, *steer = NULL, *vip = NULL, *backends = NULL, *dmac = NULL;
	int cpu = -1, idle_ms = 1;
	g.ring = XVS_RING_SIZE;
	g.burst = XVS_MAX_BURST;
	g.port = htons(9000);
	for (int i = 1; i + 1 < argc; i += 2) {
		const char *k = argv[i], *v = argv[i + 1];
		if (!strcmp(k, "--in")) in = v;
		else if (!strcmp(k, "--out")) out = v;
		else if (!strcmp(k, "--steer")) steer = v;
		else if (!strcmp(k, "--vip")) vip = v;
		else if (!strcmp(k, "--port")) g.port = htons((uint16_t)atoi(v));
		else if (!strcmp(k, "--backends")) backends = v;
		else if (!strcmp(k, "--dst-mac")) dmac = v;
		else if (!strcmp(k, "--cpu")) cpu = atoi(v);
		else if (!strcmp(k, "--ring")) g.ring = (uint32_t)atoi(v);
		else if (!strcmp(k, "--burst")) g.burst = (uint32_t)atoi(v);
		else if (!strcmp(k, "--idle-ms")) idle_ms = atoi(v);
		else { fprintf(stderr, "xskfwd: unknown option %s\n", k); return 2; }
	}
	if (!in || !out || !steer || !vip || !backends || !dmac) {
		fprintf(stderr, "usage: xskfwd --in IF --out IF --steer FILE --vip A --port P --backends A[,B] --dst-mac M [--cpu N]\n");
		return 2;
	}
	if (g.burst == 0 || g.burst > XVS_MAX_BURST)
		g.burst = XVS_MAX_BURST;
	if (inet_pton(AF_INET, vip, &g.vip) != 1 || parse_mac(dmac, g.dst_mac))
		die("bad --vip or --dst-mac", EINVAL);
	char *list = strdup(backends);
	for (char *t = strtok(list, ","); t && g.nbackends < MAX_BACKENDS; t = strtok(NULL, ","))
		if (inet_pton(AF_INET, t, &g.backends[g.nbackends++]) != 1)
			die("bad backend address", EINVAL);
	free(list);
	if (cpu >= 0) {
		cpu_set_t set;
		CPU_ZERO(&set);
		CPU_SET(cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set))
			die("sched_setaffinity", errno);
	}
	flows = calloc(FLOW_SLOTS, sizeof(*flows));
	if (!flows)
		die("calloc", ENOMEM);
	int ifs[2] = { (int)if_nametoindex(in), (int)if_nametoindex(out) };
	if (!ifs[0] || !ifs[1])
		die("no such interface", ENODEV);
	mac_of(out, g.src_mac);

	/* the steering program, configured for one UDP virtual service */
	struct bpf_object *obj = bpf_object__open_file(steer, NULL);
	if (!obj || bpf_object__load(obj))
		die("cannot load the steering object", errno);
	int prog = bpf_program__fd(bpf_object__find_program_by_name(obj, "xvs_steer"));
	int xsks = bpf_object__find_map_fd_by_name(obj, "xsks");
	int slots = bpf_object__find_map_fd_by_name(obj, "if_slots");
	int vips = bpf_object__find_map_fd_by_name(obj, "vips");
	if (prog < 0 || xsks < 0 || slots < 0 || vips < 0)
		die("steering object lacks a program or map", ENOENT);
	for (uint32_t i = 0; i < 2; i++) {
		uint32_t key = (uint32_t)ifs[i], base = i * XVS_MAX_QUEUES;
		if (bpf_map_update_elem(slots, &key, &base, 0))
			die("if_slots", errno);
	}
	struct xvs_l4_key vk;
	memset(&vk, 0, sizeof(vk));
	vk.addr[0] = g.vip;
	vk.port = g.port;
	vk.proto = IPPROTO_UDP;
	vk.family = XVS_FAMILY_V4;
	uint32_t one = 1;
	if (bpf_map_update_elem(vips, &vk, &one, 0))
		die("vips", errno);

	/* UMEM and sockets: the geometry of src/ffi/xsk.ts defaultGeometry(2) */
	g.nframes = g.ring * 2 * 2 + XVS_MAX_BURST;
	g.area_size = (uint64_t)g.nframes * XVS_FRAME_SIZE;
	g.area = mmap(NULL, g.area_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (g.area == MAP_FAILED)
		die("mmap", errno);
	g.free_frames = calloc(g.nframes, sizeof(uint64_t));
	for (uint32_t i = 0; i < g.nframes; i++)
		g.free_frames[g.nfree++] = (uint64_t)(g.nframes - 1 - i) * XVS_FRAME_SIZE;
	struct xsk_umem_config ucfg = {
		.fill_size = g.ring, .comp_size = g.ring, .frame_size = XVS_FRAME_SIZE,
		.frame_headroom = XVS_FRAME_HEADROOM, .flags = 0,
	};
	int err = xsk_umem__create(&g.umem, g.area, g.area_size, &g.s[0].fill, &g.s[0].comp, &ucfg);
	if (err)
		die("xsk_umem__create", err);
	for (int i = 0; i < 2; i++) {
		struct xsk_socket_config cfg = {
			.rx_size = g.ring, .tx_size = g.ring,
			.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
			.xdp_flags = 0, .bind_flags = XDP_USE_NEED_WAKEUP,
		};
		err = xsk_socket__create_shared(&g.s[i].xsk, i ? out : in, 0, g.umem, &g.s[i].rx, &g.s[i].tx,
						&g.s[i].fill, &g.s[i].comp, &cfg);
		if (err)
			die("xsk_socket__create_shared", err);
		g.s[i].fd = xsk_socket__fd(g.s[i].xsk);
		uint32_t slot = (uint32_t)i * XVS_MAX_QUEUES;
		if (bpf_map_update_elem(xsks, &slot, &g.s[i].fd, 0))
			die("xsks", errno);
		refill(&g.s[i]);
	}
	for (int i = 0; i < 2; i++) {
		err = bpf_xdp_attach(ifs[i], prog, XDP_FLAGS_UPDATE_IF_NOEXIST | XDP_FLAGS_DRV_MODE, NULL);
		if (err)
			die("bpf_xdp_attach", err);
	}
	signal(SIGTERM, on_sig);
	signal(SIGINT, on_sig);
	printf("ready\n");
	fflush(stdout);

	struct desc *d = calloc(XVS_MAX_BURST, sizeof(*d));
	struct pollfd pfds[2] = { { .fd = g.s[0].fd, .events = POLLIN }, { .fd = g.s[1].fd, .events = POLLIN } };
	uint32_t n_done = 0, rx_next = 0;
	while (!stop) {
		/* 1. previous burst onto tx rings or back to the pool */
		for (uint32_t i = 0; i < n_done; i++) {
			if (d[i].out > 1) {
				g.free_frames[g.nfree++] = d[i].addr & ~(uint64_t)(XVS_FRAME_SIZE - 1);
				g.dropped++;
				continue;
			}
			struct sock *s = &g.s[d[i].out];
			uint32_t idx;
			if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1) {
				g.free_frames[g.nfree++] = d[i].addr & ~(uint64_t)(XVS_FRAME_SIZE - 1);
				g.tx_full++;
				continue;
			}
			struct xdp_desc *td = xsk_ring_prod__tx_desc(&s->tx, idx);
			td->addr = d[i].addr;
			td->len = d[i].len;
			td->options = 0;
			s->tx_reserved++;
		}
		for (int k = 0; k < 2; k++) {
			struct sock *s = &g.s[k];
			if (s->tx_reserved) {
				xsk_ring_prod__submit(&s->tx, s->tx_reserved);
				g.tx += s->tx_reserved;
				s->tx_in_flight += s->tx_reserved;
				s->tx_reserved = 0;
			}
			if (s->tx_in_flight)
				kick(s);
		}
		/* 2. completions and fill rings */
		for (int k = 0; k < 2; k++) {
			reclaim(&g.s[k]);
			refill(&g.s[k]);
		}
		/* 3. next burst, round robin over the sockets */
		uint32_t got = 0;
		for (int k = 0; k < 2 && got < g.burst; k++) {
			uint32_t si = (rx_next + k) % 2, idx;
			struct sock *s = &g.s[si];
			uint32_t n = xsk_ring_cons__peek(&s->rx, g.burst - got, &idx);
			for (uint32_t i = 0; i < n; i++) {
				const struct xdp_desc *rd = xsk_ring_cons__rx_desc(&s->rx, idx + i);
				d[got + i].addr = rd->addr;
				d[got + i].len = rd->len;
				d[got + i].in = si;
			}
			xsk_ring_cons__release(&s->rx, n);
			got += n;
		}
		rx_next ^= 1;
		g.rx += got;
		if (!got) {
			n_done = 0;
			if (idle_ms > 0) {
				for (int k = 0; k < 2; k++)
					if (xsk_ring_prod__needs_wakeup(&g.s[k].fill))
						recvfrom(g.s[k].fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
				g.polls++;
				poll(pfds, 2, idle_ms);
			}
			continue;
		}
		/* 4. the fast path */
		for (uint32_t i = 0; i < got; i++) {
			uint8_t *f = xsk_umem__get_data(g.area, d[i].addr);
			int o = process(f, d[i].len);
			d[i].out = o < 0 ? 255 : (uint32_t)o;
		}
		n_done = got;
	}
	struct xdp_statistics xs_sum;
	memset(&xs_sum, 0, sizeof(xs_sum));
	for (int i = 0; i < 2; i++) {
		struct xdp_statistics st;
		socklen_t len = sizeof(st);
		memset(&st, 0, sizeof(st));
		if (getsockopt(g.s[i].fd, SOL_XDP, XDP_STATISTICS, &st, &len) == 0) {
			xs_sum.rx_dropped += st.rx_dropped;
			xs_sum.rx_ring_full += st.rx_ring_full;
			xs_sum.rx_fill_ring_empty_descs += st.rx_fill_ring_empty_descs;
			xs_sum.tx_ring_empty_descs += st.tx_ring_empty_descs;
		}
	}
	printf("{\"rx\":%llu,\"tx\":%llu,\"dropped\":%llu,\"txRingFull\":%llu,\"kicks\":%llu,\"polls\":%llu,\"newFlows\":%llu,"
	       "\"xsk\":{\"rxDropped\":%llu,\"rxRingFull\":%llu,\"fillRingEmpty\":%llu,\"txRingEmpty\":%llu}}\n",
	       (unsigned long long)g.rx, (unsigned long long)g.tx, (unsigned long long)g.dropped,
	       (unsigned long long)g.tx_full, (unsigned long long)g.kicks, (unsigned long long)g.polls,
	       (unsigned long long)g.new_flows, (unsigned long long)xs_sum.rx_dropped,
	       (unsigned long long)xs_sum.rx_ring_full, (unsigned long long)xs_sum.rx_fill_ring_empty_descs,
	       (unsigned long long)xs_sum.tx_ring_empty_descs);
	fflush(stdout);
	for (int i = 0; i < 2; i++)
		bpf_xdp_detach(ifs[i], XDP_FLAGS_DRV_MODE, NULL);
	for (int i = 0; i < 2; i++)
		xsk_socket__delete(g.s[i].xsk);
	xsk_umem__delete(g.umem);
	bpf_object__close(obj);
	return 0;
}
