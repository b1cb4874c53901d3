/* SPDX-License-Identifier: MIT */
/*
 * AF_XDP ports. A port belongs to one worker, which owns a set of rx queues of every interface:
 * one UMEM, shared by one socket per (interface, queue) (XDP_SHARED_UMEM across devices and
 * queues), so that a frame received on one interface is sent on another by moving its UMEM
 * address from an rx ring to a tx ring: no copy in userspace. Each socket has its own fill and
 * completion rings (the kernel requires them for a shared UMEM on another device or queue); the
 * port keeps one pool of free frames that feeds every fill ring and takes back every completion
 * and every dropped frame.
 *
 * Descriptors name interfaces, not sockets: XVS_DESC_IN_PORT is the interface number of the
 * socket a frame came in on (whatever its queue), XVS_DESC_OUT_PORT the interface to send on,
 * through that interface's first socket in this port (its tx queue is this worker's alone).
 *
 * xvs_port__burst is the only call the poll loop makes: it sends/recycles the previous burst,
 * reclaims completions, refills, and receives the next burst, all in one FFI crossing.
 */
#include <errno.h>
#include <net/if.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_xdp.h>
#include <bpf/bpf.h>
#include <xdp/xsk.h>
#include "xvs_internal.h"
#include "../bpf/xvs_common.h"

#ifndef SOL_XDP
#define SOL_XDP 283
#endif

struct xvs_sock {
	struct xsk_socket *xsk;
	struct xsk_ring_cons rx;
	struct xsk_ring_prod tx;
	struct xsk_ring_prod fill;
	struct xsk_ring_cons comp;
	int fd;
	int zerocopy;
	uint32_t iface; /* interface number in this port: what descriptors carry */
	uint32_t queue;
	uint32_t tx_reserved; /* descriptors written since the last submit */
	uint32_t tx_in_flight; /* submitted, not yet completed */
};

struct xvs_port {
	void *area;
	uint64_t area_size;
	struct xsk_umem *umem;
	struct xsk_ring_prod fill0; /* the UMEM's own rings: used by the first socket */
	struct xsk_ring_cons comp0;
	uint32_t frame_size;
	uint32_t nframes;
	uint32_t ring_size;
	uint64_t frame_mask;
	uint64_t *free_frames;
	uint32_t nfree;
	uint32_t nsocks;
	uint32_t rx_next; /* round-robin start, so no socket starves another */
	uint32_t fill_target; /* frames each fill ring is topped up to: the pool's fair share */
	uint32_t nifaces;
	uint32_t ifindex[XVS_MAX_IFACES]; /* interface number -> ifindex */
	uint32_t tx_sock[XVS_MAX_IFACES]; /* interface number -> the socket it sends on */
	struct xvs_sock socks[XVS_XSK_SLOTS];
	struct pollfd pfds[XVS_XSK_SLOTS];
	uint64_t stats[XVS_SHIM_STAT_COUNT];
	int profile; /* time the phases of every burst into prof[] (xvs bench --profile) */
	uint64_t prof[XVS_PROF_COUNT];
};

uint64_t *xvs_port__profile(struct xvs_port *p, int enable);

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Phase timing: one clock read per phase, only while profiling (one branch per burst otherwise). */
#define PHASE_END(idx)                                    \
	do {                                              \
		if (prof) {                               \
			uint64_t t_ = now_ns();           \
			p->prof[(idx)] += t_ - t0;        \
			t0 = t_;                          \
		}                                         \
	} while (0)

struct xvs_port *xvs_port__create(uint32_t nframes, uint32_t frame_size, uint32_t headroom,
				  uint32_t ring_size)
{
	if (!frame_size || (frame_size & (frame_size - 1)) || !ring_size || (ring_size & (ring_size - 1))) {
		xvs_fail(EINVAL, "frame size and ring size must be powers of two");
		return NULL;
	}
	struct xvs_port *p = calloc(1, sizeof(*p));
	if (!p) {
		xvs_fail(ENOMEM, "cannot allocate port");
		return NULL;
	}
	p->frame_size = frame_size;
	p->nframes = nframes;
	p->ring_size = ring_size;
	p->frame_mask = ~(uint64_t)(frame_size - 1);
	p->area_size = (uint64_t)nframes * frame_size;
	p->area = mmap(NULL, p->area_size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p->area == MAP_FAILED) {
		xvs_fail(errno, "cannot map %llu bytes of UMEM", (unsigned long long)p->area_size);
		free(p);
		return NULL;
	}
	p->free_frames = calloc(nframes, sizeof(uint64_t));
	if (!p->free_frames) {
		munmap(p->area, p->area_size);
		free(p);
		xvs_fail(ENOMEM, "cannot allocate frame pool");
		return NULL;
	}
	for (uint32_t i = 0; i < nframes; i++)
		p->free_frames[p->nfree++] = (uint64_t)(nframes - 1 - i) * frame_size;
	struct xsk_umem_config cfg = {
		.fill_size = ring_size,
		.comp_size = ring_size,
		.frame_size = frame_size,
		.frame_headroom = headroom,
		.flags = 0,
	};
	int err = xsk_umem__create(&p->umem, p->area, p->area_size, &p->fill0, &p->comp0, &cfg);
	if (err) {
		xvs_fail(err, "cannot register UMEM (AF_XDP support in the kernel, memlock limit?)");
		munmap(p->area, p->area_size);
		free(p->free_frames);
		free(p);
		return NULL;
	}
	return p;
}

