/* SPDX-License-Identifier: MIT */
/*
 * rtnetlink for next hops: routes, neighbours and addresses come from the kernel of the network
 * namespace the daemon runs in. Results are written into flat records whose layout is given by
 * the XVS_ROUTE_*, XVS_NEIGH_*, XVS_IFADDR_* and XVS_LINK_* offsets in xvs_common.h.
 * Control plane only: none of this runs per packet.
 */
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <linux/if_arp.h>
#include <linux/neighbour.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include "xvs_internal.h"
#include "../bpf/xvs_common.h"

#define NL_BUF 65536

static int family_af(int family)
{
	return family == XVS_FAMILY_V6 ? AF_INET6 : AF_INET;
}

static int addr_len(int family)
{
	return family == XVS_FAMILY_V6 ? 16 : 4;
}

static int nl_open(uint32_t groups)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
	if (fd < 0)
		return xvs_fail(errno, "cannot open rtnetlink socket");
	struct sockaddr_nl sa = {.nl_family = AF_NETLINK, .nl_groups = groups};
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int err = xvs_fail(errno, "cannot bind rtnetlink socket");
		close(fd);
		return err;
	}
	return fd;
}

static void put_attr(struct nlmsghdr *h, int type, const void *data, int len)
{
	struct rtattr *rta = (struct rtattr *)((char *)h + NLMSG_ALIGN(h->nlmsg_len));
	rta->rta_type = type;
	rta->rta_len = RTA_LENGTH(len);
	memcpy(RTA_DATA(rta), data, len);
	h->nlmsg_len = NLMSG_ALIGN(h->nlmsg_len) + RTA_ALIGN(rta->rta_len);
}

/*
 * Send one request and hand every reply message to cb until NLMSG_DONE (dumps) or the first
 * non-multipart reply. Returns the callback's count, or -errno (also for an NLMSG_ERROR reply).
 */
typedef int (*nl_cb)(struct nlmsghdr *h, void *ctx);

static int nl_talk(struct nlmsghdr *req, nl_cb cb, void *ctx)
{
	int fd = nl_open(0);
	if (fd < 0)
		return fd;
	static __thread char buf[NL_BUF];
	req->nlmsg_seq = 1;
	if (send(fd, req, req->nlmsg_len, 0) < 0) {
		int err = xvs_fail(errno, "rtnetlink send");
		close(fd);
		return err;
	}
	int total = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			total = xvs_fail(errno, "rtnetlink recv");
			break;
		}
		int done = 0;
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n)) {
			if (h->nlmsg_type == NLMSG_DONE) {
				done = 1;
				break;
			}
			if (h->nlmsg_type == NLMSG_ERROR) {
				struct nlmsgerr *e = NLMSG_DATA(h);
				if (e->error)
					total = xvs_fail(-e->error, "rtnetlink request");
				done = 1;
				break;
			}
			int r = cb(h, ctx);
			if (r < 0) {
				total = r;
				done = 1;
				break;
			}
			total += r;
			if (!(h->nlmsg_flags & NLM_F_MULTI)) {
				done = 1;
				break;
			}
		}
		if (done)
			break;
	}
	close(fd);
	return total;
}

int xvs_link__info(const char *ifname, uint8_t *out)
{
	int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return xvs_fail(errno, "socket");
	struct ifreq ifr;
	memset(&ifr, 0, sizeof(ifr));
	if (strlen(ifname) >= IFNAMSIZ) {
		close(fd);
		return xvs_fail(EINVAL, "interface name too long: %s", ifname);
	}
	strcpy(ifr.ifr_name, ifname);
	int err = 0;
	uint32_t v;
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) {
		err = xvs_fail(errno, "no interface %s in this network namespace", ifname);
		goto out;
	}
	v = ifr.ifr_ifindex;
	memcpy(out + XVS_LINK_IFINDEX_OFF, &v, 4);
	if (ioctl(fd, SIOCGIFMTU, &ifr) < 0) {
		err = xvs_fail(errno, "cannot read the MTU of %s", ifname);
		goto out;
	}
	v = ifr.ifr_mtu;
	memcpy(out + XVS_LINK_MTU_OFF, &v, 4);
	if (ioctl(fd, SIOCGIFFLAGS, &ifr) < 0) {
		err = xvs_fail(errno, "cannot read the flags of %s", ifname);
		goto out;
	}
	v = (uint16_t)ifr.ifr_flags;
	memcpy(out + XVS_LINK_FLAGS_OFF, &v, 4);
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) {
		err = xvs_fail(errno, "cannot read the MAC address of %s", ifname);
		goto out;
	}
	if (ifr.ifr_hwaddr.sa_family != ARPHRD_ETHER) {
		err = xvs_fail(EINVAL, "%s is not an Ethernet interface", ifname);
		goto out;
	}
	memcpy(out + XVS_LINK_MAC_OFF, ifr.ifr_hwaddr.sa_data, 6);
