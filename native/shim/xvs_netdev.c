/* SPDX-License-Identifier: MIT */
/*
 * The generic netlink family "netdev" (NETDEV_CMD_DEV_GET): an interface's XDP features, as
 * the kernel advertises them. The flow cache needs one bit of it: NETDEV_XDP_ACT_NDO_XMIT, which
 * a veth has only while its peer has NAPI (veth_set_xdp_features: GRO on or an XDP program), i.e.
 * while frames redirected into it are taken (xdp_do_redirect refuses them otherwise).
 * Control thread only. The uapi header (linux/netdev.h) is not needed: the few numbers are here.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include "xvs_internal.h"

#define NETDEV_FAMILY "netdev"
#define NETDEV_CMD_DEV_GET 1
#define NETDEV_A_DEV_IFINDEX 1
#define NETDEV_A_DEV_XDP_FEATURES 3

struct gnl_req {
	struct nlmsghdr n;
	struct genlmsghdr g;
	char buf[64];
};

static void put_attr(struct nlmsghdr *n, uint16_t type, const void *data, uint16_t len)
{
	struct nlattr *a = (struct nlattr *)((char *)n + NLMSG_ALIGN(n->nlmsg_len));
	a->nla_type = type;
	a->nla_len = NLA_HDRLEN + len;
	memcpy((char *)a + NLA_HDRLEN, data, len);
	n->nlmsg_len = NLMSG_ALIGN(n->nlmsg_len) + NLA_ALIGN(a->nla_len);
}

/* Send `req`, read the answer into `buf`; returns its genl payload length or -errno. */
static int gnl_call(int fd, struct gnl_req *req, char *buf, size_t cap, struct nlattr **attrs)
{
	if (send(fd, req, req->n.nlmsg_len, 0) < 0)
		return -errno;
	ssize_t len = recv(fd, buf, cap, 0);
	if (len < 0)
		return -errno;
	struct nlmsghdr *h = (struct nlmsghdr *)buf;
	if (!NLMSG_OK(h, (size_t)len))
		return -EBADMSG;
	if (h->nlmsg_type == NLMSG_ERROR) {
		struct nlmsgerr *e = NLMSG_DATA(h);
		return e->error ? e->error : -ENODATA;
	}
	*attrs = (struct nlattr *)((char *)NLMSG_DATA(h) + GENL_HDRLEN);
	return (int)(h->nlmsg_len - NLMSG_HDRLEN - GENL_HDRLEN);
}

int xvs_netdev__xdp_features(uint32_t ifindex, uint64_t *out)
{
	int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_GENERIC);
	if (fd < 0)
		return xvs_fail(errno, "cannot open a generic netlink socket");
	char buf[4096];
	struct gnl_req req;
	struct nlattr *a;
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req.n.nlmsg_type = GENL_ID_CTRL;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.g.cmd = CTRL_CMD_GETFAMILY;
	req.g.version = 1;
	put_attr(&req.n, CTRL_ATTR_FAMILY_NAME, NETDEV_FAMILY, sizeof(NETDEV_FAMILY));
	int len = gnl_call(fd, &req, buf, sizeof(buf), &a);
	if (len < 0) {
		close(fd);
		return xvs_fail(-len, "generic netlink family %s (kernel before 6.3?)", NETDEV_FAMILY);
	}
	uint16_t family = 0;
	for (; len >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len;
	     len -= NLA_ALIGN(a->nla_len), a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if (a->nla_type == CTRL_ATTR_FAMILY_ID)
			memcpy(&family, (char *)a + NLA_HDRLEN, sizeof(family));
	if (!family) {
		close(fd);
		return xvs_fail(ENOENT, "generic netlink family %s has no id", NETDEV_FAMILY);
	}
	memset(&req, 0, sizeof(req));
	req.n.nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN);
	req.n.nlmsg_type = family;
	req.n.nlmsg_flags = NLM_F_REQUEST;
	req.g.cmd = NETDEV_CMD_DEV_GET;
	req.g.version = 1;
	put_attr(&req.n, NETDEV_A_DEV_IFINDEX, &ifindex, sizeof(ifindex));
	len = gnl_call(fd, &req, buf, sizeof(buf), &a);
	close(fd);
	if (len < 0)
		return xvs_fail(-len, "netdev dev-get of ifindex %u", ifindex);
	for (; len >= (int)NLA_HDRLEN && a->nla_len >= NLA_HDRLEN && a->nla_len <= len;
	     len -= NLA_ALIGN(a->nla_len), a = (struct nlattr *)((char *)a + NLA_ALIGN(a->nla_len)))
		if (a->nla_type == NETDEV_A_DEV_XDP_FEATURES && a->nla_len >= NLA_HDRLEN + 8) {
			memcpy(out, (char *)a + NLA_HDRLEN, 8);
			return 0;
		}
	return xvs_fail(ENODATA, "netdev dev-get of ifindex %u: no xdp-features", ifindex);
}