static void refill(struct xvs_port *p, struct xvs_sock *s)
{
	uint32_t level = p->ring_size - xsk_prod_nb_free(&s->fill, p->ring_size);
	if (level >= p->fill_target)
		return;
	uint32_t want = p->fill_target - level;
	if (want > p->nfree) {
		p->stats[XVS_SHIM_FILL_EMPTY]++;
		want = p->nfree;
	}
	if (!want)
		return;
	uint32_t idx;
	uint32_t got = xsk_ring_prod__reserve(&s->fill, want, &idx);
	for (uint32_t i = 0; i < got; i++)
		*xsk_ring_prod__fill_addr(&s->fill, idx + i) = p->free_frames[--p->nfree];
	xsk_ring_prod__submit(&s->fill, got);
}

int xvs_port__add_iface(struct xvs_port *p, const char *ifname, uint32_t queue, uint32_t bind_flags,
			int xskmap_fd, uint32_t slot)
{
	if (p->nsocks >= XVS_XSK_SLOTS)
		return xvs_fail(ENOSPC, "too many sockets in one port (max %d)", XVS_XSK_SLOTS);
	uint32_t ifindex = if_nametoindex(ifname);
	if (!ifindex)
		return xvs_fail(errno, "no interface %s", ifname);
	uint32_t iface = 0;
	while (iface < p->nifaces && p->ifindex[iface] != ifindex)
		iface++;
	if (iface == p->nifaces && p->nifaces >= XVS_MAX_IFACES)
		return xvs_fail(ENOSPC, "too many interfaces in one port (max %d)", XVS_MAX_IFACES);
	for (uint32_t k = 0; k < p->nsocks; k++)
		if (p->socks[k].iface == iface && p->socks[k].queue == queue)
			return xvs_fail(EEXIST, "%s queue %u has a socket in this port already", ifname, queue);
	struct xvs_sock *s = &p->socks[p->nsocks];
	memset(s, 0, sizeof(*s));
	s->iface = iface;
	s->queue = queue;
	struct xsk_socket_config cfg = {
		.rx_size = p->ring_size,
		.tx_size = p->ring_size,
		.libxdp_flags = XSK_LIBXDP_FLAGS__INHIBIT_PROG_LOAD,
		.xdp_flags = 0,
		.bind_flags = (uint16_t)bind_flags,
	};
	struct xsk_ring_prod *fill = p->nsocks == 0 ? &p->fill0 : &s->fill;
	struct xsk_ring_cons *comp = p->nsocks == 0 ? &p->comp0 : &s->comp;
	int err = xsk_socket__create_shared(&s->xsk, ifname, queue, p->umem, &s->rx, &s->tx, fill, comp,
					    &cfg);
	if (err)
		return xvs_fail(err, "cannot create AF_XDP socket on %s queue %u", ifname, queue);
	if (p->nsocks == 0) {
		s->fill = p->fill0;
		s->comp = p->comp0;
	}
	s->fd = xsk_socket__fd(s->xsk);
	struct xdp_options opts = {0};
	socklen_t optlen = sizeof(opts);
	if (getsockopt(s->fd, SOL_XDP, XDP_OPTIONS, &opts, &optlen) == 0)
		s->zerocopy = !!(opts.flags & XDP_OPTIONS_ZEROCOPY);
	if (xskmap_fd >= 0) {
		if (bpf_map_update_elem(xskmap_fd, &slot, &s->fd, 0)) {
			err = xvs_fail(errno, "cannot register the socket of %s in the XSKMAP", ifname);
			xsk_socket__delete(s->xsk);
			return err;
		}
	}
	p->pfds[p->nsocks].fd = s->fd;
	p->pfds[p->nsocks].events = POLLIN;
	/* each fill ring gets its share of the pool (half of it: the other half is in flight on rx and
	 * tx rings): a port sized for its first sockets (xsk.ts defaultGeometry) fills them whole; a
	 * queue added later (ethtool -L) shrinks every share rather than starve the newcomer, whose
	 * packets the kernel would drop with an empty fill ring. Fuller rings drain as they receive. */
	uint32_t share = (p->nframes > XVS_MAX_BURST ? p->nframes - XVS_MAX_BURST : p->nframes) / (2 * (p->nsocks + 1));
	p->fill_target = share < p->ring_size ? (share ? share : 1) : p->ring_size;
	refill(p, s);
	if (iface == p->nifaces) {
		p->ifindex[iface] = ifindex;
		p->tx_sock[iface] = p->nsocks;
		p->nifaces++;
	}
	p->nsocks++;
	return (int)iface;
}

