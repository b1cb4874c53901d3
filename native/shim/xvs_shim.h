/* SPDX-License-Identifier: MIT */
/*
 * xvs C shim: the parts TypeScript cannot do well. Every function returns 0 (or a count / a
 * handle) on success and a negative errno on failure; the text of the last failure is kept
 * per thread and read with xvs_last_error(). Nothing here is called per packet: the data path
 * crosses into C once per burst (xvs_port__burst).
 */
#ifndef XVS_SHIM_H
#define XVS_SHIM_H

#include <stdint.h>
#include <stddef.h>

const char *xvs_last_error(void);
const char *xvs_shim_version(void);

/* ---- BPF objects, XDP attachment, maps (xvs_bpf.c) ---- */
struct xvs_bpf;
struct xvs_bpf *xvs_bpf__load(const void *obj, size_t len, const char *name);
int xvs_bpf__fd(struct xvs_bpf *b, const char *map_or_prog);
void xvs_bpf__close(struct xvs_bpf *b);
int xvs_xdp__attach(int ifindex, int prog_fd, uint32_t flags);
int xvs_xdp__detach(int ifindex, int expected_prog_fd, uint32_t flags);
int xvs_xdp__query(int ifindex, uint32_t flags); /* attached program id, 0 if none */
int xvs_map__update(int fd, const void *key, const void *value, uint64_t flags);
int xvs_map__delete(int fd, const void *key);
int xvs_map__lookup(int fd, const void *key, void *value);
int xvs_map__sum_percpu_u64(int fd, uint32_t key, uint64_t *out);
int xvs_map__clear(int fd, uint32_t key_size);
int xvs_map__update_batch(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size,
			  uint32_t value_size, uint64_t flags, uint8_t *status);
int xvs_map__delete_batch(int fd, const void *keys, uint32_t n, uint32_t key_size, uint8_t *status);
int xvs_map__lookup_keys(int fd, const void *keys, void *values, uint32_t n, uint32_t key_size,
			 uint32_t value_size, uint8_t *status);
int xvs_map__dump_batch(int fd, void *cursor, int first, void *keys, void *values, uint32_t cap,
			uint32_t *done);
int xvs_clock__boottime(uint64_t *out);
struct xvs_bpf *xvs_bpf__load_sized(const void *obj, size_t len, const char *name, const char *resize,
				    uint32_t entries);
int xvs_bpf__prog_fd_by_id(uint32_t id);
int xvs_bpf__map_fd_by_id(uint32_t id);
int xvs_bpf__obj_info(int fd, void *info, uint32_t *len);
int xvs_bpf__obj_id(int fd);
int xvs_fd__close(int fd);
/* BPF_PROG_TEST_RUN (tests only): run a loaded program once over a copy of `data` with the
 * context `ctx` (NULL for the kernel's default); result[0] = the program's return value,
 * result[1] = bytes of the frame as the program left it, copied to `out` (at most out_cap). */
int xvs_bpf__test_run(int prog_fd, const void *data, uint32_t len, const void *ctx, uint32_t ctx_len,
		      void *out, uint32_t out_cap, uint32_t *result);

/* ---- ethtool (xvs_ethtool.c): driver name (its length), driver statistics: names of
 * ETH_GSTRING_LEN (32) bytes each and values; returns how many, at most cap ---- */
int xvs_ethtool__driver(const char *ifname, char *out, uint32_t cap);
int xvs_ethtool__stats(const char *ifname, char *names, uint64_t *values, uint32_t cap);
/* generic netlink "netdev" (xvs_netdev.c): the interface's xdp-features (NETDEV_XDP_ACT_* bits) */
int xvs_netdev__xdp_features(uint32_t ifindex, uint64_t *out);

/* ---- AF_XDP ports: one UMEM shared by one socket per (interface, rx queue), owned by one worker
 * (xvs_xsk.c). add_iface returns the interface's number in the port (the same for every queue of
 * one interface): the value descriptors carry in XVS_DESC_IN_PORT / XVS_DESC_OUT_PORT. ---- */
struct xvs_port;
struct xvs_port *xvs_port__create(uint32_t nframes, uint32_t frame_size, uint32_t headroom,
				  uint32_t ring_size);
int xvs_port__add_iface(struct xvs_port *p, const char *ifname, uint32_t queue, uint32_t bind_flags,
			int xskmap_fd, uint32_t slot);
void *xvs_port__umem(struct xvs_port *p);
uint64_t xvs_port__umem_size(struct xvs_port *p);
uint64_t *xvs_port__stats(struct xvs_port *p);
int xvs_port__bind_mode(struct xvs_port *p, uint32_t iface); /* 1 zero-copy, 0 copy */
int xvs_port__burst(struct xvs_port *p, uint32_t *descs, uint32_t n_done, uint32_t max_rx,
		    int idle_timeout_ms);
void xvs_port__destroy(struct xvs_port *p);

/* ---- rtnetlink and interfaces (xvs_netlink.c) ---- */
int xvs_link__info(const char *ifname, uint8_t *out);
int xvs_nl__route_get(int family, const uint8_t *dst, uint8_t *out);
int xvs_nl__neigh_get(int ifindex, int family, const uint8_t *addr, uint8_t *mac_out);
int xvs_nl__neigh_resolve(int ifindex, int family, const uint8_t *addr);
int xvs_nl__dump_addrs(uint8_t *buf, int cap);
int xvs_nl__dump_routes(int family, uint8_t *buf, int cap);
int xvs_nl__dump_neighs(int family, uint8_t *buf, int cap);
int xvs_nl__events_open(void);
int xvs_nl__events_drain(int fd);
void xvs_nl__close(int fd);

/* 2 MiB pages advised (MADV_HUGEPAGE) inside [addr, addr + len), or -errno */
int xvs_mem__hugepages(void *addr, uint64_t len);

#endif
