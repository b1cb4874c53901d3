/* SPDX-License-Identifier: MIT */
/*
 * `xvs bench` helpers (not used by the daemon): the live-frames traffic generator and small
 * BPF object utilities for the benchmark's helper processes.
 *
 * xvs_gen__run runs the xvs_gen XDP program (native/bpf/xvs_gen.bpf.c) with BPF_PROG_RUN and
 * BPF_F_TEST_XDP_LIVE_FRAMES: the kernel builds `repeat` real frames from `frame` in batches and
 * sends each one out of `ifindex` (the program returns XDP_TX) from the calling thread. This is
 * what xdp-tools' xdp-trafficgen does internally, without the tracepoint it needs.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <sched.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <linux/bpf.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "xvs_internal.h"
#include "../bpf/xvs_common.h"

#ifndef BPF_F_TEST_XDP_LIVE_FRAMES
#define BPF_F_TEST_XDP_LIVE_FRAMES (1U << 1)
#endif

int xvs_gen__run(int prog_fd, int ifindex, const void *frame, uint32_t len, uint32_t repeat, uint32_t batch);
int xvs_gen__pin_cpu(int cpu);
int xvs_gen__tc_attach(int ifindex, int prog_fd);
int xvs_gen__percpu_sum_u32(int fd, uint32_t key, uint64_t *out);

/* Send `repeat` copies of `frame` (len bytes) out of ifindex through the generator program,
 * `batch` frames per kernel batch. Blocks until done; returns 0 or -errno. */
int xvs_gen__run(int prog_fd, int ifindex, const void *frame, uint32_t len, uint32_t repeat, uint32_t batch)
{
	if (batch == 0 || batch > XVS_GEN_MAX_BATCH)
		return xvs_fail(EINVAL, "batch size must be 1..%d", XVS_GEN_MAX_BATCH);
	struct xdp_md ctx = { .data = 0, .data_end = len, .ingress_ifindex = (uint32_t)ifindex };
	LIBBPF_OPTS(bpf_test_run_opts, opts,
		    .data_in = frame,
		    .data_size_in = len,
		    .ctx_in = &ctx,
		    .ctx_size_in = sizeof(ctx),
		    .repeat = repeat,
		    .flags = BPF_F_TEST_XDP_LIVE_FRAMES,
		    .batch_size = batch);
	int err = bpf_prog_test_run_opts(prog_fd, &opts);
	if (err)
		return xvs_fail(errno ? errno : -err,
				"BPF_PROG_RUN with live frames on ifindex %d (kernel >= 5.18 with XDP on the device's peer needed)",
				ifindex);
	return 0;
}

/* Pin the calling thread to one CPU. */
int xvs_gen__pin_cpu(int cpu)
{
	cpu_set_t set;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set))
		return xvs_fail(errno, "cannot pin to CPU %d", cpu);
	return 0;
}

/* Attach a tc program at the ingress of ifindex (creating the clsact qdisc). The filter keeps
 * the program after this process exits; deleting the interface removes both. */
int xvs_gen__tc_attach(int ifindex, int prog_fd)
{
	LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = ifindex, .attach_point = BPF_TC_INGRESS);
	int err = bpf_tc_hook_create(&hook);
	if (err && err != -EEXIST)
		return xvs_fail(err, "cannot create the clsact qdisc on ifindex %d", ifindex);
	LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd);
	err = bpf_tc_attach(&hook, &opts);
	if (err)
		return xvs_fail(err, "cannot attach the tc program on ifindex %d", ifindex);
	return 0;
}

/* Sum one key of a per-CPU array of u32 values (values are padded to 8 bytes per CPU). */
int xvs_gen__percpu_sum_u32(int fd, uint32_t key, uint64_t *out)
{
	int ncpu = libbpf_num_possible_cpus();
	if (ncpu <= 0)
		return xvs_fail(-ncpu, "cannot count CPUs");
	uint64_t vals[ncpu]; /* each CPU's u32 sits in an 8-byte slot */
	memset(vals, 0, sizeof(vals));
	if (bpf_map_lookup_elem(fd, &key, vals))
		return xvs_fail(errno, "bpf percpu map lookup");
	uint64_t sum = 0;
	for (int i = 0; i < ncpu; i++)
		sum += (uint32_t)vals[i];
	*out = sum;
	return 0;
}
