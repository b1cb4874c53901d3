/* SPDX-License-Identifier: MIT */
#ifndef XVS_INTERNAL_H
#define XVS_INTERNAL_H
#include "xvs_shim.h"
/* Record the failure text (with strerror(err) appended when err != 0); returns -|err|. */
int xvs_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
#endif
