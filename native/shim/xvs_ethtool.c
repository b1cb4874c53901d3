/* SPDX-License-Identifier: MIT */
/*
 * ethtool ioctls (SIOCETHTOOL) for the flow cache's veth check (docs/flow-cache.md "veth peers"):
 * an interface's driver name (ETHTOOL_GDRVINFO) and its driver statistics (ETH_SS_STATS names
 * with ETHTOOL_GSTRINGS, values with ETHTOOL_GSTATS), as `ethtool -i` and `ethtool -S` read them.
 * Control thread only (a housekeeping pass), never per packet.
 */
#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/ethtool.h>
#include <linux/sockios.h>
#include "xvs_internal.h"

static int eth_ioctl(const char *ifname, void *cmd)
{
	struct ifreq ifr;
	if (strlen(ifname) >= IFNAMSIZ)
		return xvs_fail(EINVAL, "interface name too long: %s", ifname);
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return xvs_fail(errno, "cannot open a socket for ethtool");
	memset(&ifr, 0, sizeof(ifr));
	strcpy(ifr.ifr_name, ifname);
	ifr.ifr_data = cmd;
	int rc = ioctl(fd, SIOCETHTOOL, &ifr);
	int err = errno;
	close(fd);
	if (rc < 0)
		return xvs_fail(err, "ethtool ioctl on %s", ifname);
	return 0;
}

int xvs_ethtool__driver(const char *ifname, char *out, uint32_t cap)
{
	struct ethtool_drvinfo info;
	memset(&info, 0, sizeof(info));
	info.cmd = ETHTOOL_GDRVINFO;
	int rc = eth_ioctl(ifname, &info);
	if (rc < 0)
		return rc;
	if (cap == 0)
		return xvs_fail(EINVAL, "no room for the driver name");
	size_t n = strnlen(info.driver, sizeof(info.driver));
	if (n >= cap)
		n = cap - 1;
	memcpy(out, info.driver, n);
	out[n] = 0;
	return (int)n;
}

int xvs_ethtool__stats(const char *ifname, char *names, uint64_t *values, uint32_t cap)
{
	struct {
		struct ethtool_sset_info hdr;
		uint32_t len;
	} sset;
	memset(&sset, 0, sizeof(sset));
	sset.hdr.cmd = ETHTOOL_GSSET_INFO;
	sset.hdr.sset_mask = 1ULL << ETH_SS_STATS;
	int rc = eth_ioctl(ifname, &sset);
	if (rc < 0)
		return rc;
	uint32_t n = (sset.hdr.sset_mask & (1ULL << ETH_SS_STATS)) ? sset.len : 0;
	if (n == 0)
		return 0;
	if (n > cap)
		return xvs_fail(ENOSPC, "%s has %u statistics, room for %u", ifname, n, cap);
	struct ethtool_gstrings *gs = calloc(1, sizeof(*gs) + (size_t)n * ETH_GSTRING_LEN);
	struct ethtool_stats *st = calloc(1, sizeof(*st) + (size_t)n * sizeof(uint64_t));
	if (!gs || !st) {
		free(gs);
		free(st);
		return xvs_fail(ENOMEM, "ethtool statistics of %s", ifname);
	}
	gs->cmd = ETHTOOL_GSTRINGS;
	gs->string_set = ETH_SS_STATS;
	gs->len = n;
	st->cmd = ETHTOOL_GSTATS;
	st->n_stats = n;
	rc = eth_ioctl(ifname, gs);
	if (rc == 0)
		rc = eth_ioctl(ifname, st);
	if (rc == 0) {
		/* the two calls can disagree when queues changed between them: take the smaller */
		uint32_t m = gs->len < st->n_stats ? gs->len : st->n_stats;
		if (m > n)
			m = n;
		memcpy(names, gs->data, (size_t)m * ETH_GSTRING_LEN);
		memcpy(values, st->data, (size_t)m * sizeof(uint64_t));
		rc = (int)m;
	}
	free(gs);
	free(st);
	return rc;
}
