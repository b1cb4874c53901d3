/* SPDX-License-Identifier: MIT */
/* Last-error text per thread, and the libbpf/libxdp log sink that feeds it. */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <bpf/libbpf.h>
#include <xdp/libxdp.h>
#include "xvs_internal.h"

static __thread char last_error[512];

const char *xvs_last_error(void)
{
	return last_error;
}

const char *xvs_shim_version(void)
{
	return "xvs-shim 1";
}

int xvs_fail(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
	if (err && n >= 0 && (size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - n, ": %s", strerror(err < 0 ? -err : err));
	return err > 0 ? -err : err;
}

/* libbpf and libxdp print warnings through these; keep the last warning line as the error
 * context (their own messages name the exact failing step), and stay quiet otherwise. */
static int print_libbpf(enum libbpf_print_level level, const char *fmt, va_list ap)
{
	if (level == LIBBPF_DEBUG)
		return 0;
	char line[sizeof(last_error)];
	vsnprintf(line, sizeof(line), fmt, ap);
	size_t l = strlen(line);
	while (l && line[l - 1] == '\n')
		line[--l] = 0;
	if (l)
		memcpy(last_error, line, l + 1);
	return 0;
}

static int print_libxdp(enum libxdp_print_level level, const char *fmt, va_list ap)
{
	return print_libbpf(level == LIBXDP_DEBUG ? LIBBPF_DEBUG : LIBBPF_WARN, fmt, ap);
}

__attribute__((constructor)) static void xvs_install_printers(void)
{
	libbpf_set_print(print_libbpf);
	libxdp_set_print(print_libxdp);
}