void *xvs_port__umem(struct xvs_port *p)
{
	return p->area;
}

uint64_t xvs_port__umem_size(struct xvs_port *p)
{
	return p->area_size;
}

uint64_t *xvs_port__stats(struct xvs_port *p)
{
	return p->stats;
}

/* Turn phase timing on or off; returns the XVS_PROF_* counters (zeroed when turned on). Turning
 * it off also fills in the kernel's XDP_STATISTICS of the sockets, summed. */
uint64_t *xvs_port__profile(struct xvs_port *p, int enable)
{
	if (enable && !p->profile)
		memset(p->prof, 0, sizeof(p->prof));
	if (!enable) {
		for (int i = XVS_PROF_XSK_RX_DROPPED; i <= XVS_PROF_XSK_INVALID; i++)
			p->prof[i] = 0;
		for (uint32_t k = 0; k < p->nsocks; k++) {
			struct xdp_statistics st;
			socklen_t len = sizeof(st);
			memset(&st, 0, sizeof(st));
			if (getsockopt(p->socks[k].fd, SOL_XDP, XDP_STATISTICS, &st, &len))
				continue;
			p->prof[XVS_PROF_XSK_RX_DROPPED] += st.rx_dropped;
			p->prof[XVS_PROF_XSK_RX_RING_FULL] += st.rx_ring_full;
			p->prof[XVS_PROF_XSK_FILL_EMPTY] += st.rx_fill_ring_empty_descs;
			p->prof[XVS_PROF_XSK_TX_RING_EMPTY] += st.tx_ring_empty_descs;
			p->prof[XVS_PROF_XSK_INVALID] += st.rx_invalid_descs + st.tx_invalid_descs;
		}
	}
	p->profile = enable;
	return p->prof;
}

int xvs_port__bind_mode(struct xvs_port *p, uint32_t iface)
{
	if (iface >= p->nifaces)
		return xvs_fail(EINVAL, "no interface %u in this port", iface);
	return p->socks[p->tx_sock[iface]].zerocopy;
}

/* Wake the kernel's tx path. Copy mode sends at most 32 frames per call and answers EAGAIN
 * while more are queued, so keep kicking (bounded) until the ring is drained. */
static void kick_tx(struct xvs_port *p, struct xvs_sock *s)
{
	if (s->zerocopy && !xsk_ring_prod__needs_wakeup(&s->tx))
		return;
	for (int tries = 0; tries < 64; tries++) {
		p->stats[XVS_SHIM_KICKS]++;
		if (sendto(s->fd, NULL, 0, MSG_DONTWAIT, NULL, 0) >= 0)
			return;
		if (errno == EAGAIN || errno == EBUSY) {
			continue;
		}
		if (errno != ENOBUFS && errno != ENETDOWN)
			p->stats[XVS_SHIM_KICK_ERRORS]++;
		return;
	}
}

static void reclaim(struct xvs_port *p, struct xvs_sock *s)
{
	uint32_t idx;
	uint32_t n = xsk_ring_cons__peek(&s->comp, p->ring_size, &idx);
	for (uint32_t i = 0; i < n; i++)
		p->free_frames[p->nfree++] = *xsk_ring_cons__comp_addr(&s->comp, idx + i) & p->frame_mask;
	xsk_ring_cons__release(&s->comp, n);
	s->tx_in_flight -= n;
}

static uint32_t receive(struct xvs_port *p, uint32_t *descs, uint32_t max_rx)
{
	uint32_t got = 0;
	for (uint32_t k = 0; k < p->nsocks && got < max_rx; k++) {
		uint32_t si = (p->rx_next + k) % p->nsocks;
		struct xvs_sock *s = &p->socks[si];
		uint32_t idx;
		uint32_t n = xsk_ring_cons__peek(&s->rx, max_rx - got, &idx);
		for (uint32_t i = 0; i < n; i++) {
			const struct xdp_desc *d = xsk_ring_cons__rx_desc(&s->rx, idx + i);
			uint32_t *o = descs + (got + i) * XVS_DESC_WORDS;
			o[XVS_DESC_ADDR] = (uint32_t)d->addr;
			o[XVS_DESC_LEN] = d->len;
			o[XVS_DESC_IN_PORT] = s->iface;
			o[XVS_DESC_OUT_PORT] = XVS_OUT_DROP;
		}
		xsk_ring_cons__release(&s->rx, n);
		got += n;
	}
	p->rx_next = p->nsocks ? (p->rx_next + 1) % p->nsocks : 0;
	p->stats[XVS_SHIM_RX] += got;
	return got;
}

