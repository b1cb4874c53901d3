/* SPDX-License-Identifier: MIT */
/* BPF object loading from memory (the object is embedded in the executable), XDP attach/detach
 * and map access for the control plane. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/if_link.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "xvs_internal.h"

struct xvs_bpf {
	struct bpf_object *obj;
};

/* Open and load a BPF object, map `resize` (if not NULL) given `entries` entries before loading
 * (the flow cache's size is a daemon flag). xvs_bpf__load is this without a resize. */
struct xvs_bpf *xvs_bpf__load_sized(const void *buf, size_t len, const char *name, const char *resize,
				    uint32_t entries)
{
	LIBBPF_OPTS(bpf_object_open_opts, opts, .object_name = name);
	struct bpf_object *obj = bpf_object__open_mem(buf, len, &opts);
	if (!obj) {
		xvs_fail(errno, "cannot open BPF object %s", name);
		return NULL;
	}
	if (resize) {
		struct bpf_map *m = bpf_object__find_map_by_name(obj, resize);
		int err = m ? bpf_map__set_max_entries(m, entries) : -ENOENT;
		if (err) {
			xvs_fail(-err, "cannot size map %s of BPF object %s to %u entries", resize, name, entries);
			bpf_object__close(obj);
			return NULL;
		}
	}
	int err = bpf_object__load(obj);
	if (err) {
		xvs_fail(err, "cannot load BPF object %s (kernel BPF support, or memlock limits?)", name);
		bpf_object__close(obj);
		return NULL;
	}
	struct xvs_bpf *b = calloc(1, sizeof(*b));
	if (!b) {
		bpf_object__close(obj);
		xvs_fail(ENOMEM, "cannot allocate");
		return NULL;
	}
	b->obj = obj;
	return b;
}

struct xvs_bpf *xvs_bpf__load(const void *buf, size_t len, const char *name)
{
	return xvs_bpf__load_sized(buf, len, name, NULL, 0);
}

int xvs_bpf__fd(struct xvs_bpf *b, const char *name)
{
	struct bpf_map *m = bpf_object__find_map_by_name(b->obj, name);
	if (m)
		return bpf_map__fd(m);
	struct bpf_program *p = bpf_object__find_program_by_name(b->obj, name);
	if (p)
		return bpf_program__fd(p);
	return xvs_fail(ENOENT, "no map or program named %s in the BPF object", name);
}

void xvs_bpf__close(struct xvs_bpf *b)
{
	if (!b)
		return;
	bpf_object__close(b->obj);
	free(b);
}

int xvs_xdp__attach(int ifindex, int prog_fd, uint32_t flags)
{
	int err = bpf_xdp_attach(ifindex, prog_fd, flags, NULL);
	if (err)
		return xvs_fail(err, "cannot attach XDP program to ifindex %d", ifindex);
	return 0;
}

int xvs_xdp__detach(int ifindex, int expected_prog_fd, uint32_t flags)
{
	/* XDP_FLAGS_REPLACE: only remove the program if it is still ours. */
	LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = expected_prog_fd);
	int err = bpf_xdp_detach(ifindex, flags | (expected_prog_fd >= 0 ? XDP_FLAGS_REPLACE : 0),
				 expected_prog_fd >= 0 ? &opts : NULL);
	if (err)
		return xvs_fail(err, "cannot detach XDP program from ifindex %d", ifindex);
	return 0;
}

int xvs_xdp__query(int ifindex, uint32_t flags)
{
	uint32_t id = 0;
	int err = bpf_xdp_query_id(ifindex, flags, &id);
	if (err)
		return xvs_fail(err, "cannot query XDP program on ifindex %d", ifindex);
	return (int)id;
}

int xvs_map__update(int fd, const void *key, const void *value, uint64_t flags)
{
	int err = bpf_map_update_elem(fd, key, value, flags);
	return err ? xvs_fail(errno, "bpf map update") : 0;
}

int xvs_map__delete(int fd, const void *key)
{
	int err = bpf_map_delete_elem(fd, key);
	return err ? xvs_fail(errno, "bpf map delete") : 0;
}

