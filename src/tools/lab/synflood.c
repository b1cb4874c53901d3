/* SPDX-License-Identifier: MIT */
/*
 * Lab SYN flood generator (the SYN flood tests): TCP SYNs with spoofed sources, sent on an interface
 * through an AF_PACKET socket, at a fixed rate for a fixed time. Sources are drawn from
 * BASE/PREFIXLEN only (the tests use 198.19.0.0/16, inside 198.18.0.0/15), source ports at random.
 *
 *   synflood IFNAME DST_MAC DST_IP DST_PORT SRC_BASE PREFIXLEN PPS SECONDS
 * Prints the number of frames sent.
 */
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static uint16_t csum(const void *p, size_t n, uint32_t sum)
{
	const uint8_t *b = p;
	for (size_t i = 0; i + 1 < n; i += 2) sum += (b[i] << 8) | b[i + 1];
	if (n & 1) sum += b[n - 1] << 8;
	while (sum >> 16) sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 9) {
		fprintf(stderr, "usage: synflood IFNAME DST_MAC DST_IP DST_PORT SRC_BASE PREFIXLEN PPS SECONDS\n");
		return 2;
	}
	int fd = socket(AF_PACKET, SOCK_RAW, 0);
	if (fd < 0) { perror("socket"); return 1; }
	struct ifreq ifr = {0};
	strncpy(ifr.ifr_name, argv[1], IFNAMSIZ - 1);
	if (ioctl(fd, SIOCGIFINDEX, &ifr) < 0) { perror("SIOCGIFINDEX"); return 1; }
	int ifindex = ifr.ifr_ifindex;
	if (ioctl(fd, SIOCGIFHWADDR, &ifr) < 0) { perror("SIOCGIFHWADDR"); return 1; }
	uint8_t frame[54];
	unsigned m[6];
	if (sscanf(argv[2], "%x:%x:%x:%x:%x:%x", &m[0], &m[1], &m[2], &m[3], &m[4], &m[5]) != 6) return 2;
	for (int i = 0; i < 6; i++) frame[i] = m[i];
	memcpy(frame + 6, ifr.ifr_hwaddr.sa_data, 6);
	frame[12] = 0x08; frame[13] = 0x00;
	uint32_t dst = ntohl(inet_addr(argv[3]));
	uint16_t dport = atoi(argv[4]);
	uint32_t base = ntohl(inet_addr(argv[5]));
	int plen = atoi(argv[6]);
	uint32_t hostmask = plen >= 32 ? 0 : (0xffffffffu >> plen);
	double pps = atof(argv[7]), secs = atof(argv[8]);
	struct sockaddr_ll to = {.sll_family = AF_PACKET, .sll_ifindex = ifindex, .sll_halen = 6};
	memcpy(to.sll_addr, frame, 6);
	uint32_t rnd = 2463534242u;
	unsigned long sent = 0;
	double t0 = now();
	for (;;) {
		double t = now() - t0;
		if (t >= secs) break;
		if (sent >= t * pps) { usleep(200); continue; }
		rnd ^= rnd << 13; rnd ^= rnd >> 17; rnd ^= rnd << 5;
		uint32_t src = (base & ~hostmask) | (rnd & hostmask);
		if ((src & hostmask) == 0 || (src & hostmask) == hostmask) continue;
		uint16_t sport = 1024 + (rnd >> 16) % 60000;
		uint8_t *ip = frame + 14, *tcp = ip + 20;
		memset(ip, 0, 40);
		ip[0] = 0x45; ip[3] = 40; ip[4] = rnd >> 8; ip[5] = rnd; ip[8] = 64; ip[9] = 6;
		uint32_t s = htonl(src), d = htonl(dst);
		memcpy(ip + 12, &s, 4); memcpy(ip + 16, &d, 4);
		uint16_t c = csum(ip, 20, 0);
		ip[10] = c >> 8; ip[11] = c;
		tcp[0] = sport >> 8; tcp[1] = sport; tcp[2] = dport >> 8; tcp[3] = dport;
		tcp[4] = rnd >> 24; tcp[5] = rnd >> 16; tcp[6] = rnd >> 8; tcp[7] = rnd;
		tcp[12] = 5 << 4; tcp[13] = 0x02; tcp[14] = 0xff; tcp[15] = 0xff;
		uint32_t ps = (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) + 6 + 20;
		c = csum(tcp, 20, ps);
		tcp[16] = c >> 8; tcp[17] = c;
		if (sendto(fd, frame, sizeof(frame), 0, (struct sockaddr *)&to, sizeof(to)) == sizeof(frame)) sent++;
	}
	printf("%lu\n", sent);
	return 0;
}