out:
	close(fd);
	return err;
}

/* ---- routes ---- */

static int parse_route(struct nlmsghdr *h, uint8_t *out, int only_main)
{
	if (h->nlmsg_type != RTM_NEWROUTE)
		return 0;
	struct rtmsg *rt = NLMSG_DATA(h);
	if (only_main && rt->rtm_table != RT_TABLE_MAIN)
		return 0;
	memset(out, 0, XVS_ROUTE_SIZE);
	out[XVS_ROUTE_DST_LEN_OFF] = rt->rtm_dst_len;
	out[XVS_ROUTE_FAMILY_OFF] = rt->rtm_family == AF_INET6 ? XVS_FAMILY_V6 : XVS_FAMILY_V4;
	out[XVS_ROUTE_TYPE_OFF] = rt->rtm_type;
	int alen = rt->rtm_family == AF_INET6 ? 16 : 4;
	int len = RTM_PAYLOAD(h);
	uint32_t table = rt->rtm_table;
	for (struct rtattr *a = RTM_RTA(rt); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		switch (a->rta_type) {
		case RTA_DST:
			memcpy(out + XVS_ROUTE_DST_OFF, RTA_DATA(a), alen);
			break;
		case RTA_GATEWAY:
			memcpy(out + XVS_ROUTE_GW_OFF, RTA_DATA(a), alen);
			out[XVS_ROUTE_HAS_GW_OFF] = 1;
			break;
		case RTA_PREFSRC:
			memcpy(out + XVS_ROUTE_PREFSRC_OFF, RTA_DATA(a), alen);
			break;
		case RTA_OIF:
			memcpy(out + XVS_ROUTE_OIF_OFF, RTA_DATA(a), 4);
			break;
		case RTA_PRIORITY:
			memcpy(out + XVS_ROUTE_PRIORITY_OFF, RTA_DATA(a), 4);
			break;
		case RTA_TABLE:
			memcpy(&table, RTA_DATA(a), 4);
			break;
		case RTA_METRICS: {
			int mlen = RTA_PAYLOAD(a);
			for (struct rtattr *m = RTA_DATA(a); RTA_OK(m, mlen); m = RTA_NEXT(m, mlen))
				if (m->rta_type == RTAX_MTU)
					memcpy(out + XVS_ROUTE_MTU_OFF, RTA_DATA(m), 4);
			break;
		}
		}
	}
	if (only_main && table != RT_TABLE_MAIN)
		return 0;
	return 1;
}

static int route_get_cb(struct nlmsghdr *h, void *ctx)
{
	return parse_route(h, ctx, 0);
}

int xvs_nl__route_get(int family, const uint8_t *dst, uint8_t *out)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg r;
		char attrs[64];
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.r.rtm_family = family_af(family);
	req.r.rtm_dst_len = addr_len(family) * 8;
	put_attr(&req.h, RTA_DST, dst, addr_len(family));
	int n = nl_talk(&req.h, route_get_cb, out);
	if (n < 0) {
		char a[64];
		inet_ntop(family_af(family), dst, a, sizeof(a));
		return xvs_fail(-n, "no route to %s", a);
	}
	return n == 1 ? 0 : xvs_fail(ENETUNREACH, "no route");
}

struct dump_ctx {
	uint8_t *buf;
	int cap;
	int n;
	int overflow;
};

static int route_dump_cb(struct nlmsghdr *h, void *vctx)
{
	struct dump_ctx *c = vctx;
	if (c->n >= c->cap) {
		c->overflow = 1;
		return 0;
	}
	if (parse_route(h, c->buf + c->n * XVS_ROUTE_SIZE, 1))
		c->n++;
	return 0;
}