int xvs_map__lookup(int fd, const void *key, void *value)
{
	int err = bpf_map_lookup_elem(fd, key, value);
	return err ? xvs_fail(errno, "bpf map lookup") : 0;
}

int xvs_map__sum_percpu_u64(int fd, uint32_t key, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return xvs_fail(-ncpu, "cannot count CPUs");
	uint64_t *vals = calloc(ncpu, sizeof(uint64_t));
	if (!vals)
		return xvs_fail(ENOMEM, "cannot allocate");
	int err = bpf_map_lookup_elem(fd, &key, vals);
	if (err) {
		free(vals);
		return xvs_fail(errno, "bpf percpu map lookup");
	}
	uint64_t sum = 0;
	for (int i = 0; i < ncpu; i++)
		sum += vals[i];
	free(vals);
	*out = sum;
	return 0;
}

/* Delete every key of a hash map (the control plane rewrites steering maps from scratch). */
int xvs_map__clear(int fd, uint32_t key_size)
{
	unsigned char key[64], next[64];
	if (key_size > sizeof(key))
		return xvs_fail(EINVAL, "key too large");
	int n = 0;
	while (bpf_map_get_next_key(fd, NULL, next) == 0) {
		memcpy(key, next, key_size);
		if (bpf_map_delete_elem(fd, key))
			return xvs_fail(errno, "bpf map delete");
		n++;
	}
	return n;
}

/*
 * Batches (the flow cache: one FFI call per batch, never per entry). Each writes status[i] (0, or
 * the errno of entry i, at most 255) and returns how many entries succeeded. The kernel's batch
 * calls stop at the first failing entry (a full hash map: E2BIG; a missing key: ENOENT); that
 * entry is marked and the batch goes on after it, so one full map or stale key costs one more
 * syscall, not the batch.
 */
static uint8_t errno_byte(int e)
{
	return (uint8_t)(e <= 0 ? 255 : e > 255 ? 255 : e);
}

/* status[i] of one entry done by its own syscall (`err` its return; errno still the call's). */
static uint32_t entry_status(uint8_t *status, uint32_t i, int err)
{
	status[i] = err ? errno_byte(errno) : 0;
	return err ? 0 : 1;
}

/* Entry i of an array of `size`-byte entries. */
static const char *nth(const void *base, uint32_t i, uint32_t size)
{
	return (const char *)base + (size_t)i * size;
}

/* The two batch writes share their loop (map_write_batch); deletes have no values. */
enum batch_op { BATCH_UPDATE, BATCH_DELETE };

static int map_write_batch(enum batch_op op, int fd, const void *keys, const void *values, uint32_t n,
			   uint32_t key_size, uint32_t value_size, uint64_t flags, uint8_t *status)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts, .elem_flags = flags);
	uint32_t i = 0, ok = 0;
	while (i < n) {
		uint32_t count = n - i;
		int err = op == BATCH_DELETE ? bpf_map_delete_batch(fd, nth(keys, i, key_size), &count, &opts)
					     : bpf_map_update_batch(fd, nth(keys, i, key_size), nth(values, i, value_size),
								    &count, &opts);
		int e = err ? errno : 0;
		if (count > n - i)
			count = n - i;
		memset(status + i, 0, count);
		ok += count;
		i += count;
		if (!err)
			break;
		if (e == EINVAL || e == ENOTSUP || e == EOPNOTSUPP) {
			/* maps without batch ops (or an older kernel): one entry at a time, still one FFI call */
			for (; i < n; i++) {
				int r = op == BATCH_DELETE ? bpf_map_delete_elem(fd, nth(keys, i, key_size))
							   : bpf_map_update_elem(fd, nth(keys, i, key_size),
										 nth(values, i, value_size), flags);
				ok += entry_status(status, i, r);
			}
			break;
		}
		if (i < n) {
			/* the entry the kernel stopped at */
			status[i] = errno_byte(e);
			i++;
		}
	}
	return (int)ok;
}

int xvs_map__update_batch(int fd, const void *keys, const void *values, uint32_t n, uint32_t key_size,
			  uint32_t value_size, uint64_t flags, uint8_t *status)
{
	return map_write_batch(BATCH_UPDATE, fd, keys, values, n, key_size, value_size, flags, status);
}

