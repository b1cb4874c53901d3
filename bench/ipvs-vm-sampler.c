/*
 * Where the ipvs-vm guest's CPUs spend their time (src/tools/bench/ipvsvm-guest-cpu.ts reads the
 * output). Built on the host, statically (the guest has no compiler), and run in the guest beside
 * `xvs bench --in-guest` on the generator's CPU. In C because the emulated CPU is slow: a Python
 * sampler reading the same files once a second cost a third of a guest CPU.
 *
 *   ipvs-vm-sampler OUT.jsonl PERIOD_MS
 *
 * Every PERIOD_MS it appends one JSON line: {"t": ms since the epoch, "cpus": {"cpuN": [user,
 * nice, system, idle, iowait, irq, softirq, steal]}, "tasks": {"tid": [command, thread name,
 * utime+stime ticks, last CPU]}}, for the threads that matter only: processes whose executable is
 * xvs, nft, ipvsadm or l4bench, this sampler, and the kernel's napi/, ksoftirqd/ and kworker/
 * threads. A wrapper (taskset, ip, env, sh, nice) is looked at again until it execs its command.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAXPID 65536
enum { UNKNOWN = 0, SKIP, KEEP, WRAPPER };
static unsigned char kind[MAXPID];
static char *cmdof[MAXPID];

static int readfile(const char *path, char *buf, size_t n) {
	FILE *f = fopen(path, "r");
	if (!f) return -1;
	size_t r = fread(buf, 1, n - 1, f);
	fclose(f);
	buf[r] = 0;
	return (int)r;
}

static void jstr(FILE *o, const char *s) {
	fputc('"', o);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\') fprintf(o, "\\%c", c);
		else if (c < 0x20) fprintf(o, "\\u%04x", c);
		else fputc(c, o);
	}
	fputc('"', o);
}

static int classify(int pid, int self) {
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/cmdline", pid);
	int n = readfile(path, buf, sizeof buf);
	if (n < 0) return SKIP;
	free(cmdof[pid]);
	cmdof[pid] = NULL;
	if (n == 0) { /* kernel thread */
		snprintf(path, sizeof path, "/proc/%d/comm", pid);
		if (readfile(path, buf, sizeof buf) < 0) return SKIP;
		if (strncmp(buf, "napi/", 5) && strncmp(buf, "ksoftirqd/", 10) && strncmp(buf, "kworker/", 8)) return SKIP;
		cmdof[pid] = strdup("");
		return KEEP;
	}
	/* argv[0]'s base name and up to two arguments, joined by spaces */
	char cmd[160] = "";
	const char *p = buf, *end = buf + n;
	for (int i = 0; i < 3 && p < end; i++) {
		const char *a = p;
		if (i == 0) {
			const char *slash = strrchr(a, '/');
			if (slash) a = slash + 1;
		}
		if (*a) {
			if (i) strncat(cmd, " ", sizeof cmd - strlen(cmd) - 1);
			strncat(cmd, a, sizeof cmd - strlen(cmd) - 1);
		}
		p += strlen(p) + 1;
	}
	char exe[64];
	snprintf(exe, sizeof exe, "%s", cmd);
	char *sp = strchr(exe, ' ');
	if (sp) *sp = 0;
	cmdof[pid] = strdup(cmd);
	if (!strcmp(exe, "taskset") || !strcmp(exe, "ip") || !strcmp(exe, "env") || !strcmp(exe, "sh") || !strcmp(exe, "bash") || !strcmp(exe, "nice")) return WRAPPER;
	if (pid == self || !strcmp(exe, "xvs") || !strcmp(exe, "nft") || !strcmp(exe, "ipvsadm") || !strcmp(exe, "l4bench")) return KEEP;
	return SKIP;
}

int main(int argc, char **argv) {
	if (argc < 3) {
		fprintf(stderr, "usage: %s OUT.jsonl PERIOD_MS\n", argv[0]);
		return 2;
	}
	FILE *o = fopen(argv[1], "w");
	if (!o) {
		perror(argv[1]);
		return 1;
	}
	long period = atol(argv[2]);
	int self = getpid();
	for (;;) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		long long t = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
		fprintf(o, "{\"t\": %lld, \"cpus\": {", t);
		FILE *st = fopen("/proc/stat", "r");
		char line[512];
		int first = 1;
		while (st && fgets(line, sizeof line, st)) {
			if (strncmp(line, "cpu", 3) || !isdigit((unsigned char)line[3])) continue;
			char name[16];
			unsigned long long v[8] = {0};
			if (sscanf(line, "%15s %llu %llu %llu %llu %llu %llu %llu %llu", name, &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6], &v[7]) < 9) continue;
			fprintf(o, "%s\"%s\": [%llu, %llu, %llu, %llu, %llu, %llu, %llu, %llu]", first ? "" : ", ", name, v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7]);
			first = 0;
		}
		if (st) fclose(st);
		fputs("}, \"tasks\": {", o);
		first = 1;
		DIR *d = opendir("/proc");
		struct dirent *e;
		while (d && (e = readdir(d))) {
			if (!isdigit((unsigned char)e->d_name[0])) continue;
			int pid = atoi(e->d_name);
			if (pid <= 0 || pid >= MAXPID) continue;
			if (kind[pid] == UNKNOWN || kind[pid] == WRAPPER) kind[pid] = classify(pid, self);
			if (kind[pid] != KEEP) continue;
			char path[64];
			snprintf(path, sizeof path, "/proc/%d/task", pid);
			DIR *td = opendir(path);
			if (!td) { /* gone: its number may come back as another process */
				kind[pid] = UNKNOWN;
				continue;
			}
			struct dirent *te;
			while ((te = readdir(td))) {
				if (!isdigit((unsigned char)te->d_name[0])) continue;
				char sp2[320], buf[1024];
				snprintf(sp2, sizeof sp2, "/proc/%d/task/%s/stat", pid, te->d_name);
				if (readfile(sp2, buf, sizeof buf) <= 0) continue;
				char *l = strchr(buf, '('), *r = strrchr(buf, ')');
				if (!l || !r || r < l) continue;
				*r = 0;
				/* after ") ": state is field 3; utime 14, stime 15, processor 39 */
				char *f = r + 2, *tok, *save = NULL;
				unsigned long long ut = 0, stt = 0;
				int cpu = -1, field = 3;
				for (tok = strtok_r(f, " ", &save); tok; tok = strtok_r(NULL, " ", &save), field++) {
					if (field == 14) ut = strtoull(tok, NULL, 10);
					else if (field == 15) stt = strtoull(tok, NULL, 10);
					else if (field == 39) {
						cpu = atoi(tok);
						break;
					}
				}
				if (ut + stt == 0) continue;
				fprintf(o, "%s\"%s\": [", first ? "" : ", ", te->d_name);
				jstr(o, cmdof[pid] ? cmdof[pid] : "");
				fputs(", ", o);
				jstr(o, l + 1);
				fprintf(o, ", %llu, %d]", ut + stt, cpu);
				first = 0;
			}
			closedir(td);
		}
		if (d) closedir(d);
		fputs("}}\n", o);
		fflush(o);
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		long long spent = (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000 - t;
		long long wait = period - spent;
		if (wait < 50) wait = 50;
		usleep((useconds_t)(wait * 1000));
	}
}