int xvs_nl__dump_routes(int family, uint8_t *buf, int cap)
{
	struct {
		struct nlmsghdr h;
		struct rtmsg r;
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg));
	req.h.nlmsg_type = RTM_GETROUTE;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.r.rtm_family = family_af(family);
	struct dump_ctx c = {buf, cap, 0, 0};
	int err = nl_talk(&req.h, route_dump_cb, &c);
	if (err < 0)
		return err;
	if (c.overflow)
		return xvs_fail(ENOSPC, "more than %d routes", cap);
	return c.n;
}

/* ---- neighbours ---- */

static int parse_neigh(struct nlmsghdr *h, uint8_t *out)
{
	if (h->nlmsg_type != RTM_NEWNEIGH)
		return 0;
	struct ndmsg *nd = NLMSG_DATA(h);
	if (nd->ndm_family != AF_INET && nd->ndm_family != AF_INET6)
		return 0;
	memset(out, 0, XVS_NEIGH_SIZE);
	out[XVS_NEIGH_FAMILY_OFF] = nd->ndm_family == AF_INET6 ? XVS_FAMILY_V6 : XVS_FAMILY_V4;
	uint16_t state = nd->ndm_state;
	memcpy(out + XVS_NEIGH_STATE_OFF, &state, 2);
	uint32_t ifindex = nd->ndm_ifindex;
	memcpy(out + XVS_NEIGH_IFINDEX_OFF, &ifindex, 4);
	int alen = nd->ndm_family == AF_INET6 ? 16 : 4;
	int len = h->nlmsg_len - NLMSG_LENGTH(sizeof(*nd));
	for (struct rtattr *a = (struct rtattr *)((char *)nd + NLMSG_ALIGN(sizeof(*nd))); RTA_OK(a, len);
	     a = RTA_NEXT(a, len)) {
		if (a->rta_type == NDA_DST && RTA_PAYLOAD(a) >= (unsigned)alen)
			memcpy(out + XVS_NEIGH_ADDR_OFF, RTA_DATA(a), alen);
		else if (a->rta_type == NDA_LLADDR && RTA_PAYLOAD(a) == 6) {
			memcpy(out + XVS_NEIGH_MAC_OFF, RTA_DATA(a), 6);
			out[XVS_NEIGH_HAS_MAC_OFF] = 1;
		}
	}
	return 1;
}

static int neigh_dump_cb(struct nlmsghdr *h, void *vctx)
{
	struct dump_ctx *c = vctx;
	if (c->n >= c->cap) {
		c->overflow = 1;
		return 0;
	}
	if (parse_neigh(h, c->buf + c->n * XVS_NEIGH_SIZE))
		c->n++;
	return 0;
}