int xvs_port__burst(struct xvs_port *p, uint32_t *descs, uint32_t n_done, uint32_t max_rx,
		    int idle_timeout_ms)
{
	if (n_done > XVS_MAX_BURST || max_rx > XVS_MAX_BURST)
		return xvs_fail(EINVAL, "burst larger than %d", XVS_MAX_BURST);
	const int prof = p->profile;
	uint64_t t0 = prof ? now_ns() : 0;

	/* 1. the previous burst: onto tx rings, or back to the pool */
	for (uint32_t i = 0; i < n_done; i++) {
		const uint32_t *d = descs + i * XVS_DESC_WORDS;
		uint32_t out = d[XVS_DESC_OUT_PORT];
		if (out >= p->nifaces) {
			p->free_frames[p->nfree++] = d[XVS_DESC_ADDR] & p->frame_mask;
			p->stats[XVS_SHIM_DROPPED]++;
			continue;
		}
		struct xvs_sock *s = &p->socks[p->tx_sock[out]];
		uint32_t idx;
		if (xsk_ring_prod__reserve(&s->tx, 1, &idx) != 1) {
			p->free_frames[p->nfree++] = d[XVS_DESC_ADDR] & p->frame_mask;
			p->stats[XVS_SHIM_TX_RING_FULL]++;
			continue;
		}
		struct xdp_desc *td = xsk_ring_prod__tx_desc(&s->tx, idx);
		td->addr = d[XVS_DESC_ADDR];
		td->len = d[XVS_DESC_LEN];
		td->options = 0;
		s->tx_reserved++;
	}
	for (uint32_t k = 0; k < p->nsocks; k++) {
		struct xvs_sock *s = &p->socks[k];
		if (s->tx_reserved) {
			xsk_ring_prod__submit(&s->tx, s->tx_reserved);
			p->stats[XVS_SHIM_TX] += s->tx_reserved;
			s->tx_in_flight += s->tx_reserved;
			s->tx_reserved = 0;
		}
	}
	PHASE_END(XVS_PROF_TX_NS);
	for (uint32_t k = 0; k < p->nsocks; k++)
		if (p->socks[k].tx_in_flight)
			kick_tx(p, &p->socks[k]);
	PHASE_END(XVS_PROF_KICK_NS);

	/* 2. completions back to the pool, fill rings topped up */
	for (uint32_t k = 0; k < p->nsocks; k++) {
		reclaim(p, &p->socks[k]);
		refill(p, &p->socks[k]);
	}
	PHASE_END(XVS_PROF_RECLAIM_NS);

	/* 3. the next burst */
	uint32_t got = receive(p, descs, max_rx);
	PHASE_END(XVS_PROF_RX_NS);
	if (prof) {
		p->prof[XVS_PROF_BURSTS]++;
		p->prof[XVS_PROF_RX_FRAMES] += got;
	}
	if (got || idle_timeout_ms <= 0)
		return (int)got;

	/* idle: sleep in poll() instead of spinning, and wake the rx path where the driver asks */
	for (uint32_t k = 0; k < p->nsocks; k++)
		if (xsk_ring_prod__needs_wakeup(&p->socks[k].fill))
			recvfrom(p->socks[k].fd, NULL, 0, MSG_DONTWAIT, NULL, NULL);
	p->stats[XVS_SHIM_POLLS]++;
	int ready = poll(p->pfds, p->nsocks, idle_timeout_ms);
	PHASE_END(XVS_PROF_IDLE_NS);
	if (ready <= 0)
		return 0;
	got = receive(p, descs, max_rx);
	PHASE_END(XVS_PROF_RX_NS);
	if (prof)
		p->prof[XVS_PROF_RX_FRAMES] += got;
	return (int)got;
}

void xvs_port__destroy(struct xvs_port *p)
{
	if (!p)
		return;
	for (uint32_t k = 0; k < p->nsocks; k++)
		xsk_socket__delete(p->socks[k].xsk);
	xsk_umem__delete(p->umem);
	munmap(p->area, p->area_size);
	free(p->free_frames);
	free(p);
}