int xvs_map__delete_batch(int fd, const void *keys, uint32_t n, uint32_t key_size, uint8_t *status)
{
	return map_write_batch(BATCH_DELETE, fd, keys, NULL, n, key_size, 0, 0, status);
}

/* The values of n given keys (the kernel has no batch lookup by key: one syscall each, one FFI call). */
int xvs_map__lookup_keys(int fd, const void *keys, void *values, uint32_t n, uint32_t key_size,
			 uint32_t value_size, uint8_t *status)
{
	uint32_t ok = 0;
	for (uint32_t i = 0; i < n; i++)
		ok += entry_status(status, i,
				   bpf_map_lookup_elem(fd, nth(keys, i, key_size), (char *)values + (size_t)i * value_size));
	return (int)ok;
}

/*
 * Walk a hash map in batches (BPF_MAP_LOOKUP_BATCH): up to `cap` keys and values per call.
 * `cursor` holds the kernel's position (key_size bytes, at least 8); `first` 1 starts a walk.
 * Returns the number of entries written, and sets *done to 1 when the walk is over.
 */
int xvs_map__dump_batch(int fd, void *cursor, int first, void *keys, void *values, uint32_t cap,
			uint32_t *done)
{
	LIBBPF_OPTS(bpf_map_batch_opts, opts);
	uint32_t count = cap;
	int err = bpf_map_lookup_batch(fd, first ? NULL : cursor, cursor, keys, values, &count, &opts);
	*done = 0;
	if (err) {
		if (errno == ENOENT) {
			*done = 1;
			return (int)count;
		}
		return xvs_fail(errno, "bpf map lookup batch");
	}
	return (int)count;
}

/* CLOCK_BOOTTIME in ns: the clock of the flow cache's last_ns (bpf_ktime_get_boot_ns) */
int xvs_clock__boottime(uint64_t *out)
{
	struct timespec ts;
	if (clock_gettime(CLOCK_BOOTTIME, &ts))
		return xvs_fail(errno, "clock_gettime");
	*out = (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
	return 0;
}

/* Programs and maps another process (or an earlier xvs) loaded: found by kernel id. */
int xvs_bpf__prog_fd_by_id(uint32_t id)
{
	int fd = bpf_prog_get_fd_by_id(id);
	return fd < 0 ? xvs_fail(errno, "no BPF program with id %u", id) : fd;
}

int xvs_bpf__map_fd_by_id(uint32_t id)
{
	int fd = bpf_map_get_fd_by_id(id);
	return fd < 0 ? xvs_fail(errno, "no BPF map with id %u", id) : fd;
}

/* struct bpf_prog_info / bpf_map_info of a descriptor into `info` (`*len` bytes in, written out). */
int xvs_bpf__obj_info(int fd, void *info, uint32_t *len)
{
	if (bpf_obj_get_info_by_fd(fd, info, len))
		return xvs_fail(errno, "cannot read BPF object info");
	return 0;
}

/* The kernel id of a BPF map or program descriptor (both infos start with type, id). */
int xvs_bpf__obj_id(int fd)
{
	struct bpf_map_info info;
	uint32_t len = sizeof(info);
	memset(&info, 0, sizeof(info));
	if (bpf_obj_get_info_by_fd(fd, &info, &len))
		return xvs_fail(errno, "cannot read BPF object info");
	return (int)info.id;
}

int xvs_bpf__test_run(int prog_fd, const void *data, uint32_t len, const void *ctx, uint32_t ctx_len,
		      void *out, uint32_t out_cap, uint32_t *result)
{
	LIBBPF_OPTS(bpf_test_run_opts, opts, .data_in = data, .data_size_in = len, .data_out = out,
		    .data_size_out = out_cap, .ctx_in = ctx, .ctx_size_in = ctx ? ctx_len : 0, .repeat = 1);
	if (bpf_prog_test_run_opts(prog_fd, &opts))
		return xvs_fail(errno, "BPF_PROG_TEST_RUN of program fd %d", prog_fd);
	result[0] = opts.retval;
	result[1] = opts.data_size_out;
	return 0;
}

int xvs_fd__close(int fd)
{
	return close(fd) ? xvs_fail(errno, "close") : 0;
}