int xvs_nl__dump_neighs(int family, uint8_t *buf, int cap)
{
	struct {
		struct nlmsghdr h;
		struct ndmsg n;
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	req.h.nlmsg_type = RTM_GETNEIGH;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.n.ndm_family = family_af(family);
	struct dump_ctx c = {buf, cap, 0, 0};
	int err = nl_talk(&req.h, neigh_dump_cb, &c);
	if (err < 0)
		return err;
	if (c.overflow)
		return xvs_fail(ENOSPC, "more than %d neighbours", cap);
	return c.n;
}

static int neigh_get_cb(struct nlmsghdr *h, void *ctx)
{
	return parse_neigh(h, ctx);
}

int xvs_nl__neigh_get(int ifindex, int family, const uint8_t *addr, uint8_t *mac_out)
{
	struct {
		struct nlmsghdr h;
		struct ndmsg n;
		char attrs[64];
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	req.h.nlmsg_type = RTM_GETNEIGH;
	req.h.nlmsg_flags = NLM_F_REQUEST;
	req.n.ndm_family = family_af(family);
	req.n.ndm_ifindex = ifindex;
	put_attr(&req.h, NDA_DST, addr, addr_len(family));
	uint8_t rec[XVS_NEIGH_SIZE];
	int n = nl_talk(&req.h, neigh_get_cb, rec);
	if (n < 0)
		return n;
	if (n != 1)
		return xvs_fail(ENOENT, "no neighbour entry");
	uint16_t state;
	memcpy(&state, rec + XVS_NEIGH_STATE_OFF, 2);
	if (!rec[XVS_NEIGH_HAS_MAC_OFF])
		return xvs_fail(EAGAIN, "neighbour not resolved (state 0x%x)", state);
	memcpy(mac_out, rec + XVS_NEIGH_MAC_OFF, 6);
	return state;
}

static int ack_cb(struct nlmsghdr *h, void *ctx)
{
	(void)h;
	(void)ctx;
	return 0;
}

/*
 * Ask the kernel to resolve a neighbour, as if it had a packet to send there: RTM_NEWNEIGH with
 * NTF_USE creates the entry if needed and starts ARP/ND without changing a valid entry.
 */
int xvs_nl__neigh_resolve(int ifindex, int family, const uint8_t *addr)
{
	struct {
		struct nlmsghdr h;
		struct ndmsg n;
		char attrs[64];
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ndmsg));
	req.h.nlmsg_type = RTM_NEWNEIGH;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_ACK;
	req.n.ndm_family = family_af(family);
	req.n.ndm_ifindex = ifindex;
	req.n.ndm_state = NUD_NONE;
	req.n.ndm_flags = NTF_USE;
	put_attr(&req.h, NDA_DST, addr, addr_len(family));
	int n = nl_talk(&req.h, ack_cb, NULL);
	return n < 0 ? n : 0;
}

/* ---- addresses ---- */

static int addr_dump_cb(struct nlmsghdr *h, void *vctx)
{
	struct dump_ctx *c = vctx;
	if (h->nlmsg_type != RTM_NEWADDR)
		return 0;
	if (c->n >= c->cap) {
		c->overflow = 1;
		return 0;
	}
	struct ifaddrmsg *ifa = NLMSG_DATA(h);
	uint8_t *out = c->buf + c->n * XVS_IFADDR_SIZE;
	memset(out, 0, XVS_IFADDR_SIZE);
	int alen = ifa->ifa_family == AF_INET6 ? 16 : 4;
	int len = IFA_PAYLOAD(h);
	int found = 0;
	for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
		/* IFA_LOCAL is the address itself on point-to-point links; IFA_ADDRESS otherwise */
		if (a->rta_type == IFA_LOCAL || (a->rta_type == IFA_ADDRESS && !found)) {
			memcpy(out + XVS_IFADDR_ADDR_OFF, RTA_DATA(a), alen);
			found = 1;
		}
	}
	if (!found)
		return 0;
	out[XVS_IFADDR_FAMILY_OFF] = ifa->ifa_family == AF_INET6 ? XVS_FAMILY_V6 : XVS_FAMILY_V4;
	out[XVS_IFADDR_PREFIX_OFF] = ifa->ifa_prefixlen;
	uint32_t ifindex = ifa->ifa_index;
	memcpy(out + XVS_IFADDR_IFINDEX_OFF, &ifindex, 4);
	c->n++;
	return 0;
}

int xvs_nl__dump_addrs(uint8_t *buf, int cap)
{
	struct {
		struct nlmsghdr h;
		struct ifaddrmsg a;
	} req;
	memset(&req, 0, sizeof(req));
	req.h.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg));
	req.h.nlmsg_type = RTM_GETADDR;
	req.h.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	req.a.ifa_family = AF_UNSPEC;
	struct dump_ctx c = {buf, cap, 0, 0};
	int err = nl_talk(&req.h, addr_dump_cb, &c);
	if (err < 0)
		return err;
	if (c.overflow)
		return xvs_fail(ENOSPC, "more than %d addresses", cap);
	return c.n;
}

/* ---- change notifications ---- */

int xvs_nl__events_open(void)
{
	int fd = nl_open(RTMGRP_LINK | RTMGRP_NEIGH | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE |
			 RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR);
	if (fd < 0)
		return fd;
	int fl = fcntl(fd, F_GETFL);
	fcntl(fd, F_SETFL, fl | O_NONBLOCK);
	return fd;
}

/* Read whatever notifications are queued; returns how many messages there were (0: nothing
 * changed). An overrun (ENOBUFS) counts as a change: the caller re-reads everything anyway. */
int xvs_nl__events_drain(int fd)
{
	static __thread char buf[NL_BUF];
	int count = 0;
	for (;;) {
		ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n < 0) {
			if (errno == ENOBUFS) {
				count++;
				continue;
			}
			break;
		}
		for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (size_t)n); h = NLMSG_NEXT(h, n))
			count++;
	}
	return count;
}

void xvs_nl__close(int fd)
{
	if (fd >= 0)
		close(fd);
}
